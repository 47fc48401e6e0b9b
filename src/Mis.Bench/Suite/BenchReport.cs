using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mis.Bench.Kernel;
using Mis.Bench.Workloads;

namespace Mis.Bench.Suite;

/// <summary>Everything <c>mis bench --all</c> measured.</summary>
public sealed record BenchAll(
    OpsBenchResult Ops, KernelOverheadResult Kernel, EnforcementResult Enforcement,
    GrpcFigures Grpc, RealEnvFigures RealEnv, SimFigures Sim, AnomalyFigures Anomaly, TimeSpan Elapsed, bool Quick)
{
    /// <summary>What users feel (<c>--workloads</c>); null when it was not measured.</summary>
    public WorkloadBenchResult? Workloads { get; init; }
}

/// <summary>
/// <c>bench/results.json</c> and the README's benchmark table: the machine, the seed's claims, the
/// targets and what MIS measured, side by side. The README table sits between two markers and is
/// replaced whole by every <c>mis bench --all</c>.
/// </summary>
public static class BenchReport
{
    internal const string BeginMarker = "<!-- mis bench --all: begin (generated; edit BenchReport.cs, not this table) -->";
    internal const string EndMarker = "<!-- mis bench --all: end -->";

    /// <summary>One row of the comparison: a metric, the seed's claim, the target, MIS's figure, and whether the target is met.</summary>
    public sealed record Row(string Metric, string Seed, string Target, string Measured, bool? Met);

