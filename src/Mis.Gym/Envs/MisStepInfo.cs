using System.Diagnostics.CodeAnalysis;

namespace Mis.Gym.Envs;

/// <summary>
/// The info of a MIS step, with typed fields exposed as dictionary entries only when read, so a
/// step allocates one small object instead of a boxed hash table (see <see cref="Info"/>). Keys:
/// <c>action</c> (name), <c>result</c> (<see cref="ActionResult"/>), <c>reason</c> (rule or level
/// behind the decision), <c>defcon</c> (int), <c>violations</c> (long), <c>slowdown_ns</c> (long,
/// episode total), <c>time_ns</c> (long, episode time), <c>reward_terms</c> (<see cref="RewardTerms"/>).
/// </summary>
public sealed class MisStepInfo : Info
{
    internal static readonly string[] KeyNames = ["action", "result", "reason", "defcon", "violations", "slowdown_ns", "time_ns", "reward_terms"];

    private readonly string _action;
    private readonly ActionResult _result;
    private readonly string _reason;
    private readonly BackendState _state;

    internal MisStepInfo(string action, ActionResult result, string reason, BackendState state, RewardTerms terms)
    {
        (_action, _result, _reason, _state) = (action, result, reason, state);
        Terms = terms;
    }

    /// <summary>The reward decomposition, typed.</summary>
    internal RewardTerms Terms { get; }

    /// <inheritdoc />
    protected override bool TryGetOwn(string key, [MaybeNullWhen(false)] out object value)
    {
        value = key switch
        {
            "action" => _action,
            "result" => _result,
            "reason" => _reason,
            "defcon" => _state.Defcon,
            "violations" => (long)_state.Violations,
            "slowdown_ns" => (long)_state.SlowdownNs,
            "time_ns" => (long)_state.ElapsedNs,
            "reward_terms" => Terms,
            _ => null,
        };
        return value is not null;
    }

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, object>> OwnEntries()
    {
        foreach (var key in KeyNames)
        {
            TryGetOwn(key, out var value);
            yield return new KeyValuePair<string, object>(key, value!);
        }
    }
}
