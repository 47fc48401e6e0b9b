using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Mis.Bench.Suite;
using Mis.Cli.Terminal;
using Mis.Bench.Kernel;
using Mis.Bench.Workloads;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;

namespace Mis.Cli.Commands;

/// <summary><c>mis bench</c>: MIS's performance, measured for real on this machine.</summary>
public static class BenchCommand
{
    internal static Command Create()
    {
        var ops = new Option<int>("--ops")
        {
            Description = "Operations of the mix (allowed and denied opens, connects, execs) to run through the real enforcer.",
            DefaultValueFactory = _ => BenchSizes.Full.Operations,
        };
        ops.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() <= 0)
                r.AddError($"--ops must be a positive number of operations, got {r.GetValueOrDefault<int>()}");
        });
        var seed = new Option<ulong>("--seed") { Description = "Seeds the mix (which operation comes when).", DefaultValueFactory = _ => 1 };
        var cacheSize = new Option<int>("--decision-cache-size")
        {
            Description = "Entries of the policy's decision cache ([policy] decision_cache_size); 0 measures without it.",
            DefaultValueFactory = _ => WorkloadPolicy.DefaultDecisionCacheSize,
        };
        cacheSize.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 0)
                r.AddError($"--decision-cache-size must be 0 (off) or positive, got {r.GetValueOrDefault<int>()}");
        });
        var kernel = new Option<bool>("--kernel") { Description = "Measure the kernel overhead per syscall instead (getppid: bare, empty-program floor, MIS unmanaged, managed)." };
        var workloads = new Option<bool>("--workloads")
        {
            Description = "Measure what users feel instead: real workloads (file walk, directory walk, exec loop, Python imports, gcc, git, " +
                          "a 1- and 4-thread C reader) timed inside themselves, bare, under a minimal seccomp-notify supervisor (the floor) " +
                          "and under MIS, in alternation; medians and the ratio MIS / bare beside the targets.",
        };
        var rounds = new Option<int?>("--rounds")
        {
            Description = $"With --workloads: counted rounds per workload, default {BenchSizes.Full.WorkloadRounds} ({BenchSizes.Quick.WorkloadRounds} with --quick); " +
                          "one warm-up round runs first and is not counted.",
        };
        rounds.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is <= 0 and int n)
                r.AddError($"--rounds must be a positive number of rounds, got {n}");
        });
        var grpc = new Option<bool>("--grpc")
        {
            Description = "Measure where a gRPC GetStats call's time goes instead: the same call to a real enforcer host with one part " +
                          "of the path left out at a time (loggers, audit line, metrics, size limit, interceptor), down to an empty service " +
                          "and Kestrel alone; p50 and p99 on loopback TCP and on the Unix socket, and CPU time per call.",
        };
        var all = new Option<bool>("--all") { Description = "Measure everything (--workloads too), write bench/results.json and the README's benchmark table (a few minutes)." };
        var quick = new Option<bool>("--quick") { Description = "With --all, --kernel, --workloads or --grpc: small samples, to check that everything works (figures are not meaningful)." };
        var output = new Option<string?>("--out") { Description = "With --all: where to write the results (default bench/results.json of the repository)." };
        var readme = new Option<string?>("--readme") { Description = "With --all: the README whose benchmark table to replace (default README.md of the repository)." };
        var json = new Option<bool>("--json") { Description = "Print the results as JSON (snake_case, schema_version 1) instead of a table." };
        var command = new Command("bench",
            "Measure MIS for real. Default: N policy-checked operations through the real enforcer in a managed cgroup (decision " +
            "latency where the decision is made, cache hit rate, DEFCON transitions, kills). --kernel: the cost per syscall against " +
            "a baseline measured in the same run. --workloads: real workloads bare, at the seccomp-notify floor and under MIS. " +
            "--grpc: where a GetStats call's time goes. --all: everything, into bench/results.json and the README. Needs root.")
        {
            ops, seed, cacheSize, kernel, workloads, rounds, grpc, all, quick, output, readme, json, Micro(),
        };
        command.SetAction(result =>
        {
            if (!Environment.IsPrivilegedProcess)
            {
                Console.Error.WriteLine("mis bench: needs root (it runs workloads under the real kernel enforcer); run it with sudo");
                return 2;
            }
            using var progress = ConsoleProgress.OnStandardError("mis bench");
            var sizes = result.GetValue(quick) ? BenchSizes.Quick : BenchSizes.Full;
            try
            {
                if (result.GetValue(all))
                    return All(sizes, result.GetValue(quick), result.GetValue(output), result.GetValue(readme), result.GetValue(json), progress);
                if (result.GetValue(workloads))
                {
                    var w = Workloads(sizes, result.GetValue(rounds) ?? sizes.WorkloadRounds, progress);
                    Print(result.GetValue(json), "workloads", BenchJson.Workloads(w), () => RenderWorkloads(w));
                    return ReportFailures(w);
                }
                if (result.GetValue(grpc))
                {
                    progress.Stage("gRPC GetStats, part by part");
                    var rows = ServiceBench.GrpcBreakdownAsync(sizes.GrpcCalls, result.GetValue(quick) ? 1 : 5, progress.Detail).GetAwaiter().GetResult();
                    progress.Done();
                    Print(result.GetValue(json), "grpc_breakdown", GrpcBreakdownJson(rows), () => RenderGrpcBreakdown(rows));
                    return 0;
                }
                if (result.GetValue(kernel))
                {
                    var k = Kernel(sizes, progress);
                    Print(result.GetValue(json), "kernel", BenchReport.Kernel(k), () => RenderKernel(k));
                    return 0;
                }
                var r = Ops(result.GetValue(ops), result.GetValue(seed), result.GetValue(cacheSize), progress);
                Print(result.GetValue(json), "ops", BenchJson.Ops(r), () => RenderOps(r));
                return 0;
            }
            catch (KernelUnavailableException e)
            {
                progress.Done();
                Console.Error.WriteLine($"mis bench: {e.Message}");
                return 2;
            }
        });
        return command;
    }

    private static void Print(bool asJson, string key, JsonObject figures, Func<string> render)
    {
        if (asJson)
            Console.Write(BenchReport.ToJsonText(new JsonObject { ["schema_version"] = BenchJson.SchemaVersion, [key] = figures }));
        else
            Console.Write(render());
    }

    // BenchmarkDotNet's own command line, passed through (it builds and runs a copy of src/Mis.Bench).
    private static Command Micro()
    {
        var command = new Command("micro",
            "BenchmarkDotNet measurements of the managed hot paths (policy decisions, DEFCON arithmetic, the supervisor's " +
            "DEFCON read, event decoding, scoring, the simulator). Arguments go to BenchmarkDotNet: --filter '*' runs all, " +
            "--list flat names them. Run from the repository (it builds src/Mis.Bench); only KernelDefconBenchmarks needs root and BPF.")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        command.SetAction(result =>
        {
            Mis.Bench.Micro.MicroBenchmarks.Run([.. result.UnmatchedTokens]);
            return 0;
        });
        return command;
    }

    private static OpsBenchResult Ops(int operations, ulong seed, int cacheSize, ConsoleProgress progress)
    {
        progress.Stage($"{operations} operations through the enforcer");
        var r = OpsBench.Run(new OpsBenchOptions
        {
            Operations = operations,
            Seed = seed,
            DecisionCacheSize = cacheSize,
            Progress = (done, total) => progress.Report(done, total),
        });
        progress.Done();
        return r;
    }

    private static WorkloadBenchResult Workloads(BenchSizes sizes, int rounds, ConsoleProgress progress)
    {
        progress.Stage("workloads");
        var r = WorkloadBench.Run(new WorkloadBenchOptions
        {
            Rounds = rounds,
            Sizes = sizes.Workloads,
            Progress = progress.Detail,
        });
        progress.Done();
        return r;
    }

    // A workload denied under MIS, or failing in any mode, fails the command too: its row alone is easy to miss.
    private static int ReportFailures(WorkloadBenchResult r)
    {
        foreach (var w in r.Failures)
            Console.Error.WriteLine($"mis bench: workload FAILED: {w.Failure}");
        return r.Failures.Any() ? 1 : 0;
    }

    private static KernelOverheadResult Kernel(BenchSizes sizes, ConsoleProgress progress)
    {
        progress.Stage("kernel overhead");
        var k = KernelOverheadBench.Run(new KernelOverheadOptions
        {
            Iterations = sizes.OverheadIterations,
            Rounds = sizes.OverheadRounds,
            TransitionCycles = sizes.TransitionCycles,
            Progress = progress.Detail,
        });
        progress.Done();
        return k;
    }

    private static int All(BenchSizes sizes, bool quick, string? output, string? readme, bool asJson, ConsoleProgress progress)
    {
        var clock = Stopwatch.StartNew();
        var when = DateTimeOffset.UtcNow;
        var machine = BenchReport.Machine(); // the load average before the benchmark adds its own
        string root = RepoRoot.Find();
        string scenario = Path.Combine(root, "experiments", "scenarios", "data-shortcut.toml");
        // The kernel figures first, from a process that has done nothing yet: after the operations
        // run, the runtime's background work (GC, tiering) competes for the cores and shows up in
        // the sleepable mis_report program's run time.
        var kernelResult = Kernel(sizes, progress);
        var opsResult = Ops(sizes.Operations, 1, WorkloadPolicy.DefaultDecisionCacheSize, progress);
        progress.Stage("enforcement end to end");
        var enforcement = EnforcementBench.Run(sizes.KillRepetitions, sizes.EventSyscalls, progress.Detail);
        progress.Stage("gRPC GetStats");
        var grpc = ServiceBench.GrpcAsync(sizes.GrpcCalls, sizes.GrpcSeconds).GetAwaiter().GetResult();
        progress.Stage("real environment steps");
        var realEnv = ServiceBench.RealEnv(scenario, sizes.RealEnvSteps);
        progress.Stage("simulator");
        var sim = ServiceBench.Sim(scenario, sizes.SimSeconds);
        progress.Stage("anomaly scoring");
        var anomaly = ServiceBench.Anomaly(Path.Combine(root, "experiments", "anomaly", "corpus"), sizes.AnomalySeconds);
        progress.Done();
        var workloads = Workloads(sizes, sizes.WorkloadRounds, progress);

        var b = new BenchAll(opsResult, kernelResult, enforcement, grpc, realEnv, sim, anomaly, clock.Elapsed, quick) { Workloads = workloads };
        var json = BenchReport.Json(b, machine, when);
        output ??= Path.Combine(root, "bench", "results.json");
        readme ??= Path.Combine(root, "README.md");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        File.WriteAllText(output, BenchReport.ToJsonText(json));
        string section = BenchReport.Markdown(b, machine, when);
        File.WriteAllText(readme, BenchReport.ReplaceSection(File.Exists(readme) ? File.ReadAllText(readme) : "", section));
        if (asJson)
        {
            Console.Write(BenchReport.ToJsonText(json));
        }
        else
        {
            Console.Write(section);
            Console.WriteLine($"mis bench: wrote {output} and the table in {readme} ({clock.Elapsed.TotalSeconds:0} s)");
        }
        return ReportFailures(workloads);
    }

    /// <summary>The seed's table, measured, for people.</summary>
    internal static string RenderOps(OpsBenchResult r)
    {
        var w = new StringWriter();
        w.WriteLine($"MIS bench: {r.Operations} operations of the mix in {r.Workloads} workloads, {r.Elapsed.TotalSeconds:0.0} s " +
                    $"({r.Decisions} file/exec decisions: {r.Allowed} allowed, {r.Denied} denied; {r.KernelNetDecisions} network decisions in the kernel)");
        w.WriteLine();
        w.Write(BenchFormat.Table(["metric", "seed (claimed, never measured)", "MIS (measured here)"],
        [
            ["decision cache hit rate", "-", r.DecisionCacheSize == 0 ? "n/a: cache off" : r.CacheHits + r.CacheMisses == 0 ? "n/a: no decision"
                : $"{100.0 * r.CacheHits / (r.CacheHits + r.CacheMisses):0.0}% ({r.CacheHits} hits, {r.CacheMisses} misses)"],
            ["decision latency p50", "3.1 µs", BenchFormat.Duration(r.Decision.P50Ns)],
            ["decision latency p99", "8.7 µs", BenchFormat.Duration(r.Decision.P99Ns)],
            ["  of which DEFCON read p50 / p99", "-", $"{BenchFormat.Duration(r.DefconRead.P50Ns)} / {BenchFormat.Duration(r.DefconRead.P99Ns)}"],
            ["  of which policy verdict p50 / p99", "-", $"{BenchFormat.Duration(r.PolicyVerdict.P50Ns)} / {BenchFormat.Duration(r.PolicyVerdict.P99Ns)}"],
            ["kernel network decision (mean)", "-", BenchFormat.Duration(r.KernelNetDecisionMeanNs)],
            ["violations", "-", r.Violations.ToString()],
            ["DEFCON transitions", "-", r.DefconTransitions.ToString()],
            ["kills", "-", r.Kills.ToString()],
        ], markdown: false));
        w.WriteLine();
        w.WriteLine($"Ladder: thresholds [{string.Join(", ", r.Ladder.Thresholds)}], slowdown [{string.Join(", ", r.Ladder.SlowdownUs)}] µs. " +
                    "A decision is timed in the seccomp supervisor: the cgroup's DEFCON read (the memory-mapped view; the kernel when decay is due) plus the policy's verdict.");
        return w.ToString();
    }

    /// <summary>The workload table for people.</summary>
    internal static string RenderWorkloads(WorkloadBenchResult r)
    {
        var w = new StringWriter();
        w.WriteLine($"MIS bench --workloads: each workload timed inside itself ({r.Elapsed.TotalSeconds:0} s)");
        w.WriteLine();
        w.Write(WorkloadReport.Table(r, markdown: false));
        w.WriteLine();
        w.WriteLine(WorkloadReport.Legend(r));
        return w.ToString();
    }

    /// <summary>Each configuration of the GetStats path, snake_case.</summary>
    private static JsonObject GrpcBreakdownJson(IReadOnlyList<GrpcBreakdownRow> rows) => new()
    {
        ["configurations"] = new JsonArray([.. rows.Select(r => (JsonNode)new JsonObject
        {
            ["name"] = r.Name,
            ["tcp_p50_ns"] = r.TcpP50Ns,
            ["tcp_p99_ns"] = r.TcpP99Ns,
            ["unix_p50_ns"] = r.UnixP50Ns,
            ["unix_p99_ns"] = r.UnixP99Ns,
            ["cpu_ns_per_call"] = r.CpuNsPerCall,
        })]),
    };

    /// <summary>Where a GetStats call's time goes, for people.</summary>
    internal static string RenderGrpcBreakdown(IReadOnlyList<GrpcBreakdownRow> rows)
    {
        var w = new StringWriter();
        w.WriteLine("MIS bench --grpc: GetStats against a real enforcer host, one part of the path left out at a time (medians over rounds)");
        w.WriteLine();
        w.Write(BenchFormat.Table(["configuration", "TCP p50", "TCP p99", "Unix p50", "Unix p99", "CPU per call"],
            rows.Select(r => (IReadOnlyList<string>)[r.Name, BenchFormat.Duration(r.TcpP50Ns), BenchFormat.Duration(r.TcpP99Ns),
                BenchFormat.Duration(r.UnixP50Ns), BenchFormat.Duration(r.UnixP99Ns), BenchFormat.Duration(r.CpuNsPerCall)]), markdown: false));
        w.WriteLine();
        w.WriteLine("CPU per call is the whole process's (client and server together, every thread): the work a configuration does.");
        return w.ToString();
    }

    /// <summary>The kernel overhead table for people.</summary>
    internal static string RenderKernel(KernelOverheadResult k)
    {
        var w = new StringWriter();
        w.WriteLine($"MIS bench --kernel: getppid() × {k.Iterations}, median of {k.Rounds} interleaved rounds, the loop thread's CPU time");
        w.WriteLine();
        w.Write(BenchFormat.Table(["configuration", "ns per call", "ratio to bare", "over the floor", "wall ns"],
            k.Syscall.Select(c => (IReadOnlyList<string>)[c.Name, $"{c.CpuNs:0.0}", BenchFormat.Ratio(k.Ratio(c.Name)),
                c.Name is KernelOverheadBench.Bare or KernelOverheadBench.Floor ? "" : $"{k.OverFloorNs(c.Name):+0.0;-0.0} ns", $"{c.WallNs:0.0}"]),
            markdown: false));
        w.WriteLine();
        w.Write(BenchFormat.Table(["program (BPF statistics)", "while", "runs", "mean per run"],
            k.Programs.Select(p => (IReadOnlyList<string>)[p.Program, p.Phase, p.Runs.ToString(), BenchFormat.Duration(p.MeanNs)]), markdown: false));
        w.WriteLine();
        w.WriteLine($"DEFCON transition in the kernel (mis_report run time): p50 {BenchFormat.Duration(k.TransitionKernel.P50Ns)}, p99 {BenchFormat.Duration(k.TransitionKernel.P99Ns)} " +
                    $"({k.TransitionKernel.Count} transitions); a violation without one p50 {BenchFormat.Duration(k.ViolationKernel.P50Ns)}; a DEFCON query p50 {BenchFormat.Duration(k.QueryKernel.P50Ns)}; " +
                    $"the whole call from user space p50 {BenchFormat.Duration(k.TransitionCall.P50Ns)}.");
        foreach (var c in k.Syscall)
            w.WriteLine($"  {c.Name}: {c.Description}");
        return w.ToString();
    }
}