    internal static IReadOnlyList<Row> Rows(BenchAll b)
    {
        var k = b.Kernel;
        var o = b.Ops;
        double unmanaged = k.OverFloorNs(KernelOverheadBench.Unmanaged);
        double managedBpf = k.OverFloorNs(KernelOverheadBench.ManagedBpf);
        double managed = k.OverFloorNs(KernelOverheadBench.Managed);
        double? floorRun = k.Programs.FirstOrDefault(p => p.Phase == KernelOverheadBench.Floor)?.MeanNs;
        double? programUnmanaged = k.Programs.FirstOrDefault(p => p.Phase == KernelOverheadBench.Unmanaged)?.MeanNs - floorRun;
        double? programManaged = k.Programs.FirstOrDefault(p => p.Phase == KernelOverheadBench.ManagedBpf)?.MeanNs - floorRun;
        double? hitRate = o.CacheHits + o.CacheMisses == 0 ? null : (double)o.CacheHits / (o.CacheHits + o.CacheMisses);
        string D(double? ns) => BenchFormat.Duration(ns);
        var rows = new List<Row>
        {
            new($"decision latency p50 ({o.Operations} ops)", "3.1 µs", "< 1 µs", D(o.Decision.P50Ns), o.Decision.P50Ns < 1000),
            new($"decision latency p99 ({o.Operations} ops)", "8.7 µs", "< 5 µs", D(o.Decision.P99Ns), o.Decision.P99Ns < 5000),
            new("decision cache hit rate", "-", "-", hitRate is double h ? $"{h * 100:0.0}%" : "n/a", null),
            new("kernel network decision (mean, BPF stats)", "-", "-", D(o.KernelNetDecisionMeanNs), null),
            new("DEFCON transitions / kills in the ops run", "-", "-", $"{o.DefconTransitions} / {o.Kills}", null),
            new("DEFCON transition in the kernel (p50)", "< 1 µs", "< 1 µs", D(k.TransitionKernel.P50Ns), k.TransitionKernel.P50Ns < 1000),
            new("getppid bare (CPU time)", "-", "baseline", D(k.Cost(KernelOverheadBench.Bare).CpuNs), null),
            new("empty-program floor", "-", "-", $"{D(k.Cost(KernelOverheadBench.Floor).CpuNs)} ({BenchFormat.Ratio(k.Ratio(KernelOverheadBench.Floor))})", null),
            new("MIS, unmanaged process: over the floor", "-", "≤ 30 ns", $"{D(unmanaged)} ({BenchFormat.Ratio(k.Ratio(KernelOverheadBench.Unmanaged))} of bare)", unmanaged <= 30),
            new("MIS, managed at DEFCON 5 (BPF): over the floor", "-", "≤ 100 ns", $"{D(managedBpf)} ({BenchFormat.Ratio(k.Ratio(KernelOverheadBench.ManagedBpf))} of bare)", managedBpf <= 100),
            new("MIS, managed at DEFCON 5 (BPF + seccomp filter): over the floor", "-", "-", $"{D(managed)} ({BenchFormat.Ratio(k.Ratio(KernelOverheadBench.Managed))} of bare)", null),
            // The same two targets from the kernel's own per-program statistics: far less noisy than
            // a loop's total on a busy machine (both sides carry the statistics' own clock reads).
            new("mis_sys_enter over the empty program, unmanaged (BPF stats)", "-", "≤ 30 ns", D(programUnmanaged), programUnmanaged <= 30),
            new("mis_sys_enter over the empty program, managed (BPF stats)", "-", "≤ 100 ns", D(programManaged), programManaged <= 100),
            new("gRPC GetStats p50 / p99 (loopback TCP, audit on)", "~50 µs", "≤ 50 µs / ≤ 200 µs", $"{D(b.Grpc.Tcp.Latency.P50Ns)} / {D(b.Grpc.Tcp.Latency.P99Ns)}", GrpcMet(b.Grpc.Tcp)),
            new("gRPC GetStats p50 / p99 (Unix socket, audit on)", "-", "≤ 50 µs / ≤ 200 µs", $"{D(b.Grpc.Unix.Latency.P50Ns)} / {D(b.Grpc.Unix.Latency.P99Ns)}", GrpcMet(b.Grpc.Unix)),
            new($"gRPC GetStats throughput, TCP / Unix socket ({b.Grpc.Callers} callers)", "-", "-",
                $"{BenchFormat.Rate(b.Grpc.Tcp.CallsPerSecond, "calls")} / {BenchFormat.Rate(b.Grpc.Unix.CallsPerSecond, "calls")}", null),
            new("kill latency (decision to last process gone, p50)", "-", "-", D(b.Enforcement.KillLatency.P50Ns), null),
            new("event throughput (ring buffer to reader)", "-", "-",
                $"{BenchFormat.Rate(b.Enforcement.Events.DeliveredPerSecond, "events")}, {b.Enforcement.Events.RingbufDrops + (ulong)b.Enforcement.Events.ChannelDrops} dropped", null),
        };
        foreach (var s in b.Enforcement.Slowdown)
            rows.Add(new($"slowdown at DEFCON {s.Level}: requested / kernel-accounted / observed wall", "-", "-",
                $"{D(s.RequestedNs)} / {D(s.KernelAccountedNs)} / {D(s.ObservedNs)} ({s.RelativeError * 100:+0.0;-0.0}%)", null));
        rows.Add(new($"real env step ({b.RealEnv.Scenario}) p50 / p99", "-", "-", $"{D(b.RealEnv.Step.P50Ns)} / {D(b.RealEnv.Step.P99Ns)}", null));
        rows.Add(new($"simulator ({b.Sim.Scenario}, one env)", "-", "≥ 1 M steps/s per core",
            $"{BenchFormat.Rate(b.Sim.StepsPerCpuSecond, "steps")} per CPU-second", b.Sim.StepsPerCpuSecond >= 1e6));
        rows.Add(new($"anomaly scoring ({b.Anomaly.Algo}), offline / online", "-", "-",
            $"{BenchFormat.Rate(b.Anomaly.TraceSyscallsPerSecond, "syscalls")} / {BenchFormat.Rate(b.Anomaly.OnlineSyscallsPerSecond, "syscalls")}", null));
        if (b.Workloads is { } workloads)
            rows.AddRange(WorkloadReport.Rows(workloads).Select(w => new Row(w.Metric, "-", w.Target, w.Measured, w.Met)));
        return rows;
    }

    // Issue 13's control-plane target: p50 ≤ 50 µs and p99 ≤ 200 µs, audit log on.
    private static bool GrpcMet(GrpcTransportFigures f) => f.Latency.P50Ns <= 50_000 && f.Latency.P99Ns <= 200_000;

