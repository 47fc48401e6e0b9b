using Prometheus;

namespace Mis.Server.Observability;

/// <summary>
/// Per-method RPC latency histograms (cumulative buckets in seconds) and call counts per status
/// code, kept by prometheus-net in the registry the metrics page exports (<see cref="MetricsPage"/>).
/// An observation is a label lookup and a few interlocked adds.
/// </summary>
public sealed class RpcMetrics
{
    /// <summary>Bucket upper bounds in seconds: 50 µs (a loopback unary call) up to 10 s (a graceful kill).</summary>
    internal static readonly double[] Buckets = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly Histogram _latency;
    private readonly Counter _calls;

    /// <summary>RPC metrics in a registry of their own (one per enforcer host: never the process-wide default).</summary>
    public RpcMetrics()
    {
        Registry = Metrics.NewCustomRegistry();
        var factory = Metrics.WithCustomRegistry(Registry);
        _calls = factory.CreateCounter("mis_rpc_requests_total", "gRPC calls by method and status code.", ["method", "code"]);
        _latency = factory.CreateHistogram("mis_rpc_duration_seconds", "gRPC call latency by method, in seconds.", ["method"],
            new HistogramConfiguration { Buckets = Buckets });
    }

    /// <summary>The registry these metrics live in; the metrics page adds the engine's to it and exports it.</summary>
    internal CollectorRegistry Registry { get; }

    /// <summary>Records one finished call.</summary>
    /// <param name="method">The short method name, e.g. <c>GetStats</c>.</param>
    /// <param name="code">The status code as gRPC spells it, e.g. <c>OK</c>.</param>
    /// <param name="elapsed">Time spent in the call.</param>
    public void Observe(string method, string code, TimeSpan elapsed)
    {
        _latency.WithLabels(method).Observe(elapsed.TotalSeconds);
        _calls.WithLabels(method, code).Inc();
    }
}
