using BenchmarkDotNet.Attributes;
using Mis.Policy.V1;
using Mis.Server.Grpc;
using Mis.Server.Observability;

namespace Mis.Bench.Micro;

/// <summary>
/// The managed work of every gRPC call besides the handler: the audit line (serialised and
/// written to a file), the request summary it carries, and the latency histogram.
/// </summary>
[MemoryDiagnoser]
public class ControlPlaneBenchmarks
{
    private static readonly GetStatsRequest StatsRequest = new();
    private static readonly KillProcessRequest KillRequest = new() { CgroupId = 4242, Graceful = true };
    private static readonly TimeSpan Elapsed = TimeSpan.FromMicroseconds(87);

    private readonly RpcMetrics _metrics = new();
    private string _dir = "";
    private AuditLog? _audit;

    /// <summary>An audit log in a fresh temporary directory, large enough never to rotate during a run.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _dir = Directory.CreateTempSubdirectory("mis-bench-audit-").FullName;
        _audit = new AuditLog(Path.Combine(_dir, "audit.jsonl"), maxBytes: 1L << 40, maxFiles: 1);
    }

    /// <summary>Removes the log.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _audit?.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>One GetStats audit line, serialised and in the file.</summary>
    [Benchmark]
    public void AuditLine() => _audit!.Write(new AuditRecord(DateTimeOffset.UtcNow, "GetStats", "ipv4:127.0.0.1:40000", "{ }", "OK", null, 0.087));

    /// <summary>The arguments of a GetStats call (an empty message).</summary>
    [Benchmark]
    public string SummarizeEmpty() => AuditInterceptor.Summarize(StatsRequest);

    /// <summary>The arguments of a KillProcess call (two fields set).</summary>
    [Benchmark]
    public string SummarizeFields() => AuditInterceptor.Summarize(KillRequest);

    /// <summary>One observation of the latency histogram and call counter.</summary>
    [Benchmark]
    public void Metrics() => _metrics.Observe("GetStats", "OK", Elapsed);
}
