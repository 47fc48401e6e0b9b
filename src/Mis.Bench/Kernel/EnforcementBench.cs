using System.Diagnostics;
using System.Globalization;
using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;
using Mis.Enforcer.Session;

namespace Mis.Bench.Kernel;

/// <summary>One DEFCON level's slowdown: what the ladder asks per syscall and what a getppid loop observed.</summary>
/// <param name="Level">DEFCON level (4, 3, 2).</param>
/// <param name="RequestedNs">The ladder's per-syscall slowdown.</param>
/// <param name="ObservedNs">Wall time per call in the slowed cgroup minus the same loop's time unslowed.</param>
/// <param name="KernelAccountedNs">What the kernel counted as slowdown per syscall of the cgroup.</param>
public sealed record SlowdownAccuracy(int Level, double RequestedNs, double ObservedNs, double KernelAccountedNs)
{
    /// <summary>(observed − requested) / requested.</summary>
    internal double RelativeError => (ObservedNs - RequestedNs) / RequestedNs;
}

/// <summary>Ring-buffer event throughput: a learning-mode cgroup's syscall stream, as fast as a getppid loop makes it.</summary>
/// <param name="Syscalls">Syscalls the loop made in the cgroup.</param>
/// <param name="Delivered">Syscall events decoded and read by user space.</param>
/// <param name="RingbufDrops">Events the kernel could not put in the ring buffer (full).</param>
/// <param name="ChannelDrops">Events decoded but dropped because the reader was slower.</param>
/// <param name="DeliveredPerSecond">Delivered events per second of the loop's wall time.</param>
public sealed record EventThroughput(long Syscalls, long Delivered, ulong RingbufDrops, long ChannelDrops, double DeliveredPerSecond);

/// <summary>What <see cref="EnforcementBench"/> measured end to end on the real kernel.</summary>
public sealed record EnforcementResult
{
    /// <summary>Per level 4, 3, 2.</summary>
    public required IReadOnlyList<SlowdownAccuracy> Slowdown { get; init; }

    /// <summary>From the decision that enters DEFCON 1 to the cgroup's last process gone, over repetitions.</summary>
    public required LatencySummary KillLatency { get; init; }

    /// <summary>Processes in the workload each kill had to end.</summary>
    public required int KillProcesses { get; init; }

    /// <summary>Event throughput.</summary>
    public required EventThroughput Events { get; init; }
}

/// <summary>
/// End-to-end enforcement figures on the real kernel: slowdown accuracy per level (requested vs
/// observed), kill latency (decision to last process gone), and event throughput through the ring
/// buffer. Each uses the default DEFCON ladder and real processes in managed cgroups.
/// </summary>
public static class EnforcementBench
{
    private static readonly (int Level, int Iterations)[] SlowdownRuns = [(4, 2000), (3, 300), (2, 40)];

    /// <summary>Runs all three; <paramref name="progress"/> is told each step.</summary>
    public static EnforcementResult Run(int killRepetitions = 5, int eventSyscalls = 1_000_000, Action<string>? progress = null)
    {
        string load = BenchLoad.Path;
        var ladder = new DefconConfig();
        var events = new EventCounter();
        using var session = EnforcementSession.Open(new SessionOptions { Defcon = ladder, OnEvent = events.Count });
        var kernel = session.Kernel;

        progress?.Invoke("slowdown accuracy");
        var slowdown = new List<SlowdownAccuracy>();
        foreach (var (level, iterations) in SlowdownRuns)
        {
            using var cgroup = session.Manage($"bench-slow{level}");
            double baseline = KernelOverheadBench.Loop(load, iterations, cgroup.Path).Wall; // DEFCON 5: the loop as is
            kernel.SetDefcon(cgroup.Id, DefconLevel.From(level));
            var before = kernel.State(cgroup.Id)!;
            double slowed = KernelOverheadBench.Loop(load, iterations, cgroup.Path).Wall;
            var after = kernel.State(cgroup.Id)!;
            double accounted = (double)(after.SlowdownNsTotal - before.SlowdownNsTotal) / Math.Max(1, after.Syscalls - before.Syscalls);
            slowdown.Add(new SlowdownAccuracy(level, ladder.Ladder.SlowdownNsFor(DefconLevel.From(level)), slowed - baseline, accounted));
        }

        progress?.Invoke("kill latency");
        var kills = new List<double>();
        const int sleepers = 4;
        using (var policy = session.Install(BuiltinPolicy.Create()))
            for (int i = 0; i < killRepetitions; i++)
                kills.Add(KillOnce(session, policy, sleepers));

        progress?.Invoke("event throughput");
        var throughput = Events(session, events, load, eventSyscalls);
        return new EnforcementResult
        {
            Slowdown = slowdown,
            KillLatency = LatencySummary.Of([.. kills]),
            KillProcesses = sleepers + 1,
            Events = throughput,
        };
    }

