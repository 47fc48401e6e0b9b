using System.Diagnostics;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Kernel;
using Mis.Server.Engine;
using Mis.Server.Observability;
using Mis.Testing;

namespace Mis.Server.Tests;

/// <summary>The Prometheus text rendering of the engine's and the RPC metrics (prometheus-net), checked by our reader and by promtool.</summary>
public sealed class MetricsPageTests
{
    private static EngineStats Stats(params (ulong Id, string Command, DefconLevel Level)[] cgroups) => new()
    {
        Denied = 7,
        DefconEscalations = 2,
        ManagedCgroups = cgroups.Length,
        DefconByCgroup = [.. cgroups.Select(c => (c.Id, c.Command, (CgroupState?)new CgroupState(c.Id, 3, c.Level, 1_500_000_000, 0, false, false, 0, 1)))],
    };

    [Fact]
    public async Task Metrics_text_escapes_label_values()
    {
        var rpc = new RpcMetrics();
        rpc.Observe("GetStats", "OK", TimeSpan.FromMilliseconds(0.2));
        string text = await new MetricsPage(rpc, () => Stats((9, "/bin/we\"ird\\cmd", DefconLevel.Normal))).RenderAsync();
        var (types, samples) = ObservabilityTests.Parse(text);
        Assert.Equal(5, samples["mis_cgroup_defcon{cgroup_id=\"9\",command=\"we\\\"ird\\\\cmd\"}"]);
        Assert.Equal(1, samples["mis_rpc_duration_seconds_bucket{method=\"GetStats\",le=\"0.00025\"}"]);
        Assert.Equal(0, samples["mis_rpc_duration_seconds_bucket{method=\"GetStats\",le=\"0.0001\"}"]);
        Assert.Equal(1, samples["mis_rpc_requests_total{method=\"GetStats\",code=\"OK\"}"]);
        Assert.Equal(7, samples["mis_denied_total"]);
        Assert.Equal(1.5, samples["mis_cgroup_slowdown_seconds_total{cgroup_id=\"9\",command=\"we\\\"ird\\\\cmd\"}"]);
        Assert.Equal("counter", types["mis_denied_total"]);
        Assert.Equal("histogram", types["mis_rpc_duration_seconds"]);
    }

    [Fact]
    public async Task A_workload_that_ended_leaves_the_page_and_kernel_counters_follow_the_kernel()
    {
        var stats = Stats((9, "sleep", DefconLevel.Normal), (10, "cat", DefconLevel.Normal));
        var page = new MetricsPage(new RpcMetrics(), () => stats);
        Assert.Contains("mis_cgroup_defcon{cgroup_id=\"10\"", await page.RenderAsync());

        stats = Stats((9, "sleep", DefconLevel.Normal)) with { Denied = 12 };
        var (_, samples) = ObservabilityTests.Parse(await page.RenderAsync());
        Assert.DoesNotContain(samples.Keys, k => k.Contains("cgroup_id=\"10\"", StringComparison.Ordinal));
        Assert.Equal(5, samples["mis_cgroup_defcon{cgroup_id=\"9\",command=\"sleep\"}"]);
        Assert.Equal(12, samples["mis_denied_total"]);
        Assert.Equal(1, samples["mis_managed_cgroups"]);
    }

    [Fact]
    public async Task Promtool_accepts_the_page()
    {
        string? promtool = Promtool();
        HostRequirements.That(promtool is not null, "promtool not found (./mis puts it in .mis/tools; or install Debian's prometheus package)");
        var rpc = new RpcMetrics();
        rpc.Observe("GetStats", "OK", TimeSpan.FromMilliseconds(0.2));
        rpc.Observe("KillProcess", "INVALID_ARGUMENT", TimeSpan.FromMilliseconds(3));
        string text = await new MetricsPage(rpc, () => Stats((9, "/bin/sleep", DefconLevel.Normal))).RenderAsync();

        using var check = Process.Start(new ProcessStartInfo(promtool!, ["check", "metrics"])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
        })!;
        await check.StandardInput.WriteAsync(text);
        check.StandardInput.Close();
        string output = await check.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken) +
                        await check.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        await check.WaitForExitAsync(TestContext.Current.CancellationToken);
        Assert.True(check.ExitCode == 0 && output.Trim().Length == 0, $"promtool check metrics: exit {check.ExitCode}\n{output}\n--- page ---\n{text}");
    }

    // On PATH (Debian's prometheus package), or where ./mis unpacks it without installing the
    // package (whose service would start a Prometheus server on :9090, MIS's metrics port).
    private static string? Promtool()
    {
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries).ToList();
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MIS.sln")))
                dirs.Add(Path.Combine(dir.FullName, ".mis", "tools"));
        if (Environment.GetEnvironmentVariable("MIS_HOME") is { Length: > 0 } home)
            dirs.Add(Path.Combine(home, ".mis", "tools"));
        return dirs.Select(d => Path.Combine(d, "promtool")).FirstOrDefault(File.Exists);
    }
}
