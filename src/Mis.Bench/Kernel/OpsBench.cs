using System.Diagnostics;
using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;
using Mis.Enforcer.Session;

namespace Mis.Bench.Kernel;

/// <summary>What <see cref="OpsBench.Run"/> is asked to do.</summary>
public sealed record OpsBenchOptions
{
    /// <summary>Operations of the mix to perform in total, over as many workloads as it takes.</summary>
    public int Operations { get; init; } = 10_000;

    /// <summary>Seeds the mix (which operation comes when).</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>
    /// The DEFCON ladder: the default thresholds, with slowdowns a tenth of the default so that a
    /// run of 10,000 operations climbs the ladder many times within seconds.
    /// </summary>
    internal DefconConfig Ladder { get; init; } = BenchLadder;

    /// <summary>The ladder used when none is given.</summary>
    internal static DefconConfig BenchLadder { get; } = new() { SlowdownUs = [10, 100, 1000] };

    /// <summary>Operations of a warm-up workload run first and left out of every figure (JIT, caches of the kernel and the runtime).</summary>
    internal int WarmupOperations { get; init; } = 200;

    /// <summary>Entries of the policy's decision cache (<c>[policy] decision_cache_size</c>); 0 turns it off.</summary>
    public int DecisionCacheSize { get; init; } = WorkloadPolicy.DefaultDecisionCacheSize;

    /// <summary>Told after every workload: operations done so far, of the total.</summary>
    public Action<int, int>? Progress { get; init; }
}

/// <summary>What one run of the operations benchmark measured.</summary>
public sealed record OpsBenchResult
{
    /// <summary>Operations of the mix performed.</summary>
    public required long Operations { get; init; }

    /// <summary>Workloads (cgroups) it took: each runs until MIS kills it at DEFCON 1 or the mix is done.</summary>
    public required long Workloads { get; init; }

    /// <summary>File and exec decisions the seccomp supervisor made (the mix's own, and its children's: /bin/true's loader opens).</summary>
    public required long Decisions { get; init; }

    /// <summary>Of <see cref="Decisions"/>, those that allowed.</summary>
    public required long Allowed { get; init; }

    /// <summary>Of <see cref="Decisions"/>, those that denied.</summary>
    public required long Denied { get; init; }

    /// <summary>Entries of the decision cache (0: off).</summary>
    public required int DecisionCacheSize { get; init; }

    /// <summary>Decisions the policy answered from its cache.</summary>
    public required long CacheHits { get; init; }

    /// <summary>Decisions the policy computed.</summary>
    public required long CacheMisses { get; init; }

    /// <summary>A decision: reading the cgroup's DEFCON level from the kernel, then the policy's verdict at it.</summary>
    public required LatencySummary Decision { get; init; }

    /// <summary>The DEFCON read alone (one <c>mis_report</c> query through BPF_PROG_TEST_RUN).</summary>
    public required LatencySummary DefconRead { get; init; }

    /// <summary>The policy's verdict alone.</summary>
    public required LatencySummary PolicyVerdict { get; init; }

    /// <summary>Network decisions the kernel made (cgroup/connect4 and sendmsg4 program runs).</summary>
    public required long KernelNetDecisions { get; init; }

    /// <summary>Mean kernel time of one network decision, from the kernel's BPF statistics (null: none ran).</summary>
    public required double? KernelNetDecisionMeanNs { get; init; }

    /// <summary>Violations counted by the kernel's state machine.</summary>
    public required long Violations { get; init; }

    /// <summary>DEFCON transitions (kernel events).</summary>
    public required long DefconTransitions { get; init; }

    /// <summary>Workloads MIS killed at DEFCON 1.</summary>
    public required long Kills { get; init; }

    /// <summary>Wall-clock duration of the whole run.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>The ladder it ran with.</summary>
    public required DefconConfig Ladder { get; init; }
}

