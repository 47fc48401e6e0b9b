using System.Diagnostics;
using System.Net.Sockets;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Mis.Bench.Kernel;
using Mis.Enforcer.Configuration;
using Mis.Policy.V1;
using Mis.Server.Engine;
using Mis.Server.Hosting;

namespace Mis.Bench.Suite;

/// <summary>GetStats over one transport: sequential latency and concurrent throughput.</summary>
/// <param name="Transport"><c>tcp</c> (loopback, HTTP/2 without TLS) or <c>unix</c> (the enforcer's Unix socket).</param>
/// <param name="Latency">One caller, one call at a time.</param>
/// <param name="CallsPerSecond">Calls completed per second by the concurrent callers.</param>
public sealed record GrpcTransportFigures(string Transport, LatencySummary Latency, double CallsPerSecond);

/// <summary>gRPC GetStats against a real enforcer host, on loopback TCP and on its Unix socket.</summary>
/// <param name="Tcp">Loopback TCP.</param>
/// <param name="Unix">The Unix socket.</param>
/// <param name="Callers">Concurrent callers of the throughput runs.</param>
public sealed record GrpcFigures(GrpcTransportFigures Tcp, GrpcTransportFigures Unix, int Callers);

/// <summary>One configuration of the per-call path, measured on both transports (medians over rounds).</summary>
/// <param name="Name">What is left out, e.g. <c>no audit line</c>.</param>
/// <param name="TcpP50Ns">Median over rounds of each round's p50 on loopback TCP.</param>
/// <param name="TcpP99Ns">Median over rounds of each round's p99 on loopback TCP.</param>
/// <param name="UnixP50Ns">The same on the Unix socket.</param>
/// <param name="UnixP99Ns">The same on the Unix socket.</param>
/// <param name="CpuNsPerCall">
/// Median over rounds of the process's CPU time per call (client and server together, both
/// transports): the work a configuration does, far less sensitive to a busy machine than latency.
/// </param>
public sealed record GrpcBreakdownRow(string Name, double TcpP50Ns, double TcpP99Ns, double UnixP50Ns, double UnixP99Ns, double CpuNsPerCall);

public static partial class ServiceBench
{
    private const int WarmupCalls = 300;
    // Warm-up ends once no method was compiled for WarmupQuiet, or at WarmupLimit.
    private static readonly TimeSpan WarmupQuiet = TimeSpan.FromSeconds(0.5);
    private static readonly TimeSpan WarmupLimit = TimeSpan.FromSeconds(8);

    /// <summary>
    /// GetStats latency over <paramref name="calls"/> sequential calls per transport (TCP and Unix
    /// socket alternate in blocks, so both see the same machine), then each transport's throughput
    /// for <paramref name="seconds"/> with <paramref name="callers"/> concurrent callers. One host
    /// (audit log on, the enforcer's logging), one reused channel per transport, warm-up excluded.
    /// </summary>
    public static async Task<GrpcFigures> GrpcAsync(int calls = 2000, double seconds = 2, int callers = 4)
    {
        await using var bench = await GrpcHostBench.StartAsync(GrpcPipeline.Full, productionLogging: true).ConfigureAwait(false);
        var (tcp, unix, _) = await bench.LatencyAsync(calls).ConfigureAwait(false);
        double tcpRate = await GrpcHostBench.ThroughputAsync(bench.Tcp, seconds, callers).ConfigureAwait(false);
        double unixRate = await GrpcHostBench.ThroughputAsync(bench.Unix, seconds, callers).ConfigureAwait(false);
        return new GrpcFigures(new GrpcTransportFigures("tcp", tcp, tcpRate), new GrpcTransportFigures("unix", unix, unixRate), callers);
    }

