using System.Diagnostics;
using System.Globalization;
using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;

namespace Mis.Enforcer.Bench;

/// <summary>One DEFCON level's slowdown: what the ladder asks per syscall and what a getppid loop observed.</summary>
/// <param name="Level">DEFCON level (4, 3, 2).</param>
/// <param name="RequestedNs">The ladder's per-syscall slowdown.</param>
/// <param name="ObservedNs">Wall time per call in the slowed cgroup minus the same loop's time unslowed.</param>
/// <param name="KernelAccountedNs">What the kernel counted as slowdown per syscall of the cgroup.</param>
internal sealed record SlowdownAccuracy(int Level, double RequestedNs, double ObservedNs, double KernelAccountedNs)
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
internal sealed record EventThroughput(long Syscalls, long Delivered, ulong RingbufDrops, long ChannelDrops, double DeliveredPerSecond);

/// <summary>What <see cref="EnforcementBench"/> measured end to end on the real kernel.</summary>
internal sealed record EnforcementResult
{
    /// <summary>Per level 4, 3, 2.</summary>
    internal required IReadOnlyList<SlowdownAccuracy> Slowdown { get; init; }

    /// <summary>From the decision that enters DEFCON 1 to the cgroup's last process gone, over repetitions.</summary>
    internal required LatencySummary KillLatency { get; init; }

    /// <summary>Processes in the workload each kill had to end.</summary>
    internal required int KillProcesses { get; init; }

    /// <summary>Event throughput.</summary>
    internal required EventThroughput Events { get; init; }
}

/// <summary>
/// End-to-end enforcement figures on the real kernel: slowdown accuracy per level (requested vs
/// observed), kill latency (decision to last process gone), and event throughput through the ring
/// buffer. Each uses the default DEFCON ladder and real processes in managed cgroups.
/// </summary>
internal static class EnforcementBench
{
    private static readonly (int Level, int Iterations)[] SlowdownRuns = [(4, 2000), (3, 300), (2, 40)];

    /// <summary>Runs all three; <paramref name="progress"/> is told each step.</summary>
    internal static EnforcementResult Run(int killRepetitions = 5, int eventSyscalls = 1_000_000, Action<string>? progress = null)
    {
        string load = BenchLoad.Path;
        var ladder = new DefconConfig();
        using var kernel = KernelEnforcer.Open(ladder);
        using var cgroups = WorkloadCgroups.Create(kernel.MisRoot);
        using var guard = CgroupGuard.Start(cgroups.Root);

        progress?.Invoke("slowdown accuracy");
        var slowdown = new List<SlowdownAccuracy>();
        foreach (var (level, iterations) in SlowdownRuns)
        {
            using var cgroup = cgroups.CreateWorkload($"bench-slow{level}");
            kernel.Manage(cgroup.Path, learning: false);
            try
            {
                double baseline = KernelOverheadBench.Loop(load, iterations, cgroup.Path).Wall; // DEFCON 5: the loop as is
                kernel.SetDefcon(cgroup.Id, DefconLevel.From(level));
                var before = kernel.State(cgroup.Id)!;
                double slowed = KernelOverheadBench.Loop(load, iterations, cgroup.Path).Wall;
                var after = kernel.State(cgroup.Id)!;
                double accounted = (double)(after.SlowdownNsTotal - before.SlowdownNsTotal) / Math.Max(1, after.Syscalls - before.Syscalls);
                slowdown.Add(new SlowdownAccuracy(level, ladder.Ladder.SlowdownNsFor(DefconLevel.From(level)), slowed - baseline, accounted));
            }
            finally
            {
                kernel.Unmanage(cgroup.Id);
            }
        }

        progress?.Invoke("kill latency");
        var kills = new List<double>();
        const int sleepers = 4;
        for (int i = 0; i < killRepetitions; i++)
            kills.Add(KillOnce(kernel, cgroups, sleepers));

        progress?.Invoke("event throughput");
        var events = Events(kernel, cgroups, load, eventSyscalls);
        return new EnforcementResult
        {
            Slowdown = slowdown,
            KillLatency = LatencySummary.Of([.. kills]),
            KillProcesses = sleepers + 1,
            Events = events,
        };
    }