/// <summary>
/// <c>mis bench --ops N</c>: N operations of a realistic mix (see native/bench/mis-bench-load.c:
/// allowed and denied opens, connects and execs) by a real process, confined by the real launcher
/// in a managed cgroup, under the real kernel enforcer and seccomp supervisor. File and exec
/// decisions are timed where they are made, in the supervisor's decision call (DEFCON read plus
/// policy verdict: <see cref="TimedSink"/> and <see cref="TimedDecider"/> wrap the two parts it
/// calls); network decisions are made by kernel programs, timed by the kernel's BPF statistics.
/// A workload that MIS kills at DEFCON 1 is followed by a fresh one in a fresh cgroup, which picks
/// the mix up where the killed one stopped (it reports each finished operation on stdout).
/// </summary>
public static class OpsBench
{
    private static readonly string[] NetPrograms = ["mis_connect4", "mis_sendmsg4"];

    /// <summary>Runs the benchmark; everything it creates (cgroups, files, attachments) is gone when it returns.</summary>
    /// <exception cref="KernelUnavailableException">This host or build cannot enforce.</exception>
    public static OpsBenchResult Run(OpsBenchOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Operations <= 0)
            throw new ArgumentException($"operations must be positive, got {options.Operations}", nameof(options));
        string load = BenchLoad.Path;
        string dir = Directory.CreateTempSubdirectory("mis-bench-ops-").FullName;
        var started = Stopwatch.StartNew();
        try
        {
            File.WriteAllText(Path.Combine(dir, "secret.txt"), "the mix may not read this\n");
            File.Copy("/bin/true", Path.Combine(dir, "denied-tool")); // keeps its mode, 0755
            var policy = PolicyFile.Parse(PolicyText(dir), "bench-policy.toml");

            long transitions = 0, violations = 0, kills = 0, workloads = 0;
            using var session = EnforcementSession.Open(new SessionOptions
            {
                Defcon = options.Ladder,
                OnEvent = e =>
                {
                    if (e.Type == KernelEventType.Defcon)
                        Interlocked.Increment(ref transitions);
                },
            });
            var kernel = session.Kernel;
            using var installed = session.Install(policy);

            policy.DecisionCacheSize = options.DecisionCacheSize;
            var sink = new TimedSink(kernel);
            var decider = new TimedDecider(policy, sink);
            using var stats = BpfRunStats.Enable();

            // One workload performing ops [start, end): returns the first one it did not finish.
            int RunWorkload(int start, int end, ulong seed)
            {
                workloads++;
                string progress = Path.Combine(dir, $"progress-{workloads}.txt");
                using (var stdout = File.OpenHandle(progress, FileMode.Create, FileAccess.Write))
                using (var workload = session.Launch(new EnforcedWorkloadSpec
                {
                    Command = [load, "ops", start.ToString(), end.ToString(), seed.ToString(), dir],
                    Policy = installed,
                    Identity = WorkloadIdentity.Root,
                    Label = "bench-ops",
                    Stdout = stdout,
                    Decider = _ => decider,
                    Sink = sink,
                }))
                {
                    workload.Wait();
                    var state = workload.Finish().State;
                    violations += (long)(state?.Violations ?? 0);
                    if (state?.Killed == true)
                        kills++;
                }
                return LastOperation(progress) + 1;
            }

            if (options.WarmupOperations > 0)
            {
                RunWorkload(0, options.WarmupOperations, options.Seed + 1);
                decider.Clear();
                (violations, kills, workloads) = (0, 0, 0);
                Interlocked.Exchange(ref transitions, 0);
            }
            var cacheBefore = policy.DecisionCacheStats;
            var netBefore = NetCounters(kernel);
            int done = 0, stalled = 0;
            while (done < options.Operations)
            {
                int reached = RunWorkload(done, options.Operations, options.Seed);
                stalled = reached > done ? 0 : stalled + 1;
                if (stalled >= 3)
                    throw new InvalidOperationException($"three workloads in a row performed no operation of the mix (stuck at operation {done})");
                done = Math.Max(done, reached);
                options.Progress?.Invoke(done, options.Operations);
            }
            var cache = policy.DecisionCacheStats;
            var net = NetCounters(kernel).Since(netBefore);
            return new OpsBenchResult
            {
                Operations = done,
                Workloads = workloads,
                Decisions = decider.Count,
                Allowed = decider.Count - decider.Denied,
                Denied = decider.Denied,
                DecisionCacheSize = policy.DecisionCacheSize,
                CacheHits = cache.Hits - cacheBefore.Hits,
                CacheMisses = cache.Misses - cacheBefore.Misses,
                Decision = decider.Decisions(),
                DefconRead = decider.DefconReads(),
                PolicyVerdict = decider.Verdicts(),
                KernelNetDecisions = (long)net.RunCount,
                KernelNetDecisionMeanNs = net.MeanNs,
                Violations = violations,
                DefconTransitions = Interlocked.Read(ref transitions),
                Kills = kills,
                Elapsed = started.Elapsed,
                Ladder = options.Ladder,
            };
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The bench policy: the built-in rules plus one denied file, one denied tool and one denied network.</summary>
    internal static string PolicyText(string dir) => $"""
        [policy]
        name = "bench"

        [[file]]
        path = "{dir}/secret.txt"
        action = "deny"

        [[file]]
        path = "{dir}/denied-tool"
        ops = ["exec"]
        action = "deny"

        [[network]]
        address = "192.0.2.0/24"
        action = "deny"
        """;

    private static BpfRunCounters NetCounters(KernelEnforcer kernel)
    {
        ulong time = 0, count = 0;
        foreach (string name in NetPrograms)
        {
            var c = BpfRunStats.Read(kernel.ProgramFd(name));
            time += c.RunTimeNs;
            count += c.RunCount;
        }
        return new BpfRunCounters(time, count);
    }

    private static int LastOperation(string progress)
    {
        // A killed workload may leave a partial last line: the last complete one counts.
        string text = File.ReadAllText(progress);
        int end = text.LastIndexOf('\n');
        if (end < 0)
            return -1;
        int start = text.LastIndexOf('\n', end - 1) + 1;
        return int.Parse(text.AsSpan(start, end - start), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Times the DEFCON read the supervisor makes right before each policy verdict.</summary>
    public sealed class TimedSink(IViolationSink inner) : IViolationSink
    {
        /// <summary>When the last DEFCON read started and ended (Stopwatch ticks); read by <see cref="TimedDecider"/> on the same thread.</summary>
        internal long ReadStarted, ReadEnded;

        /// <inheritdoc />
        public ViolationOutcome Report(ViolationReport report) => inner.Report(report);

        /// <inheritdoc />
        public void ApproveExec(ulong cgroupId, int tid, ulong device, ulong inode) => inner.ApproveExec(cgroupId, tid, device, inode);

        /// <inheritdoc />
        public void Trace(ViolationReport report) => inner.Trace(report);

        /// <inheritdoc />
        public DefconLevel Defcon(ulong cgroupId)
        {
            ReadStarted = Stopwatch.GetTimestamp();
            var level = inner.Defcon(cgroupId);
            ReadEnded = Stopwatch.GetTimestamp();
            return level;
        }
    }

    /// <summary>Times the policy verdict and, with <see cref="TimedSink"/>, the whole decision.</summary>
    public sealed class TimedDecider(IFileDecider inner, TimedSink sink) : IFileDecider
    {
        private readonly List<(long Read, long Verdict)> _samples = new(1 << 16);

        internal long Count => _samples.Count;

        internal long Denied { get; private set; }

        /// <summary>Forgets every sample (after the warm-up).</summary>
        internal void Clear()
        {
            _samples.Clear();
            Denied = 0;
        }

        /// <inheritdoc />
        public Verdict Decide(FileRequest access, int defcon)
        {
            long start = Stopwatch.GetTimestamp();
            var verdict = inner.Decide(access, defcon);
            long end = Stopwatch.GetTimestamp();
            _samples.Add((sink.ReadEnded - sink.ReadStarted, end - start));
            if (verdict == Verdict.Deny)
                Denied++;
            return verdict;
        }

        internal LatencySummary Decisions() => Summary(s => s.Read + s.Verdict);

        internal LatencySummary DefconReads() => Summary(s => s.Read);

        internal LatencySummary Verdicts() => Summary(s => s.Verdict);

        private LatencySummary Summary(Func<(long Read, long Verdict), long> ticks)
        {
            double nsPerTick = 1e9 / Stopwatch.Frequency;
            var ns = _samples.Select(s => ticks(s) * nsPerTick).ToArray();
            return LatencySummary.Of(ns);
        }
    }
}
