using System.Diagnostics;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Policy;

namespace Mis.Enforcer.Defcon;

/// <summary>A DEFCON level change.</summary>
/// <param name="From">Level before (5..1).</param>
/// <param name="To">Level after (5..1).</param>
/// <param name="Violations">Counted violations after the change.</param>
/// <param name="AtNs">Clock reading when it happened, in nanoseconds.</param>
/// <param name="ByDecay">True when decay lowered the count, false when a violation raised it.</param>
internal readonly record struct DefconTransition(int From, int To, ulong Violations, ulong AtNs, bool ByDecay);

/// <summary>What a syscall of the cgroup costs at the current level.</summary>
/// <param name="SlowdownNs">Busy-wait the kernel would add to this syscall (already added to the total).</param>
/// <param name="Kill">The cgroup is at DEFCON 1 with kill: the task is killed instead.</param>
internal readonly record struct SyscallOutcome(ulong SlowdownNs, bool Kill);

/// <summary>
/// The C# twin of the kernel's DEFCON state machine (<c>bpf/include/mis_defcon.h</c>): the same
/// integer arithmetic on the same fields, single-threaded and deterministic, with an injected
/// clock. The simulator runs it instead of the kernel; KernelDefconDifferentialTests holds the
/// two to identical level trajectories. Change one, change the other.
/// </summary>
internal sealed class DefconStateMachine
{
    private readonly Func<ulong> _clockNs;
    private readonly ulong[] _thresholds;
    private readonly ulong[] _slowdownNs;
    private readonly ulong _decayIntervalNs;
    private readonly ulong _decayAmount;
    private ulong _violations;
    private ulong _decayAnchorNs;

    /// <summary>A fresh cgroup at DEFCON 5.</summary>
    /// <param name="config">Thresholds, slowdowns, decay and kill settings.</param>
    /// <param name="clockNs">Monotonic clock in nanoseconds (tests and the simulator inject their own).</param>
    /// <param name="learning">Start in learning mode.</param>
    public DefconStateMachine(DefconConfig config, Func<ulong>? clockNs = null, bool learning = false)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Thresholds.Count != 4 || config.SlowdownUs.Count != 3)
            throw new ArgumentException($"expected 4 thresholds and 3 slowdowns, got {config.Thresholds.Count} and {config.SlowdownUs.Count}", nameof(config));
        Config = config;
        _clockNs = clockNs ?? MonotonicNs;
        _thresholds = config.Thresholds.Select(t => (ulong)Math.Max(0, t)).ToArray();
        _slowdownNs = config.SlowdownUs.Select(us => (ulong)Math.Max(0, us) * 1000).ToArray();
        _decayIntervalNs = (ulong)Math.Max(0, config.DecayIntervalMs) * 1_000_000;
        _decayAmount = (ulong)Math.Max(0, config.DecayAmount);
        Learning = learning;
    }

    /// <summary>The configuration this machine runs.</summary>
    public DefconConfig Config { get; }

    /// <summary>Learning mode: violations are recorded but do not escalate.</summary>
    public bool Learning { get; set; }

    /// <summary>DEFCON 1 was entered with kill_at_level_1: the cgroup is being killed. Final.</summary>
    public bool Killed { get; private set; }

    /// <summary>Denials seen in learning mode (not counted).</summary>
    public ulong LearningViolations { get; private set; }

    /// <summary>Total busy-wait charged to the cgroup's syscalls.</summary>
    public ulong SlowdownNsTotal { get; private set; }

    /// <summary>Syscalls seen.</summary>
    public ulong Syscalls { get; private set; }

    /// <summary>Raised on every level change, escalation or decay.</summary>
    public event Action<DefconTransition>? Transition;

    /// <summary>Counted violations now, decay applied.</summary>
    public ulong Violations
    {
        get
        {
            Decay(_clockNs());
            return _violations;
        }
    }

    /// <summary>The level now (5..1), decay applied.</summary>
    public int Level
    {
        get
        {
            Decay(_clockNs());
            return LevelFor(_violations);
        }
    }

    /// <summary>Counts one violation (in learning mode only records it) and returns the result.</summary>
    public ViolationOutcome RecordViolation()
    {
        ulong now = _clockNs();
        Decay(now);
        if (Learning)
        {
            LearningViolations++;
            int level = LevelFor(_violations);
            return new ViolationOutcome(_violations, level, level);
        }
        _decayAnchorNs = now;
        ulong old = _violations++;
        int before = LevelFor(old), after = LevelFor(_violations);
        if (after == 1 && before != 1 && Config.KillAtLevel1)
            Killed = true;
        if (before != after)
            Transition?.Invoke(new DefconTransition(before, after, _violations, now, ByDecay: false));
        return new ViolationOutcome(_violations, before, after);
    }

    /// <summary>One syscall of the cgroup, as the kernel's sys_enter hook handles it.</summary>
    public SyscallOutcome Syscall()
    {
        Syscalls++;
        Decay(_clockNs());
        if (Killed)
            return new SyscallOutcome(0, true);
        ulong wait = SlowdownNsFor(LevelFor(_violations));
        SlowdownNsTotal += wait;
        return new SyscallOutcome(wait, false);
    }

    /// <summary>The level for a violation count: 5 minus the thresholds reached.</summary>
    public int LevelFor(ulong violations)
    {
        int level = 5;
        foreach (ulong threshold in _thresholds)
            if (violations >= threshold)
                level--;
        return Math.Max(level, 1);
    }

    /// <summary>Per-syscall busy-wait at a level: 0 at 5, the configured one at 4/3/2, level 2's at 1.</summary>
    public ulong SlowdownNsFor(int level) => level switch
    {
        >= 5 => 0,
        4 => _slowdownNs[0],
        3 => _slowdownNs[1],
        _ => _slowdownNs[2],
    };

    // mis_decay: every full interval since the anchor (last violation or last decay step)
    // forgives decay_amount violations; a killed cgroup does not decay.
    private void Decay(ulong now)
    {
        if (_decayIntervalNs == 0 || Killed)
            return;
        if (now <= _decayAnchorNs || now - _decayAnchorNs < _decayIntervalNs)
            return;
        ulong steps = (now - _decayAnchorNs) / _decayIntervalNs;
        _decayAnchorNs += steps * _decayIntervalNs;
        if (_decayAmount == 0 || _violations == 0)
            return;
        ulong ceil = _violations / _decayAmount + (_violations % _decayAmount != 0 ? 1UL : 0UL);
        ulong before = _violations;
        _violations = steps >= ceil ? 0 : _violations - steps * _decayAmount;
        int from = LevelFor(before), to = LevelFor(_violations);
        if (from != to)
            Transition?.Invoke(new DefconTransition(from, to, _violations, now, ByDecay: true));
    }

    private static ulong MonotonicNs() =>
        (ulong)(Stopwatch.GetTimestamp() * (1_000_000_000.0 / Stopwatch.Frequency));
}
