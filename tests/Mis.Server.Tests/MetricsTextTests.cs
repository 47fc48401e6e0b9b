using Mis.Server.Engine;
using Mis.Server.Observability;

namespace Mis.Server.Tests;

/// <summary>The Prometheus text rendering of the engine's and the RPC metrics.</summary>
public sealed class MetricsTextTests
{
    [Fact]
    public void Metrics_text_escapes_label_values()
    {
        var rpc = new RpcMetrics();
        rpc.Observe("GetStats", "OK", TimeSpan.FromMilliseconds(0.2));
        string text = MetricsText.Render(new EngineStats { DefconByCgroup = [(9, "/bin/we\"ird\\cmd", new Mis.Enforcer.Kernel.CgroupState(9, 1, Mis.Enforcer.Defcon.DefconLevel.Normal, 0, 0, false, false, 0, 1))] }, rpc);
        var (_, samples) = ObservabilityTests.Parse(text);
        Assert.Equal(5, samples["mis_cgroup_defcon{cgroup_id=\"9\",command=\"we\\\"ird\\\\cmd\"}"]);
        Assert.Equal(1, samples["mis_rpc_duration_seconds_bucket{method=\"GetStats\",le=\"0.00025\"}"]);
        Assert.Equal(0, samples["mis_rpc_duration_seconds_bucket{method=\"GetStats\",le=\"0.0001\"}"]);
    }
}