    /// <summary>
    /// Starts a shell with <paramref name="sleepers"/> background sleeps under MIS, waits until all
    /// are in the cgroup, then times from the decision that enters DEFCON 1 (one kernel command
    /// through mis_report; user space then writes cgroup.kill) to cgroup.events saying populated 0.
    /// </summary>
    private static double KillOnce(KernelEnforcer kernel, WorkloadCgroups cgroups, int sleepers)
    {
        using var cgroup = cgroups.CreateWorkload("bench-kill");
        kernel.Manage(cgroup.Path, learning: false);
        try
        {
            string script = string.Concat(Enumerable.Repeat("sleep 60 & ", sleepers)) + "wait";
            using var workload = new WorkloadLauncher().Launch(new LaunchSpec
            {
                CgroupPath = cgroup.Path,
                Command = ["/bin/sh", "-c", script],
                Identity = WorkloadIdentity.Root,
            });
            using var supervisor = SeccompSupervisor.Start(workload, BuiltinPolicy.Create(), kernel);
            workload.Go();
            var deadline = Stopwatch.StartNew();
            while (cgroup.Pids().Count < sleepers + 1)
            {
                if (deadline.Elapsed > TimeSpan.FromSeconds(30))
                    throw new InvalidOperationException($"the kill-latency workload did not start its {sleepers} sleeps within 30 s");
                Thread.Sleep(5);
            }
            string events = Path.Combine(cgroup.Path, "cgroup.events");
            long start = Stopwatch.GetTimestamp();
            kernel.SetDefcon(cgroup.Id, DefconLevel.Severest);
            while (!File.ReadAllText(events).Contains("populated 0", StringComparison.Ordinal))
            {
                if (Stopwatch.GetElapsedTime(start) > TimeSpan.FromSeconds(10))
                    throw new InvalidOperationException("the killed workload's cgroup was still populated after 10 s");
            }
            double ns = Stopwatch.GetElapsedTime(start).Ticks * 100.0;
            workload.WaitForExit();
            return ns;
        }
        finally
        {
            kernel.Unmanage(cgroup.Id);
        }
    }

    private static EventThroughput Events(KernelEnforcer kernel, WorkloadCgroups cgroups, string load, int syscalls)
    {
        using var cgroup = cgroups.CreateWorkload("bench-events");
        kernel.Manage(cgroup.Path, learning: true);
        try
        {
            while (kernel.Events.TryRead(out _))
            {
            }
            ulong ringBefore = kernel.RingbufDrops;
            long channelBefore = kernel.EventChannelDrops;
            long delivered = 0;
            using var stop = new CancellationTokenSource();
            var reader = Task.Run(async () =>
            {
                try
                {
                    while (await kernel.Events.WaitToReadAsync(stop.Token))
                        while (kernel.Events.TryRead(out var e))
                            if (e.Type == KernelEventType.Syscall && e.CgroupId == cgroup.Id)
                                Interlocked.Increment(ref delivered);
                }
                catch (OperationCanceledException)
                {
                }
            });
            var clock = Stopwatch.StartNew();
            KernelOverheadBench.Loop(load, syscalls, cgroup.Path);
            double seconds = clock.Elapsed.TotalSeconds;
            var state = kernel.State(cgroup.Id)!;
            // Let the pump drain what is still in the ring buffer, then stop reading.
            long seen;
            do
            {
                seen = Interlocked.Read(ref delivered);
                Thread.Sleep(200);
            }
            while (Interlocked.Read(ref delivered) != seen);
            stop.Cancel();
            reader.Wait();
            return new EventThroughput((long)state.Syscalls, delivered, kernel.RingbufDrops - ringBefore,
                kernel.EventChannelDrops - channelBefore, delivered / seconds);
        }
        finally
        {
            kernel.Unmanage(cgroup.Id);
        }
    }
}
