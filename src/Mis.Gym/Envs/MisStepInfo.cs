using System.Diagnostics.CodeAnalysis;

namespace Mis.Gym.Envs;

/// <summary>
/// The info of a MIS step, with typed fields exposed as dictionary entries only when read, so a
/// step allocates one small object instead of a boxed hash table (see <see cref="Info"/>). Keys:
/// <c>action</c> (name), <c>result</c> (<see cref="ActionResult"/>), <c>reason</c> (rule or level
/// behind the decision), <c>defcon</c> (int), <c>violations</c> (long), <c>slowdown_ns</c> (long,
/// episode total), <c>time_ns</c> (long, episode time), <c>reward_terms</c> (<see cref="RewardTerms"/>);
/// when the anomaly scorer watches the episode (<see cref="SyscallWatch"/>) also <c>anomaly_score</c>
/// (int, 0..1000: the episode's highest window so far), <c>anomaly_windows</c> (long, windows scored),
/// <c>anomaly_windows_skipped</c> (long) and <c>anomaly_killed</c> (bool: the scorer killed the workload);
/// on a step that killed, <c>kill_reason</c>: <c>anomaly</c> (the scorer) or <c>DEFCON 1</c>, the
/// words of the control plane's <c>CgroupInfo.kill_reason</c>.
/// </summary>
public sealed class MisStepInfo : Info
{
    internal static readonly string[] KeyNames = ["action", "result", "reason", "defcon", "violations", "slowdown_ns", "time_ns", "reward_terms"];
    private static readonly string[] AnomalyKeyNames = ["anomaly_score", "anomaly_windows", "anomaly_windows_skipped", "anomaly_killed"];

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

    /// <summary>The anomaly scorer's reading after the step, when it watches the episode.</summary>
    internal AnomalyReading? Anomaly { get; init; }

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
            "anomaly_score" when Anomaly is { } a => a.Score,
            "anomaly_windows" when Anomaly is { } a => a.Windows,
            "anomaly_windows_skipped" when Anomaly is { } a => a.Skipped,
            "anomaly_killed" when Anomaly is { } a => a.Killed,
            "kill_reason" when _result == ActionResult.Killed => Anomaly is { Killed: true } ? "anomaly" : "DEFCON 1",
            _ => null,
        };
        return value is not null;
    }

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, object>> OwnEntries()
    {
        IEnumerable<string> keys = Anomaly is null ? KeyNames : [.. KeyNames, .. AnomalyKeyNames];
        foreach (var key in _result == ActionResult.Killed ? keys.Append("kill_reason") : keys)
        {
            TryGetOwn(key, out var value);
            yield return new KeyValuePair<string, object>(key, value!);
        }
    }
}
