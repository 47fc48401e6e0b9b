using Mis.Gym.Scenarios;
using Mis.Gym.Spaces;

namespace Mis.Gym.Envs;

/// <summary>
/// What each element of a MIS observation means (the reset info carries the names as
/// <c>info["observation_names"]</c>, for plots and feature inspection):
/// <code>
/// 0..3   result_ok, result_denied, result_error, result_killed   one-hot of the last action's result (all 0 after reset)
/// 4      defcon          the level, 5 (normal) .. 1
/// 5      violations      counted violations
/// 6      slowdown_ms     time lost to slowdown this episode, ms
/// 7      time_ms         time elapsed this episode, ms
/// 8..    done:NAME       1 once task requirement NAME is met (one per [task] requires entry)
/// ..     bonus:NAME      1 once action NAME's bonus was paid (one per action with a bonus)
/// </code>
/// The progress flags make the state Markov: reward depends on what was done, so the agent must see it.
/// Values are raw (unnormalised); wrap the env in <see cref="Wrappers.NormalizeObservation{TAct}"/> for a network.
/// </summary>
public sealed class ObservationLayout
{
    internal const int ResultOffset = 0;
    internal const int Defcon = 4;
    internal const int Violations = 5;
    internal const int SlowdownMs = 6;
    internal const int TimeMs = 7;
    internal const int ProgressOffset = 8;

    /// <summary>The layout of <paramref name="scenario"/>'s observations.</summary>
    public ObservationLayout(ActionScenario scenario)
    {
        Requirements = scenario.Task.Requires.Count;
        BonusActions = scenario.Actions.Select((a, i) => (a, i)).Where(x => x.a.Bonus != 0).Select(x => x.i).ToArray();
        var names = new List<string> { "result_ok", "result_denied", "result_error", "result_killed", "defcon", "violations", "slowdown_ms", "time_ms" };
        names.AddRange(scenario.Task.Requires.Select(r => $"done:{r}"));
        names.AddRange(BonusActions.Select(i => $"bonus:{scenario.Actions[i].Name}"));
        Names = names.AsReadOnly();

        var low = new float[names.Count];
        var high = new float[names.Count];
        Array.Fill(high, 1f);
        (low[Defcon], high[Defcon]) = (1f, 5f);
        high[Violations] = high[SlowdownMs] = high[TimeMs] = float.PositiveInfinity;
        Space = new Box(low, high);
    }

    /// <summary>Element names, in order.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>The observation space.</summary>
    internal Box Space { get; }

    /// <summary>Number of <c>done:</c> flags.</summary>
    internal int Requirements { get; }

    /// <summary>Indices of the actions with a bonus, in order of their <c>bonus:</c> flags.</summary>
    internal int[] BonusActions { get; }

    /// <summary>Offset of the first <c>bonus:</c> flag.</summary>
    internal int BonusOffset => ProgressOffset + Requirements;
}
