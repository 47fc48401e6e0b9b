using System.Diagnostics;
using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Events;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;

namespace Mis.Enforcer.Run;

/// <summary>
/// Runs one command under real enforcement, start to finish: a fresh cgroup, the kernel programs
/// for it, the confined launcher and its seccomp supervisor, the event log; then tears all of it
/// down. Everything the run created is gone when <see cref="Run"/> returns, whichever way it ends.
/// </summary>
internal static class WorkloadRunner
{
    private const uint PolicyId = 1;

    /// <summary>Runs <paramref name="request"/>; <paramref name="cancel"/> kills the workload early.</summary>
    /// <exception cref="KernelUnavailableException">This host or build cannot enforce (the message says why).</exception>
    /// <exception cref="WorkloadLaunchException">The command could not be started confined.</exception>
    internal static RunResult Run(RunRequest request, CancellationToken cancel = default)
    {
        // Only learning mode makes the kernel report every syscall: traces and scoring need it.
        if (!request.Learn && (request.TracesDirectory is not null || request.AnomalyScorer is not null))
            throw new ArgumentException("trace files and anomaly scoring need learning mode (--learn): only then does the kernel report each syscall");
        var started = Stopwatch.StartNew();
        var clock = new KernelClock();
        using var kernel = KernelEnforcer.Open(request.Config.Defcon, new KernelEnforcerOptions { CgroupRoot = request.Config.Paths.CgroupRoot });
        using var cgroups = WorkloadCgroups.Create(kernel.MisRoot);
        using var guard = CgroupGuard.Start(cgroups.Root);
        using var events = new EventLog(request.EventsPath);

        kernel.SetNetRules(PolicyId, request.Policy.NetRules);
        kernel.SetUnixRules(PolicyId, request.Policy.UnixRules);
        kernel.SetExecDeny(PolicyId, ExecDenyFiles(request.Policy));

        using var cgroup = cgroups.CreateWorkload(Path.GetFileName(request.Command[0]));
        kernel.Manage(cgroup.Path, request.Learn, PolicyId);
        var traces = request.TracesDirectory is null ? null : new TraceRecorder();
        var monitor = request.AnomalyScorer is not { } scorer ? null : new AnomalyMonitor(scorer,
            new AnomalySettings(request.Config.Policy.AnomalyThreshold, request.Config.Policy.KillOnAnomaly), cgroup.Id, events, cgroup.Kill);
        var record = new RunRecorder(cgroup.Id, events, clock)
        {
            OnSyscall = traces is null && monitor is null ? null : e =>
            {
                traces?.Add(e.Pid, e.Tid, e.Comm, (int)e.Value);
                monitor?.Add(e.Pid, e.Tid, e.Comm, (int)e.Value);
            },
        };
        using var pumpStop = new CancellationTokenSource();
        var pump = Task.WhenAll(
            Task.Run(() => record.Pump(kernel, pumpStop.Token)),
            Task.Run(() => record.WatchDrops(kernel, pumpStop.Token)));
        try
        {
            using var workload = new WorkloadLauncher().Launch(new LaunchSpec
            {
                CgroupPath = cgroup.Path,
                Command = request.Command,
                Identity = request.Identity,
                WorkingDirectory = request.WorkingDirectory,
                Environment = request.Environment ?? LaunchSpec.DefaultEnvironment,
                Stdin = request.Stdin,
                Stdout = request.Stdout,
                Stderr = request.Stderr,
            });
            using var supervisor = SeccompSupervisor.Start(workload, request.Policy, kernel);
            workload.Go();
            WorkloadExit exit;
            using (cancel.Register(cgroup.Kill))
                exit = workload.WaitForExit();

            // The kernel wrote its events before the last task died: all of them before the exit event.
            record.WaitForKernelEvents(kernel, TimeSpan.FromSeconds(5));
            var anomaly = monitor?.Finish(); // its events before the exit event, which closes the file
            var traceFiles = traces?.WriteTo(request.TracesDirectory!) ?? [];
            return record.Finish(exit, kernel.State(cgroup.Id), kernel.RingbufDrops + (ulong)kernel.EventChannelDrops, started.Elapsed)
                with { Anomaly = anomaly, TraceFiles = traceFiles };
        }
        finally
        {
            pumpStop.Cancel();
            monitor?.Stop();
            try
            {
                pump.Wait(TimeSpan.FromSeconds(2));
            }
            catch (AggregateException)
            {
            }
            kernel.Unmanage(cgroup.Id);
        }
    }

    // Concrete paths denied for exec also go to the kernel, which kills a task that execs one of
    // them after a path race the supervisor could not see (see bpf: sched_process_exec).
    private static IEnumerable<(ulong Device, ulong Inode)> ExecDenyFiles(WorkloadPolicy policy) =>
        policy.FileRules
            .Where(r => r.Action == Verdict.Deny && r.Ops.HasFlag(FileOps.Exec) && r.Identity is not null)
            .Select(r => (r.Identity!.Value.Device, r.Identity.Value.Inode))
            .Concat(policy.InodeRules.Where(r => r.Action == Verdict.Deny).Select(r => (r.Device, r.Inode)))
            .Distinct();

    /// <summary>Maps kernel CLOCK_MONOTONIC timestamps to wall-clock time (Stopwatch is CLOCK_MONOTONIC in ns on Linux).</summary>
    internal sealed class KernelClock
    {
        private readonly DateTimeOffset _wallAtStart = DateTimeOffset.UtcNow;
        private readonly long _monotonicAtStart = Stopwatch.GetTimestamp();

        internal DateTimeOffset ToWall(ulong monotonicNs) =>
            _wallAtStart.AddTicks(((long)monotonicNs - _monotonicAtStart * (1_000_000_000 / Stopwatch.Frequency)) / 100);
    }
}
