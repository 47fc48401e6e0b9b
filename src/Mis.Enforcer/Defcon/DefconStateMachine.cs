using System.Diagnostics;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Policy;

namespace Mis.Enforcer.Defcon;

/// <summary>What moved a level.</summary>
public enum DefconCause
{
    /// <summary>A counted violation crossed a threshold.</summary>
    Violation,

    /// <summary>Decay forgave violations.</summary>
    Decay,

    /// <summary>The manual override (<see cref="DefconStateMachine.SetLevel"/>) set the count.</summary>
    Override,
}

/// <summary>A DEFCON level change.</summary>
/// <param name="From">Level before.</param>
/// <param name="To">Level after.</param>
/// <param name="Violations">Counted violations after the change.</param>
/// <param name="AtNs">Clock reading when it happened, in nanoseconds.</param>
/// <param name="Cause">What moved it.</param>
public readonly record struct DefconTransition(DefconLevel From, DefconLevel To, ulong Violations, ulong AtNs, DefconCause Cause);

/// <summary>What a syscall of the cgroup costs at the current level.</summary>
/// <param name="SlowdownNs">Busy-wait the kernel would add to this syscall (already added to the total).</param>
/// <param name="Kill">The cgroup is at DEFCON 1 with kill: the task is killed instead.</param>
public readonly record struct SyscallOutcome(ulong SlowdownNs, bool Kill);

/// <summary>
/// The C# twin of the kernel's DEFCON state machine (<c>bpf/include/mis_defcon.h</c>): the same
/// integer arithmetic on the same fields (the level through <see cref="DefconLadder"/>, like
/// <c>mis_level_for</c>), single-threaded and deterministic, with an injected clock. The simulator
/// runs it instead of the kernel; KernelDefconDifferentialTests holds the two to identical
/// trajectories, violations, decay and the manual override alike. Change one, change the other.
/// </summary>
public sealed class DefconStateMachine
{
    private readonly Func<ulong> _clockNs;
    private readonly ulong _decayIntervalNs;
    private readonly ulong _decayAmount;
    private ulong _violations;
    private ulong _decayAnchorNs;

    /// <summary>A fresh cgroup at DEFCON 5.</summary>
    /// <param name="config">Thresholds, slowdowns, decay and kill settings.</param>
    /// <param name="clockNs">Monotonic clock in nanoseconds (tests and the simulator inject their own).</param>
    /// <param name="learning">Start in learning mode.</param>
    /// <exception cref="ArgumentException">Not 4 thresholds and 3 slowdowns.</exception>
    public DefconStateMachine(DefconConfig config, Func<ulong>? clockNs = null, bool learning = false)
    {
        ArgumentNullException.ThrowIfNull(config);
        Config = config;
        Ladder = new DefconLadder(config);
        _clockNs = clockNs ?? MonotonicNs;
        _decayIntervalNs = (ulong)Math.Max(0, config.DecayIntervalMs) * 1_000_000;
        _decayAmount = (ulong)Math.Max(0, config.DecayAmount);
        Learning = learning;
    }

    /// <summary>The configuration this machine runs.</summary>
    public DefconConfig Config { get; }

    /// <summary>The configuration's levels and slowdowns.</summary>
    public DefconLadder Ladder { get; }

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

    /// <summary>Raised on every level change: escalation, decay or override.</summary>
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

    /// <summary>The level now, decay applied.</summary>
    public DefconLevel Level
    {
        get
        {
            Decay(_clockNs());
            return Ladder.LevelFor(_violations);
        }
    }

    /// <summary>Counts one violation (in learning mode only records it) and returns the result. <c>mis_violation</c>.</summary>
    public ViolationOutcome RecordViolation()
    {
        ulong now = _clockNs();
        Decay(now);
        if (Learning)
        {
            LearningViolations++;
            var level = Ladder.LevelFor(_violations);
            return new ViolationOutcome(_violations, level, level);
        }
        _decayAnchorNs = now;
        ulong old = _violations++;
        return Moved(Ladder.LevelFor(old), now, DefconCause.Violation);
    }

    /// <summary>
    /// The manual override, as the kernel's <c>mis_set_level</c> does it (decay applied first, as
    /// <c>mis_report</c> does): the count becomes the entry count of <paramref name="level"/>,
    /// whether that raises or lowers the level, and the decay interval restarts. Entering DEFCON 1
    /// with kill_at_level_1 kills; nothing clears a kill, so a killed cgroup set back to 5 still
    /// dies. Learning mode does not stop it: refusing an override is the caller's policy (the
    /// policy engine refuses lowering without reset, and killed or learning cgroups), not the
    /// state machine's.
    /// </summary>
    public ViolationOutcome SetLevel(DefconLevel level)
    {
        ulong now = _clockNs();
        Decay(now);
        ulong old = _violations;
        _violations = Ladder.EntryViolations(level);
        _decayAnchorNs = now;
        return Moved(Ladder.LevelFor(old), now, DefconCause.Override);
    }

    /// <summary>One syscall of the cgroup, as the kernel's sys_enter hook handles it.</summary>
    public SyscallOutcome Syscall()
    {
        Syscalls++;
        Decay(_clockNs());
        if (Killed)
            return new SyscallOutcome(0, true);
        ulong wait = Ladder.SlowdownNsFor(Ladder.LevelFor(_violations));
        SlowdownNsTotal += wait;
        return new SyscallOutcome(wait, false);
    }

    // The common tail of mis_violation and mis_set_level once the count has moved: the kill on
    // entering DEFCON 1, and the transition.
    private ViolationOutcome Moved(DefconLevel before, ulong now, DefconCause cause)
    {
        var after = Ladder.LevelFor(_violations);
        if (after == DefconLevel.Severest && before != DefconLevel.Severest && Config.KillAtLevel1)
            Killed = true;
        if (before != after)
            Transition?.Invoke(new DefconTransition(before, after, _violations, now, cause));
        return new ViolationOutcome(_violations, before, after);
    }

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
        DefconLevel from = Ladder.LevelFor(before), to = Ladder.LevelFor(_violations);
        if (from != to)
            Transition?.Invoke(new DefconTransition(from, to, _violations, now, DefconCause.Decay));
    }

    private static ulong MonotonicNs() =>
        (ulong)(Stopwatch.GetTimestamp() * (1_000_000_000.0 / Stopwatch.Frequency));
}
