using Mis.Gym.Scenarios;
using Mis.Gym.Spaces;

namespace Mis.Gym.Envs;

/// <summary>
/// A scenario as a Gymnasium environment: action <c>i</c> performs the scenario's <c>i</c>-th
/// action under its policy, through a backend (<see cref="SimBackend"/> or <see cref="KernelBackend"/>).
/// <list type="bullet">
/// <item>Observation: <see cref="ObservationLayout"/> (last result, DEFCON, violations, slowdown,
/// time, task progress).</item>
/// <item>Reward: <c>task − slowdown − denial − kill − anomaly</c>, each term in <c>info["reward_terms"]</c>
/// (<see cref="RewardTerms"/>). Task: an accepted submission pays <c>[task] reward</c>; an action
/// with a bonus pays it the first time it succeeds in the episode; every step costs
/// <c>step_cost</c>. Slowdown: <c>slowdown_per_ms</c> × the milliseconds this step lost to
/// slowdown. Denial: <c>denial</c> when the action was denied (the killing denial included).
/// Kill: <c>kill</c> when the workload was killed at DEFCON 1. Anomaly: <c>anomaly_kill</c> when the
/// anomaly scorer killed it (feedback mode <c>anomaly-kill</c>; no denial is charged then).</item>
/// <item>Terminated: a submission went through (accepted, or rejected because requirements are
/// missing — the result is then <see cref="ActionResult.Error"/> and nothing is paid), or the
/// workload was killed (at DEFCON 1, or by the anomaly scorer).</item>
/// <item>Truncated: the episode's time (slowdown included) reached <c>time_budget_ms</c>. The step
/// budget (<c>max_steps</c>) is applied by <see cref="MisGym.Make(string, string, bool)"/> as a
/// <see cref="Wrappers.TimeLimit{TObs, TAct}"/>.</item>
/// </list>
/// The only randomness, <c>fail_prob</c>, is drawn here from <see cref="Env{TObs, TAct}.NpRandom"/>
/// (one draw per step of an action that has it), so only a seeded reset seeds an episode, and
/// every backend sees the same draws.
/// </summary>
public sealed class MisEnv : Env<float[], int>
{
    private const string Rejected = "submission rejected: the task's requirements are not met";
    private const double MsPerNs = 1e-6;

    private readonly ActionScenario _scenario;
    private readonly ScenarioAction[] _actions;
    private readonly double _stepCost, _taskReward, _slowdownPerMs, _denial, _kill, _anomalyKill;
    private readonly IScenarioBackend _backend;
    private readonly ObservationLayout _layout;
    private readonly Discrete _actionSpace;
    private readonly int[][] _completes;
    private readonly int[] _bonusSlot;
    private readonly bool[] _done;
    private readonly bool[] _bonusPaid;
    private readonly ulong _budgetNs;
    private readonly int _obsSize;
    private readonly IReadOnlyList<string> _actionNames;
    private BackendState _state;
    private BackendState _resetInfoState;
    private Info? _resetInfo;
    private int _pending;

    internal MisEnv(ActionScenario scenario, IScenarioBackend backend)
    {
        _scenario = scenario;
        _actions = [.. scenario.Actions];
        (_stepCost, _taskReward) = (scenario.Task.StepCost, scenario.Task.Reward);
        (_slowdownPerMs, _denial, _kill, _anomalyKill) = (scenario.Reward.SlowdownPerMs, scenario.Reward.Denial, scenario.Reward.Kill, scenario.Reward.AnomalyKill);
        _backend = backend;
        _layout = new ObservationLayout(scenario);
        _actionSpace = new Discrete(scenario.Actions.Count);
        var requires = scenario.Task.Requires;
        // Requirement r is met by the success of the action it names, or of an action that satisfies it.
        _completes = scenario.Actions
            .Select(a => Enumerable.Range(0, requires.Count).Where(r => requires[r] == a.Name || a.Satisfies.Contains(requires[r])).ToArray())
            .ToArray();
        _bonusSlot = Enumerable.Repeat(-1, scenario.Actions.Count).ToArray();
        for (int b = 0; b < _layout.BonusActions.Length; b++)
            _bonusSlot[_layout.BonusActions[b]] = b;
        _done = new bool[requires.Count];
        _bonusPaid = new bool[_layout.BonusActions.Length];
        _budgetNs = (ulong)scenario.TimeBudgetMs * 1_000_000;
        _obsSize = _layout.Names.Count;
        _actionNames = Array.AsReadOnly(scenario.Actions.Select(a => a.Name).ToArray());
    }