    /// <summary>The host the figures come from.</summary>
    public static JsonObject Machine()
    {
        static string? Read(string path)
        {
            try
            {
                return File.ReadAllText(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return null;
            }
        }
        string? cpu = Read("/proc/cpuinfo")?.Split('\n').FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim();
        string? os = Read("/etc/os-release")?.Split('\n').FirstOrDefault(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))?[12..].Trim('"');
        string? mem = Read("/proc/meminfo")?.Split('\n').FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal))?[9..].Trim();
        return new JsonObject
        {
            ["cpu"] = cpu,
            ["logical_cpus"] = Environment.ProcessorCount,
            ["memory"] = mem,
            ["kernel"] = Read("/proc/sys/kernel/osrelease")?.Trim(),
            ["os"] = os,
            ["runtime"] = RuntimeInformation.FrameworkDescription,
            ["load_average"] = Read("/proc/loadavg")?.Split(' ').Take(3).Aggregate((a, b) => $"{a} {b}"),
        };
    }

    /// <summary>The <c>--kernel</c> result as it appears in results.json.</summary>
    public static JsonObject Kernel(KernelOverheadResult k) => new()
    {
        ["iterations"] = k.Iterations,
        ["rounds"] = k.Rounds,
        ["clock"] = "the loop thread's CPU time (CLOCK_THREAD_CPUTIME_ID); wall time beside it",
        ["getppid"] = new JsonArray([.. k.Syscall.Select(c => (JsonNode)new JsonObject
        {
            ["name"] = c.Name,
            ["description"] = c.Description,
            ["cpu_ns"] = BenchJson.Round(c.CpuNs),
            ["wall_ns"] = BenchJson.Round(c.WallNs),
            ["ratio_to_bare"] = Math.Round(k.Ratio(c.Name), 3),
            ["over_floor_ns"] = BenchJson.Round(k.OverFloorNs(c.Name)),
            ["rounds_cpu_ns"] = new JsonArray([.. c.Samples.Select(s => JsonValue.Create(Math.Round(s, 1)))]),
        })]),
        ["programs"] = new JsonArray([.. k.Programs.Select(p => (JsonNode)new JsonObject
        {
            ["program"] = p.Program,
            ["phase"] = p.Phase,
            ["runs"] = p.Runs,
            ["mean_ns"] = BenchJson.Round(p.MeanNs),
        })]),
        ["defcon_transition_kernel"] = BenchJson.Latency(k.TransitionKernel),
        ["violation_kernel"] = BenchJson.Latency(k.ViolationKernel),
        ["defcon_query_kernel"] = BenchJson.Latency(k.QueryKernel),
        ["defcon_transition_call"] = BenchJson.Latency(k.TransitionCall),
    };

    internal static JsonObject EndToEnd(BenchAll b) => new()
    {
        ["slowdown"] = new JsonArray([.. b.Enforcement.Slowdown.Select(s => (JsonNode)new JsonObject
        {
            ["level"] = s.Level,
            ["requested_ns"] = BenchJson.Round(s.RequestedNs),
            ["observed_ns"] = BenchJson.Round(s.ObservedNs),
            ["kernel_accounted_ns"] = BenchJson.Round(s.KernelAccountedNs),
            ["relative_error"] = Math.Round(s.RelativeError, 4),
        })]),
        ["kill_latency"] = BenchJson.Latency(b.Enforcement.KillLatency),
        ["kill_processes"] = b.Enforcement.KillProcesses,
        ["events"] = new JsonObject
        {
            ["syscalls"] = b.Enforcement.Events.Syscalls,
            ["delivered"] = b.Enforcement.Events.Delivered,
            ["ringbuf_drops"] = b.Enforcement.Events.RingbufDrops,
            ["channel_drops"] = b.Enforcement.Events.ChannelDrops,
            ["delivered_per_s"] = Math.Round(b.Enforcement.Events.DeliveredPerSecond, 1),
        },
        ["grpc_get_stats"] = new JsonObject
        {
            // Loopback TCP at the top level (as before the Unix socket was measured too).
            ["latency"] = BenchJson.Latency(b.Grpc.Tcp.Latency),
            ["calls_per_s"] = Math.Round(b.Grpc.Tcp.CallsPerSecond, 1),
            ["unix"] = new JsonObject
            {
                ["latency"] = BenchJson.Latency(b.Grpc.Unix.Latency),
                ["calls_per_s"] = Math.Round(b.Grpc.Unix.CallsPerSecond, 1),
            },
            ["callers"] = b.Grpc.Callers,
        },
        ["real_env_step"] = new JsonObject { ["scenario"] = b.RealEnv.Scenario, ["latency"] = BenchJson.Latency(b.RealEnv.Step) },
        ["simulator"] = new JsonObject
        {
            ["scenario"] = b.Sim.Scenario,
            ["steps_per_s"] = Math.Round(b.Sim.StepsPerSecond, 1),
            ["steps_per_cpu_s"] = Math.Round(b.Sim.StepsPerCpuSecond, 1),
        },
        ["anomaly"] = new JsonObject
        {
            ["algo"] = b.Anomaly.Algo,
            ["trace_syscalls_per_s"] = Math.Round(b.Anomaly.TraceSyscallsPerSecond, 1),
            ["online_syscalls_per_s"] = Math.Round(b.Anomaly.OnlineSyscallsPerSecond, 1),
        },
    };

    /// <summary>The whole of bench/results.json.</summary>
    public static JsonObject Json(BenchAll b, JsonObject machine, DateTimeOffset when) => new()
    {
        ["schema_version"] = BenchJson.SchemaVersion,
        ["generated_at"] = when.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
        ["quick"] = b.Quick,
        ["elapsed_s"] = Math.Round(b.Elapsed.TotalSeconds, 1),
        ["machine"] = machine,
        ["ops"] = BenchJson.Ops(b.Ops),
        ["kernel"] = Kernel(b.Kernel),
        ["end_to_end"] = EndToEnd(b),
        ["workloads"] = b.Workloads is { } w ? BenchJson.Workloads(w) : null,
        ["comparison"] = new JsonArray([.. Rows(b).Select(r => (JsonNode)new JsonObject
        {
            ["metric"] = r.Metric,
            ["seed_claim"] = r.Seed,
            ["target"] = r.Target,
            ["measured"] = r.Measured,
            ["target_met"] = r.Met,
        })]),
    };

    /// <summary>Indented JSON with a final newline, as results.json is written.</summary>
    public static string ToJsonText(JsonObject json) => json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";

    /// <summary>The README section between the markers.</summary>
    public static string Markdown(BenchAll b, JsonObject machine, DateTimeOffset when)
    {
        var w = new StringWriter();
        w.WriteLine(BeginMarker);
        w.WriteLine($"Measured {when.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)} UTC by `./mis bench --all`{(b.Quick ? " --quick (small samples: shows it works, not how fast)" : "")} " +
                    $"on {machine["cpu"]} ({machine["logical_cpus"]} logical CPUs, {machine["memory"]}), Linux {machine["kernel"]}, {machine["os"]}, " +
                    $"{machine["runtime"]}; load average at the start {machine["load_average"]}. Full figures: `bench/results.json`.");
        w.WriteLine();
        w.Write(BenchFormat.Table(["metric", "seed (claimed, never measured)", "target", "MIS (measured)", "target met"],
            Rows(b).Select(r => (IReadOnlyList<string>)[r.Metric, r.Seed, r.Target, r.Measured, r.Met switch { true => "yes", false => "no", null => "" }]),
            markdown: true));
        w.WriteLine(EndMarker);
        return w.ToString();
    }

    /// <summary>Replaces the section between the markers of <paramref name="readme"/> (appends one when there is none).</summary>
    public static string ReplaceSection(string readme, string section)
    {
        int begin = readme.IndexOf(BeginMarker, StringComparison.Ordinal);
        int end = readme.IndexOf(EndMarker, StringComparison.Ordinal);
        if (begin < 0 || end < begin)
            return readme.TrimEnd() + "\n\n" + section;
        int after = end + EndMarker.Length;
        if (after < readme.Length && readme[after] == '\n')
            after++;
        return readme[..begin] + section + readme[after..];
    }
}
