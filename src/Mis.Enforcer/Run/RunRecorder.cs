using Mis.Enforcer.Confinement;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Events;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;

namespace Mis.Enforcer.Run;

/// <summary>
/// Turns one cgroup's kernel events into <see cref="EnforcementEvent"/> lines and remembers what
/// the run summary needs (level changes, violations per operation).
/// </summary>
public sealed class RunRecorder(ulong cgroupId, EventLog log, WorkloadRunner.KernelClock clock)
{
    private readonly List<(int From, int To, ulong Violations)> _transitions = [];
    private readonly Dictionary<string, int> _byOperation = [];
    private readonly Lock _gate = new();
    private ulong _dropsReported;

    // The last level and count the kernel's events told of, for lines written when the kernel
    // has no state to read: every event carries both, and the recorder starts with the cgroup
    // freshly managed, at DEFCON 5 with nothing counted.
    private DefconLevel _lastLevel = DefconLevel.Normal;
    private ulong _lastViolations;

    /// <summary>Receives every syscall event (pid, tid, comm, syscall number): trace files, online scoring.</summary>
    internal Action<KernelEvent>? OnSyscall { get; init; }

    private (DefconLevel Level, ulong Violations) LastKnown()
    {
        lock (_gate)
            return (_lastLevel, _lastViolations);
    }

    /// <summary>
    /// Writes a <c>ringbuf_drop</c> event when events were lost since the last report (kernel ring
    /// buffer full, or the decoded-event channel full), so a gap in the file is never silent.
    /// <paramref name="totalDropped"/> is the session's running total.
    /// </summary>
    internal void ReportDrops(ulong totalDropped, CgroupState? state)
    {
        ulong fresh;
        lock (_gate)
        {
            fresh = totalDropped - Math.Min(totalDropped, _dropsReported);
            _dropsReported = Math.Max(_dropsReported, totalDropped);
        }
        if (fresh == 0)
            return;
        var last = LastKnown();
        log.Write(new EnforcementEvent
        {
            Event = "ringbuf_drop", Timestamp = DateTimeOffset.UtcNow, CgroupId = cgroupId,
            Defcon = state?.Defcon ?? last.Level, Violations = state?.Violations ?? last.Violations, Dropped = fresh,
        });
    }

    internal void Record(KernelEvent e)
    {
        if (e.Type == KernelEventType.Syscall)
            OnSyscall?.Invoke(e);
        var line = ToEvent(e, clock.ToWall(e.TimestampNs));
        lock (_gate)
        {
            if (e.Defcon is >= 1 and <= 5)
                (_lastLevel, _lastViolations) = (DefconLevel.From(e.Defcon), e.Violations);
            if (e.Type == KernelEventType.Defcon)
                _transitions.Add((e.PrevDefcon, e.Defcon, e.Violations));
            if (e.Type == KernelEventType.Violation)
                _byOperation[line.Operation] = _byOperation.GetValueOrDefault(line.Operation) + 1;
        }
        log.Write(line);
    }

    /// <summary>The event line for a kernel record.</summary>
    public static EnforcementEvent ToEvent(KernelEvent e, DateTimeOffset when) => new()
    {
        Event = e.Type switch
        {
            KernelEventType.Violation => "violation",
            KernelEventType.Defcon => "defcon_transition",
            KernelEventType.Kill => "kill",
            KernelEventType.Syscall => "syscall",
            KernelEventType.SlowdownTotal => "slowdown",
            KernelEventType.Trace => "trace",
            _ => $"unknown_{(int)e.Type}",
        },
        Timestamp = when,
        CgroupId = e.CgroupId,
        Pid = e.Pid,
        Tid = e.Tid,
        Comm = e.Comm,
        Operation = e.Type == KernelEventType.Syscall ? "syscall" : OperationName(e.Op),
        Target = e.Target,
        Decision = e.Type switch
        {
            KernelEventType.Violation => "deny",
            KernelEventType.Trace => "trace",
            KernelEventType.Kill => "kill",
            _ => "",
        },
        Defcon = e.Defcon,
        Violations = e.Violations,
        PrevDefcon = e.Type == KernelEventType.Defcon ? e.PrevDefcon : null,
        SlowdownNs = e.Type == KernelEventType.SlowdownTotal ? e.Value : null,
        SyscallNr = e.Type == KernelEventType.Syscall ? (int)e.Value : null,
        DecidedBy = e.Type is KernelEventType.Violation or KernelEventType.Trace ? DecidedByName(e.Value) : null,
        Reason = e.Type == KernelEventType.Violation && e.Learning ? "learning mode: recorded, not counted" : null,
    };

    /// <summary>The deny point a violation or trace record names (<c>MIS_DECIDED_*</c> in its value).</summary>
    internal static string DecidedByName(ulong value) => value switch
    {
        (ulong)MisDecidedBy.Lsm => "lsm",
        (ulong)MisDecidedBy.Supervisor => "seccomp",
        _ => "kernel",
    };

    internal static string OperationName(ViolationOp? op) => op switch
    {
        ViolationOp.FileRead => "file_read",
        ViolationOp.FileWrite => "file_write",
        ViolationOp.Exec => "exec",
        ViolationOp.Connect => "connect",
        ViolationOp.Send => "send",
        ViolationOp.EscapeSyscall => "escape_syscall",
        _ => "",
    };

    /// <summary>Writes the closing events and builds the result.</summary>
    internal RunResult Finish(WorkloadExit exit, CgroupState? state, ulong dropped, TimeSpan duration)
    {
        var now = DateTimeOffset.UtcNow;
        ulong slowdownNs = state?.SlowdownNsTotal ?? 0;
        var last = LastKnown();
        int defcon = state?.Defcon ?? last.Level;
        ulong violations = state?.Violations ?? last.Violations;
        int status = exit.Signal is int s ? 128 + s : exit.ExitCode ?? 0;
        ReportDrops(dropped, state);
        log.Write(new EnforcementEvent { Event = "slowdown", Timestamp = now, CgroupId = cgroupId, Defcon = defcon, Violations = violations, SlowdownNs = slowdownNs });
        log.Write(new EnforcementEvent
        {
            Event = "exit", Timestamp = now, CgroupId = cgroupId, Defcon = defcon, Violations = violations,
            SlowdownNs = slowdownNs, ExitStatus = status, Signal = exit.Signal,
            Decision = state?.Killed == true ? "kill" : "",
        });
        lock (_gate)
        {
            return new RunResult
            {
                Exit = exit,
                CgroupId = cgroupId,
                Violations = violations,
                Defcon = defcon,
                KilledByMis = state?.Killed == true,
                Slowdown = TimeSpan.FromTicks((long)(slowdownNs / 100)),
                Syscalls = state?.Syscalls ?? 0,
                Transitions = [.. _transitions],
                ViolationsByOperation = new Dictionary<string, int>(_byOperation),
                EventsWritten = log.Count,
                EventsDropped = dropped,
                Duration = duration,
            };
        }
    }
}