    /// <summary>
    /// Where a GetStats call's time goes: the same call with one part of the path left out at a
    /// time, down to an empty gRPC service and Kestrel alone, plus the handler's body called
    /// directly (no transport: reported in the TCP columns, the Unix ones equal). Every
    /// configuration is a fresh host; the configurations take turns for <paramref name="rounds"/>
    /// rounds and each figure is the median of its rounds.
    /// </summary>
    public static async Task<IReadOnlyList<GrpcBreakdownRow>> GrpcBreakdownAsync(int calls = 2000, int rounds = 5, Action<string>? progress = null)
    {
        var configurations = new (string Name, GrpcPipeline Pipeline, bool ProductionLogging)[]
        {
            ("full path (as served)", GrpcPipeline.Full, true),
            ("no loggers (no request log scope)", GrpcPipeline.Full, false),
            ("no audit line", GrpcPipeline.Full with { Audit = false }, true),
            ("no RPC metrics", GrpcPipeline.Full with { Metrics = false }, true),
            ("no message size middleware", GrpcPipeline.Full with { MessageSizeLimit = false }, true),
            ("no interceptor (no audit, metrics, status mapping)", GrpcPipeline.Full with { Interceptor = false }, true),
            ("empty gRPC service, nothing else", new GrpcPipeline { Interceptor = false, MessageSizeLimit = false, Handler = GrpcHandler.EmptyService }, true),
            ("raw Kestrel (hand-framed reply)", new GrpcPipeline { Interceptor = false, MessageSizeLimit = false, Handler = GrpcHandler.RawKestrel }, true),
        };
        var samples = configurations.Select(_ => new List<(double, double, double, double, double)>()).ToArray();
        var handler = new List<(double P50, double P99, double Cpu)>();
        for (int round = 0; round < rounds; round++)
        {
            for (int i = 0; i < configurations.Length; i++)
            {
                var (name, pipeline, productionLogging) = configurations[i];
                progress?.Invoke($"round {round + 1}/{rounds}: {name}");
                await using var bench = await GrpcHostBench.StartAsync(pipeline, productionLogging).ConfigureAwait(false);
                var (tcp, unix, cpu) = await bench.LatencyAsync(calls).ConfigureAwait(false);
                samples[i].Add((tcp.P50Ns, tcp.P99Ns, unix.P50Ns, unix.P99Ns, cpu));
                if (i == 0)
                {
                    var cpu0 = Environment.CpuUsage.TotalTime;
                    var body = bench.HandlerBody(calls);
                    handler.Add((body.P50Ns, body.P99Ns, (Environment.CpuUsage.TotalTime - cpu0).Ticks * 100.0 / calls));
                }
            }
        }
        static double M(IEnumerable<double> v) => LatencySummary.Median(v);
        var rows = configurations.Select((c, i) => new GrpcBreakdownRow(c.Name,
            M(samples[i].Select(s => s.Item1)), M(samples[i].Select(s => s.Item2)),
            M(samples[i].Select(s => s.Item3)), M(samples[i].Select(s => s.Item4)), M(samples[i].Select(s => s.Item5)))).ToList();
        double hp50 = M(handler.Select(h => h.P50)), hp99 = M(handler.Select(h => h.P99));
        rows.Add(new GrpcBreakdownRow("GetStats handler body alone (engine.Stats + proto, no RPC)", hp50, hp99, hp50, hp99, M(handler.Select(h => h.Cpu))));
        return rows;
    }

    /// <summary>A real enforcer host listening on loopback TCP and a Unix socket, with a client channel on each.</summary>
    private sealed class GrpcHostBench : IAsyncDisposable
    {
        private readonly string _dir;
        private readonly ILoggerFactory _logs;
        private readonly EnforcerHost _host;
        private readonly GrpcChannel _tcpChannel;
        private readonly GrpcChannel _unixChannel;

        private GrpcHostBench(string dir, ILoggerFactory logs, EnforcerHost host, GrpcChannel tcp, GrpcChannel unix)
        {
            _dir = dir;
            _logs = logs;
            _host = host;
            _tcpChannel = tcp;
            _unixChannel = unix;
            Tcp = new PolicyService.PolicyServiceClient(tcp);
            Unix = new PolicyService.PolicyServiceClient(unix);
        }

        internal PolicyService.PolicyServiceClient Tcp { get; }

        internal PolicyService.PolicyServiceClient Unix { get; }

        /// <summary>
        /// Starts the host with the audit log on; <paramref name="productionLogging"/> gives it the
        /// enforcer's console loggers (at warning, so nothing is printed, but the per-request
        /// logging scope ASP.NET Core opens is there as in production), otherwise no logger at all.
        /// </summary>
        internal static async Task<GrpcHostBench> StartAsync(GrpcPipeline pipeline, bool productionLogging)
        {
            string dir = Directory.CreateTempSubdirectory("mis-bench-grpc-").FullName;
            string socket = Path.Combine(dir, "mis.sock");
            var config = MisConfig.Default with
            {
                Grpc = new GrpcConfig { Enabled = true, BindAddress = "127.0.0.1", Port = 0, UnixSocketPath = socket },
                Paths = MisConfig.Default.Paths with { StateDir = Path.Combine(dir, "state") },
                Logging = MisConfig.Default.Logging with { AuditLogPath = Path.Combine(dir, "audit.jsonl"), Level = "warning" },
            };
            var logs = productionLogging ? LoggingSetup.Create(config.Logging) : NullLoggerFactory.Instance;
            EnforcerHost host;
            try
            {
                host = await EnforcerHost.StartAsync(new EngineOptions { Config = config }, logs, pipeline).ConfigureAwait(false);
            }
            catch
            {
                logs.Dispose();
                Directory.Delete(dir, recursive: true);
                throw;
            }
            // h2c: an http:// address makes grpc-dotnet speak HTTP/2 with prior knowledge.
            var tcp = GrpcChannel.ForAddress(host.GrpcTcpAddress ?? throw new InvalidOperationException("the enforcer host has no TCP address"));
            var unix = GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
            {
                HttpHandler = new SocketsHttpHandler
                {
                    ConnectCallback = async (_, cancel) =>
                    {
                        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                        try
                        {
                            await s.ConnectAsync(new UnixDomainSocketEndPoint(socket), cancel).ConfigureAwait(false);
                            return new NetworkStream(s, ownsSocket: true);
                        }
                        catch
                        {
                            s.Dispose();
                            throw;
                        }
                    },
                },
            });
            return new GrpcHostBench(dir, logs, host, tcp, unix);
        }

