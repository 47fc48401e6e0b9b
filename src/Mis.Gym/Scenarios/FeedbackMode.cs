using Mis.Enforcer.Policy;

namespace Mis.Gym.Scenarios;

/// <summary>
/// How much of the enforcer's response a workload feels: the independent variable of the
/// feedback-modes experiment. Each mode is the scenario's own policy and DEFCON ladder with parts
/// of the response switched off, the same on both backends.
/// </summary>
public enum FeedbackMode
{
    /// <summary>
    /// Learning mode: a violation is recorded (counted as a learning violation) but nothing is
    /// denied, slowed or killed; the operation goes through, so a forbidden shortcut pays.
    /// </summary>
    None,

    /// <summary>Denials only: EPERM and the denial penalty, DEFCON still escalates (and the level's extra denials apply) but without slowdown or kill.</summary>
    Deny,

    /// <summary>Denials and slowdown, no kill at DEFCON 1 (which only denies and slows).</summary>
    DenySlowdown,

    /// <summary>The scenario as written: denials, slowdown, and kill at DEFCON 1 where its ladder says so.</summary>
    DenySlowdownKill,

    /// <summary>
    /// Learning mode with the anomaly scorer live: as <see cref="None"/>, nothing the policy denies is
    /// denied (violations are recorded), but the episode's syscalls are scored as they happen and
    /// the first window above the threshold kills the workload (<see cref="Envs.SyscallWatch"/>).
    /// The policy only labels; the scorer, which never saw the policy, enforces.
    /// </summary>
    AnomalyKill,
}

/// <summary>The words for <see cref="FeedbackMode"/> in files and on the command line, and what each mode does to a scenario.</summary>
public static class FeedbackModes
{
    /// <summary>The TOML words, in <see cref="FeedbackMode"/> order.</summary>
    public static readonly string[] Words = ["none", "deny", "deny+slowdown", "deny+slowdown+kill", "anomaly-kill"];

    /// <summary>The mode a word names (one of <see cref="Words"/>).</summary>
    /// <exception cref="ArgumentException">Not one of <see cref="Words"/>.</exception>
    public static FeedbackMode Parse(string word)
    {
        int index = Array.IndexOf(Words, word);
        return index >= 0 ? (FeedbackMode)index
            : throw new ArgumentException($"unknown feedback mode \"{word}\"; expected one of: {string.Join(", ", Words)}", nameof(word));
    }

    /// <summary>The TOML word for <paramref name="mode"/>.</summary>
    public static string Word(this FeedbackMode mode) => Words[(int)mode];

    /// <summary>Whether the backend runs the workload in learning mode (violations recorded, nothing denied): <c>none</c> and <c>anomaly-kill</c>.</summary>
    public static bool Learning(this FeedbackMode mode) => mode is FeedbackMode.None or FeedbackMode.AnomalyKill;

    /// <summary>
    /// The scenario with the mode's parts of the response switched off in its DEFCON ladder: no
    /// slowdown for <see cref="FeedbackMode.Deny"/>, no kill for it and for
    /// <see cref="FeedbackMode.DenySlowdown"/>. <see cref="FeedbackMode.None"/> keeps the scenario
    /// as it is: the backend's learning flag (<see cref="Learning"/>) is what lets everything through,
    /// and the ladder still says which operations would have been violations.
    /// </summary>
    internal static ActionScenario Apply(ActionScenario scenario, FeedbackMode mode) => mode switch
    {
        FeedbackMode.Deny => scenario with { Defcon = scenario.Defcon with { SlowdownUs = [0, 0, 0], KillAtLevel1 = false } },
        FeedbackMode.DenySlowdown => scenario with { Defcon = scenario.Defcon with { KillAtLevel1 = false } },
        _ => scenario,
    };

    /// <summary>
    /// Network rules for a learning-mode workload on the kernel: the kernel's socket hooks deny
    /// by rule even in learning mode, so a deny rule becomes trace (allowed and reported). The
    /// violation itself is recorded by the backend.
    /// </summary>
    internal static IReadOnlyList<NetRule> LearningNetRules(IReadOnlyList<NetRule> rules) =>
        rules.Select(r => r.Action == Verdict.Deny ? r with { Action = Verdict.Trace } : r).ToList();
}

/// <summary>
/// A file decider for a learning-mode workload: where the policy would deny, the violation is
/// reported (the kernel, in learning mode, records it without escalating) and the operation is
/// allowed. The decision is still made by the real policy on the real path the workload opens.
/// </summary>
public sealed class LearningFileDecider(IFileDecider policy, IViolationSink sink, ulong cgroupId) : IFileDecider
{
    /// <inheritdoc />
    public Verdict Decide(FileRequest access, int defcon)
    {
        var verdict = policy.Decide(access, defcon);
        if (verdict != Verdict.Deny)
            return verdict;
        var op = access.Op switch
        {
            FileOp.Write => ViolationOp.FileWrite,
            FileOp.Exec => ViolationOp.Exec,
            _ => ViolationOp.FileRead,
        };
        sink.Report(new ViolationReport(cgroupId, op, 0, 0, access.Path));
        return Verdict.Allow;
    }
}
