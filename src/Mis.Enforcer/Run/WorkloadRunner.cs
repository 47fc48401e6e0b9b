using System.Diagnostics;
using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Events;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Session;

namespace Mis.Enforcer.Run;

/// <summary>
/// Runs one command under real enforcement, start to finish: a fresh cgroup, the kernel programs
/// for it, the confined launcher and its seccomp supervisor, the event log; then tears all of it
/// down. Everything the run created is gone when <see cref="Run"/> returns, whichever way it ends.
/// </summary>
public static class WorkloadRunner
{
    /// <summary>Runs <paramref name="request"/>; <paramref name="cancel"/> kills the workload early.</summary>
    /// <exception cref="KernelUnavailableException">This host or build cannot enforce (the message says why).</exception>
    /// <exception cref="WorkloadLaunchException">The command could not be started confined.</exception>
    public static RunResult Run(RunRequest request, CancellationToken cancel = default)
    {
        // Only learning mode makes the kernel report every syscall: traces and scoring need it.
        if (!request.Learn && (request.TracesDirectory is not null || request.AnomalyScorer is not null))
            throw new ArgumentException("trace files and anomaly scoring need learning mode (--learn): only then does the kernel report each syscall");
        var started = Stopwatch.StartNew();
        var clock = new KernelClock();
        using var events = new EventLog(request.EventsPath);
        RunRecorder? record = null;
        EnforcedWorkload? workload = null;
        EnforcementSession? opened = null;
        using var session = opened = EnforcementSession.Open(new SessionOptions
        {
            Defcon = request.Config.Defcon,
            Kernel = new KernelEnforcerOptions { CgroupRoot = request.Config.Paths.CgroupRoot },
            FileBackend = request.FileBackend,
            OnEventsLost = _ => record?.ReportDrops(opened!.EventsLost, workload?.State()),
        });
        using var policy = session.Install(request.Policy);
        var traces = request.TracesDirectory is null ? null : new TraceRecorder();
        var settings = new AnomalySettings(request.Config.Policy.AnomalyThreshold, request.Config.Policy.KillOnAnomaly);
        workload = session.Launch(new EnforcedWorkloadSpec
        {
            Command = request.Command,
            Policy = policy,
            Identity = request.Identity ?? WorkloadIdentity.Default,
            Learning = request.Learn,
            WorkingDirectory = request.WorkingDirectory,
            Environment = request.Environment ?? LaunchSpec.DefaultEnvironment,
            Stdin = request.Stdin,
            Stdout = request.Stdout,
            Stderr = request.Stderr,
            Anomaly = request.AnomalyScorer is not { } scorer ? null : w => new AnomalyMonitor(scorer, settings, w.CgroupId, events, w.Kill),
            OnEvent = e => record?.Record(e),
        }, start: false);
        using (workload)
        {
            record = new RunRecorder(workload.CgroupId, events, clock)
            {
                OnSyscall = traces is null ? null : e => traces.Add(e.Pid, e.Tid, e.Comm, (int)e.Value),
            };
            workload.Start();
            WorkloadExit exit;
            using (cancel.Register(workload.Kill))
                exit = workload.Wait();
            // The kernel wrote its events before the last task died: all of them before the exit event.
            var end = workload.Finish();
            var traceFiles = traces?.WriteTo(request.TracesDirectory!) ?? [];
            return record.Finish(exit, end.State, session.EventsLost, started.Elapsed)
                with { Anomaly = end.Anomaly, TraceFiles = traceFiles, FileBackend = workload.FileBackend };
        }
    }

    /// <summary>Maps kernel CLOCK_MONOTONIC timestamps to wall-clock time (Stopwatch is CLOCK_MONOTONIC in ns on Linux).</summary>
    public sealed class KernelClock
    {
        private readonly DateTimeOffset _wallAtStart = DateTimeOffset.UtcNow;
        private readonly long _monotonicAtStart = Stopwatch.GetTimestamp();

        /// <summary>The wall-clock time of kernel timestamp <paramref name="monotonicNs"/> (CLOCK_MONOTONIC, ns).</summary>
        public DateTimeOffset ToWall(ulong monotonicNs) =>
            _wallAtStart.AddTicks(((long)monotonicNs - _monotonicAtStart * (1_000_000_000 / Stopwatch.Frequency)) / 100);
    }
}