        /// <summary>
        /// Sequential calls on both transports, alternating in blocks of 100, after a warm-up on
        /// each; and the process's CPU time per call meanwhile.
        /// </summary>
        internal async Task<(LatencySummary Tcp, LatencySummary Unix, double CpuNsPerCall)> LatencyAsync(int calls)
        {
            var request = new GetStatsRequest();
            // Warm-up: connections, JIT, and until tiered compilation has settled (it recompiles
            // hot methods in the background, twice with dynamic PGO; on a busy machine that takes
            // seconds, and a measurement taken meanwhile times unoptimised code and the JIT).
            var warm = Stopwatch.StartNew();
            long compiled = -1;
            var settled = TimeSpan.Zero;
            for (int i = 0; warm.Elapsed < WarmupLimit && (i < WarmupCalls || warm.Elapsed - settled < WarmupQuiet); i++)
            {
                await Tcp.GetStatsAsync(request).ConfigureAwait(false);
                await Unix.GetStatsAsync(request).ConfigureAwait(false);
                long now = System.Runtime.JitInfo.GetCompiledMethodCount();
                if (now != compiled)
                    (compiled, settled) = (now, warm.Elapsed);
            }
            var tcp = new double[calls];
            var unix = new double[calls];
            const int block = 100;
            var cpu = Environment.CpuUsage.TotalTime;
            for (int done = 0; done < calls; done += block)
            {
                int n = Math.Min(block, calls - done);
                await SampleAsync(Tcp, request, tcp.AsMemory(done, n)).ConfigureAwait(false);
                await SampleAsync(Unix, request, unix.AsMemory(done, n)).ConfigureAwait(false);
            }
            double cpuPerCall = (Environment.CpuUsage.TotalTime - cpu).Ticks * 100.0 / (2.0 * calls);
            return (LatencySummary.Of(tcp), LatencySummary.Of(unix), cpuPerCall);
        }

        /// <summary>What the GetStats handler does (the engine's counters, as the response), called directly.</summary>
        internal LatencySummary HandlerBody(int calls)
        {
            for (int i = 0; i < WarmupCalls; i++)
                _host.GetStats();
            var samples = new double[calls];
            for (int i = 0; i < calls; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                _host.GetStats();
                samples[i] = Stopwatch.GetElapsedTime(t0).Ticks * 100.0;
            }
            return LatencySummary.Of(samples);
        }

        internal static async Task<double> ThroughputAsync(PolicyService.PolicyServiceClient client, double seconds, int callers)
        {
            var request = new GetStatsRequest();
            long done = 0;
            var clock = Stopwatch.StartNew();
            var until = TimeSpan.FromSeconds(seconds);
            await Task.WhenAll(Enumerable.Range(0, callers).Select(_ => Task.Run(async () =>
            {
                while (clock.Elapsed < until)
                {
                    await client.GetStatsAsync(request).ConfigureAwait(false);
                    Interlocked.Increment(ref done);
                }
            }))).ConfigureAwait(false);
            return done / clock.Elapsed.TotalSeconds;
        }

        public async ValueTask DisposeAsync()
        {
            _tcpChannel.Dispose();
            _unixChannel.Dispose();
            await _host.DisposeAsync().ConfigureAwait(false);
            _logs.Dispose();
            Directory.Delete(_dir, recursive: true);
        }

        private static async Task SampleAsync(PolicyService.PolicyServiceClient client, GetStatsRequest request, Memory<double> into)
        {
            for (int i = 0; i < into.Length; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                await client.GetStatsAsync(request).ConfigureAwait(false);
                into.Span[i] = Stopwatch.GetElapsedTime(t0).Ticks * 100.0;
            }
        }
    }
}