    /// <summary>
    /// Starts a shell with <paramref name="sleepers"/> background sleeps under MIS, waits until all
    /// are in the cgroup, then times from the decision that enters DEFCON 1 (one kernel command
    /// through mis_report; user space then writes cgroup.kill) to cgroup.events saying populated 0.
    /// </summary>
    private static double KillOnce(EnforcementSession session, PolicySlot policy, int sleepers)
    {
        string script = string.Concat(Enumerable.Repeat("sleep 60 & ", sleepers)) + "wait";
        using var workload = session.Launch(new EnforcedWorkloadSpec
        {
            Command = ["/bin/sh", "-c", script],
            Policy = policy,
            Identity = WorkloadIdentity.Root,
            Label = "bench-kill",
        });
        var deadline = Stopwatch.StartNew();
        while (workload.Cgroup.Pids().Count < sleepers + 1)
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(30))
                throw new InvalidOperationException($"the kill-latency workload did not start its {sleepers} sleeps within 30 s");
            Thread.Sleep(5);
        }
        string events = Path.Combine(workload.Cgroup.Path, "cgroup.events");
        long start = Stopwatch.GetTimestamp();
        session.Kernel.SetDefcon(workload.CgroupId, DefconLevel.Severest);
        while (!File.ReadAllText(events).Contains("populated 0", StringComparison.Ordinal))
        {
            if (Stopwatch.GetElapsedTime(start) > TimeSpan.FromSeconds(10))
                throw new InvalidOperationException("the killed workload's cgroup was still populated after 10 s");
        }
        double ns = Stopwatch.GetElapsedTime(start).Ticks * 100.0;
        workload.Wait();
        workload.Finish();
        return ns;
    }

    private static EventThroughput Events(EnforcementSession session, EventCounter counter, string load, int syscalls)
    {
        var kernel = session.Kernel;
        using var cgroup = session.Manage("bench-events", learning: true);
        session.WaitForEventsRead(TimeSpan.FromSeconds(5));
        ulong ringBefore = kernel.RingbufDrops;
        long channelBefore = kernel.EventChannelDrops;
        counter.Watch(cgroup.Id);
        var clock = Stopwatch.StartNew();
        KernelOverheadBench.Loop(load, syscalls, cgroup.Path);
        double seconds = clock.Elapsed.TotalSeconds;
        var state = kernel.State(cgroup.Id)!;
        // Every event the kernel wrote reaches the session's reader (or is counted lost) before this returns.
        session.WaitForEventsRead(TimeSpan.FromSeconds(30));
        long delivered = counter.Syscalls;
        return new EventThroughput((long)state.Syscalls, delivered, kernel.RingbufDrops - ringBefore,
            kernel.EventChannelDrops - channelBefore, delivered / seconds);
    }

    /// <summary>Counts the syscall events of one watched cgroup, on the session's event reader.</summary>
    private sealed class EventCounter
    {
        private ulong _cgroupId;
        private long _syscalls;

        internal long Syscalls => Interlocked.Read(ref _syscalls);

        internal void Watch(ulong cgroupId)
        {
            Interlocked.Exchange(ref _syscalls, 0);
            Volatile.Write(ref _cgroupId, cgroupId);
        }

        internal void Count(KernelEvent e)
        {
            if (e.Type == KernelEventType.Syscall && e.CgroupId == Volatile.Read(ref _cgroupId))
                Interlocked.Increment(ref _syscalls);
        }
    }
}
