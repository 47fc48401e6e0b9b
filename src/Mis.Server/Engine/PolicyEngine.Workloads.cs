using Microsoft.Extensions.Logging;
using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Events;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Run;
using Mis.Server.Observability;

namespace Mis.Server.Engine;

// Starting workloads, watching them end, and the kernel's event stream.
internal sealed partial class PolicyEngine
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
        var cgroup = _cgroups.CreateWorkload(Path.GetFileName(spec.Command[0]));
        uint policyId = GlobalPolicyId;
        bool managed = false;
        Workload? process = null;
        SeccompSupervisor? supervisor = null;
        AnomalyMonitor? monitor = null;
        try
        {
            if (spec.OwnPolicy is { } own)
            {
                policyId = Interlocked.Increment(ref _nextPolicyId);
                _kernel.SetNetRules(policyId, own.NetRules);
                _kernel.SetUnixRules(policyId, own.UnixRules);
                _kernel.SetExecDeny(policyId, ExecDenyFiles(own, _runtime.Active.Where(r => r.Action == Enforcer.Policy.Verdict.Deny).ToList()));
            }
            _kernel.Manage(cgroup.Path, spec.Learning, policyId);
            managed = true;
            process = _launcher.Launch(new LaunchSpec
            {
                CgroupPath = cgroup.Path,
                Command = spec.Command,
                Identity = spec.Identity,
                WorkingDirectory = spec.WorkingDirectory,
                Environment = spec.Environment,
            });
            var decider = spec.OwnPolicy is { } fixedPolicy ? new EngineDecider(_runtime, () => fixedPolicy) : new EngineDecider(_runtime, () => Policy);
            supervisor = SeccompSupervisor.Start(process, decider, _kernel, message => _log.SupervisorMessage(cgroup.Id, message));
            var workload = new ManagedWorkload(spec, cgroup, process, supervisor, policyId,
                spec.OwnPolicy?.Name ?? Policy.Name, DateTimeOffset.UtcNow);
            monitor = StartAnomalyMonitor(workload);
            workload.Anomaly = monitor;
            lock (_gate)
            {
                // Checked again under the lock: a shutdown that began during the launch has
                // already taken its list of workloads to kill, so this one must not start.
                ThrowIfStopping();
                _workloads[cgroup.Id] = workload;
            }
            process.Go();
            Interlocked.Increment(ref _started);
            _log.WorkloadStarted(cgroup.Id, process.Pid, string.Join(' ', spec.Command), spec.Identity.Name);
            new Thread(() => Supervise(workload)) { IsBackground = true, Name = $"mis-workload-{cgroup.Id}" }.Start();
            return workload;
        }
        catch (Exception e)
        {
            _workloads.TryRemove(cgroup.Id, out _);
            monitor?.Stop();
            supervisor?.Dispose();
            process?.Dispose();
            if (managed)
                _kernel.Unmanage(cgroup.Id);
            if (policyId != GlobalPolicyId)
                ClearPolicyRules(policyId);
            cgroup.Dispose();
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
            exit = w.Process.WaitForExit();
            // A graceful kill decides itself when SIGKILL is due; leftovers get their grace too.
            w.GracefulKill?.Wait(TimeSpan.FromMilliseconds(Config.Watchdog.KillGraceMs + 5000));
            w.Cgroup.Kill();
            w.Cgroup.WaitEmpty(TimeSpan.FromSeconds(5));
            w.Supervisor.Completion.Wait(TimeSpan.FromSeconds(2));
        }
        catch (Exception e)
        {
            _log.TeardownFailed(w.CgroupId, e.Message);
        }
        try
        {
            WaitForKernelEvents(); // the workload's events come before its exit event
            FinishAnomalyMonitor(w); // so do its anomaly scores
        }
        catch (Exception e)
        {
            _log.TeardownFailed(w.CgroupId, $"anomaly scoring: {e.Message}");
        }
        try
        {
            w.Supervisor.Dispose();
            state = _kernel.State(w.CgroupId);
            _kernel.Unmanage(w.CgroupId);
            if (w.PolicyId != GlobalPolicyId)
                ClearPolicyRules(w.PolicyId);
            w.Process.Dispose();
            w.Cgroup.Dispose();
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
                _allowedFinished += Interlocked.Read(ref w.Supervisor.Stats.Allowed);
                _decisionsFinished += Interlocked.Read(ref w.Supervisor.Stats.Notifications);
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

    private void ClearPolicyRules(uint policyId)
    {
        try
        {
            _kernel.SetNetRules(policyId, []);
            _kernel.SetUnixRules(policyId, []);
            _kernel.SetExecDeny(policyId, []);
        }
        catch (ObjectDisposedException)
        {
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

    // The single reader of the kernel's event channel: every event goes to the hub; a KILL names
    // the reason of a death the kernel decided.
    private async Task PumpEvents(CancellationToken stop)
    {
        try
        {
            await foreach (var e in _kernel.Events.ReadAllAsync(stop).ConfigureAwait(false))
            {
                if (e.Type == KernelEventType.Kill && _workloads.TryGetValue(e.CgroupId, out var w))
                    w.TrySetKillReason("DEFCON 1");
                FeedAnomalyMonitor(e);
                Events.Publish(RunRecorder.ToEvent(e, _clock.ToWall(e.TimestampNs)));
                Interlocked.Increment(ref _kernelEventsRead);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    // Called once the workload's cgroup is empty: its tasks wrote all their events, and this waits
    // until the pump above has published every one of them.
    private void WaitForKernelEvents() => _kernel.WaitForEventsRead(() => Interlocked.Read(ref _kernelEventsRead), EventFlushLimit);

    // Lost events are reported as they happen (as deltas, once a second), never silently.
    private async Task WatchDrops(CancellationToken stop)
    {
        ulong reported = 0;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                ulong total = _kernel.RingbufDrops + (ulong)_kernel.EventChannelDrops;
                if (total <= reported)
                    continue;
                Events.Publish(new EnforcementEvent
                {
                    Event = "ringbuf_drop", Timestamp = DateTimeOffset.UtcNow, CgroupId = 0, Defcon = 5, Dropped = total - reported,
                });
                _log.EventsDropped(total - reported);
                reported = total;
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
