using Microsoft.Extensions.Logging;
using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Events;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Run;
using Mis.Enforcer.Session;
using Mis.Server.Observability;

namespace Mis.Server.Engine;

// Starting workloads, watching them end, and the kernel's event stream.
public sealed partial class PolicyEngine
{
    private readonly WorkloadRunner.KernelClock _clock = new();

    /// <summary>
    /// Starts a workload: a fresh cgroup under enforcement, the confined launcher, its seccomp
    /// supervisor, then go. Returns once the command is running (its first instruction already
    /// inside the cgroup); a thread of its own then waits for it to end and tears it down.
    /// </summary>
    /// <exception cref="EngineException">Unavailable while stopping; FailedPrecondition when it cannot be launched.</exception>
    internal Task<ManagedWorkload> RunWorkloadAsync(WorkloadSpec spec) => Task.Run(() => RunWorkload(spec));

    private ManagedWorkload RunWorkload(WorkloadSpec spec)
    {
        ThrowIfStopping();
        if (spec.AnomalyMonitoring && _scorer is null)
            throw NoAnomalyModel();
        PolicySlot? own = null;
        EnforcedWorkload? enforced = null;
        ManagedWorkload? workload = null;
        try
        {
            var slot = spec.OwnPolicy is { } fixedPolicy ? own = _session.Install(fixedPolicy) : _global;
            enforced = _session.Launch(new EnforcedWorkloadSpec
            {
                Command = spec.Command,
                Policy = slot,
                Identity = spec.Identity,
                Learning = spec.Learning,
                WorkingDirectory = spec.WorkingDirectory,
                Environment = spec.Environment,
                // Made before its first instruction, so its first syscall already reaches the monitor.
                Anomaly = spec.AnomalyMonitoring ? e => StartAnomalyMonitor(e.CgroupId, () => workload) : null,
                Log = message => _log.SupervisorMessage(enforced?.CgroupId ?? 0, message),
            }, start: false);
            workload = new ManagedWorkload(spec, enforced, slot, DateTimeOffset.UtcNow);
            lock (_gate)
            {
                // Checked again under the lock: a shutdown that began during the launch has
                // already taken its list of workloads to kill, so this one must not start.
                ThrowIfStopping();
                _workloads[workload.CgroupId] = workload;
            }
            enforced.Start();
            Interlocked.Increment(ref _started);
            _log.WorkloadStarted(workload.CgroupId, workload.Pid, string.Join(' ', spec.Command), spec.Identity.Name);
            new Thread(() => Supervise(workload)) { IsBackground = true, Name = $"mis-workload-{workload.CgroupId}" }.Start();
            return workload;
        }
        catch (Exception e)
        {
            if (enforced is not null)
                _workloads.TryRemove(enforced.CgroupId, out _);
            enforced?.Dispose();
            own?.Dispose();
            if (e is WorkloadLaunchException or ArgumentException or IOException)
                throw new EngineException(EngineError.FailedPrecondition, $"cannot start {spec.Command[0]}: {e.Message}", e);
            throw;
        }
    }

    // The workload's own thread: waits for its first process to end, then releases everything
    // it had. What the first process left behind is killed: a workload ends with its first
    // process, as under `mis run`. Nothing may escape this method: an exception on a thread of
    // its own would end the enforcer.
    private void Supervise(ManagedWorkload w)
    {
        WorkloadExit exit = new(null, null);
        CgroupState? state = null;
        try
        {
            exit = w.Enforced.Wait();
            // A graceful kill decides itself when SIGKILL is due; leftovers get their grace too.
            w.GracefulKill?.Wait(TimeSpan.FromMilliseconds(Config.Watchdog.KillGraceMs + 5000));
        }
        catch (Exception e)
        {
            _log.TeardownFailed(w.CgroupId, e.Message);
        }
        try
        {
            // Kills what is left, then its events and anomaly scores come before its exit event.
            var teardown = w.Enforced.Finish();
            state = teardown.State;
            foreach (string fault in teardown.Faults)
                _log.TeardownFailed(w.CgroupId, fault);
            if (w.Policy != _global)
                w.Policy.Dispose();
        }
        catch (Exception e)
        {
            _log.TeardownFailed(w.CgroupId, e.Message);
        }
        try
        {
            if (state?.Killed == true)
                w.TrySetKillReason("DEFCON 1");
            var end = new WorkloadEnd(exit, state, DateTimeOffset.UtcNow);
            // Counters move from the live workload to the totals under the lock Stats() reads
            // them under, so a snapshot never counts a workload twice or not at all.
            lock (_statsGate)
            {
                if (w.KillReason is not null)
                    _killed++;
                _allowedFinished += Interlocked.Read(ref w.Enforced.Decisions.Allowed);
                _decisionsFinished += Interlocked.Read(ref w.Enforced.Decisions.Notifications);
                _learningDeniedFinished += state?.LearningViolations ?? 0;
                if (w.Spec.OwnPolicy is { } own)
                    _decisionCacheRetired += own.DecisionCacheStats;
                if (w.Anomaly?.Progress() is { } anomaly)
                {
                    _anomalyWindowsFinished += anomaly.WindowsScored;
                    _anomalySkippedFinished += anomaly.WindowsSkipped;
                }
                _finished.Enqueue(w);
                _workloads.TryRemove(w.CgroupId, out _);
            }
            while (_finished.Count > FinishedKept && _finished.TryDequeue(out _))
            {
            }
            w.Finish(end);
            Events.Publish(ExitEvent(w, end));
            _log.WorkloadEnded(w.CgroupId, exit.ToString(), w.KillReason ?? "-");
        }
        catch (Exception e)
        {
            _log.TeardownFailed(w.CgroupId, e.Message);
            w.Finish(new WorkloadEnd(exit, state, DateTimeOffset.UtcNow));
        }
    }

    private static EnforcementEvent ExitEvent(ManagedWorkload w, WorkloadEnd end)
    {
        var exit = end.Exit;
        return new EnforcementEvent
        {
            Event = "exit",
            Timestamp = end.At,
            CgroupId = w.CgroupId,
            Pid = w.Pid,
            Comm = Path.GetFileName(w.Spec.Command[0]) is { Length: > 15 } c ? c[..15] : Path.GetFileName(w.Spec.Command[0]),
            Defcon = end.State?.Defcon ?? DefconLevel.NotKnown,
            Violations = end.State?.Violations ?? 0,
            SlowdownNs = end.State?.SlowdownNsTotal ?? 0,
            ExitStatus = exit.Signal is int s ? 128 + s : exit.ExitCode ?? 0,
            Signal = exit.Signal,
            Decision = w.KillReason is null ? "" : "kill",
            Reason = w.KillReason,
        };
    }

    // Every kernel event, from the session's one reader: to the hub; a KILL names the reason of
    // a death the kernel decided.
    private void OnKernelEvent(KernelEvent e)
    {
        if (e.Type == KernelEventType.Kill && _workloads.TryGetValue(e.CgroupId, out var w))
            w.TrySetKillReason("DEFCON 1");
        Events.Publish(RunRecorder.ToEvent(e, _clock.ToWall(e.TimestampNs)));
    }

    // Lost events are reported as they happen (as deltas, once a second), never silently.
    private void OnEventsLost(ulong lost)
    {
        Events.Publish(new EnforcementEvent
        {
            Event = "ringbuf_drop", Timestamp = DateTimeOffset.UtcNow, CgroupId = 0, Defcon = 5, Dropped = lost,
        });
        _log.EventsDropped(lost);
    }
}