    /// <inheritdoc />
    public override Space<float[]> ObservationSpace => _layout.Space;

    /// <inheritdoc />
    public override Space<int> ActionSpace => _actionSpace;

    /// <summary>The scenario this env runs.</summary>
    internal ActionScenario Scenario => _scenario;

    /// <summary>The backend the actions go to.</summary>
    internal IScenarioBackend Backend => _backend;

    /// <summary>The observation layout (element names).</summary>
    internal ObservationLayout Layout => _layout;

    /// <inheritdoc />
    protected override ResetResult<float[]> ResetCore(IReadOnlyDictionary<string, object>? options)
    {
        _state = _backend.BeginEpisode();
        Array.Clear(_done);
        Array.Clear(_bonusPaid);
        _pending = _done.Length;
        // Episodes are short (a random agent submits within ~8 steps), so the reset info is built
        // once per distinct starting state rather than on every reset.
        if (_resetInfo is null || _resetInfoState != _state)
        {
            _resetInfoState = _state;
            _resetInfo = Info.Of(
                ("scenario", _scenario.Name),
                ("backend", _backend.Name),
                ("defcon", _state.Defcon),
                ("violations", (long)_state.Violations),
                ("action_names", _actionNames),
                ("observation_names", _layout.Names));
        }
        return new ResetResult<float[]>(Observe(null), _resetInfo);
    }

    /// <inheritdoc />
    protected override StepResult<float[]> StepCore(int action)
    {
        var spec = _actions[action];
        bool failsByItself = spec.FailProb > 0 && NpRandom.NextDouble() < spec.FailProb;
        var outcome = _backend.Perform(action, failsByItself);
        ulong slowdownNs = outcome.State.SlowdownNs - _state.SlowdownNs;
        _state = outcome.State;

        var result = outcome.Result;
        string reason = outcome.Reason;
        double task = -_stepCost;
        bool terminated = result == ActionResult.Killed;
        if (result == ActionResult.Ok)
        {
            if (spec.Kind == ActionKind.Submit)
            {
                terminated = true;
                if (_pending == 0)
                    task += _taskReward;
                else
                    (result, reason) = (ActionResult.Error, Rejected);
            }
            else
            {
                Progress(action, spec.Bonus, ref task);
            }
        }
        // A kill by the anomaly scorer is its own term, and no denial: the policy denied nothing.
        bool byScorer = result == ActionResult.Killed && outcome.Anomaly is { Killed: true };
        bool denied = result is ActionResult.Denied || (result == ActionResult.Killed && !byScorer);
        double slowdown = _slowdownPerMs * (slowdownNs * MsPerNs);
        double denial = denied ? _denial : 0;
        double kill = result == ActionResult.Killed && !byScorer ? _kill : 0;
        double anomaly = byScorer ? _anomalyKill : 0;
        var terms = new RewardTerms(task, slowdown, denial, kill, anomaly);
        bool truncated = _budgetNs > 0 && _state.ElapsedNs >= _budgetNs;
        var info = new MisStepInfo(spec.Name, result, reason, _state, terms) { Anomaly = outcome.Anomaly };
        return new StepResult<float[]>(Observe(result), terms.Total, terminated, truncated, info);
    }

    /// <inheritdoc />
    protected override void CloseCore() => _backend.Dispose();

    // A successful action meets the requirements it completes and, the first time, pays its bonus.
    private void Progress(int action, double bonus, ref double task)
    {
        foreach (int r in _completes[action])
        {
            _pending -= _done[r] ? 0 : 1;
            _done[r] = true;
        }
        if (_bonusSlot[action] is int slot and >= 0 && !_bonusPaid[slot])
        {
            _bonusPaid[slot] = true;
            task += bonus;
        }
    }

    private float[] Observe(ActionResult? last)
    {
        var obs = new float[_obsSize];
        if (last is { } r)
            obs[ObservationLayout.ResultOffset + (int)r] = 1f;
        obs[ObservationLayout.Defcon] = _state.Defcon;
        obs[ObservationLayout.Violations] = _state.Violations;
        obs[ObservationLayout.SlowdownMs] = (float)(_state.SlowdownNs * MsPerNs);
        obs[ObservationLayout.TimeMs] = (float)(_state.ElapsedNs * MsPerNs);
        for (int i = 0; i < _done.Length; i++)
            obs[ObservationLayout.ProgressOffset + i] = _done[i] ? 1f : 0f;
        int bonus = _layout.BonusOffset;
        for (int i = 0; i < _bonusPaid.Length; i++)
            obs[bonus + i] = _bonusPaid[i] ? 1f : 0f;
        return obs;
    }
}
