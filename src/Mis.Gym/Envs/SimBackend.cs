using Mis.Enforcer.Defcon;
using Mis.Enforcer.Policy;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Envs;

/// <summary>
/// The in-process backend: the policy decides through a <see cref="DecisionTable"/>, violations go
/// to the C# twin of the kernel's DEFCON state machine (<see cref="DefconStateMachine"/>, held
/// identical to the kernel by a differential test), and time is simulated:
/// <list type="bullet">
/// <item>An action costs its kind's syscall count (<see cref="ActionKinds.DefaultSyscalls"/>),
/// each taking <c>[sim] syscall_ns</c>, plus <c>ms</c> for a wait.</item>
/// <item>Slowdown is <c>syscalls × the level's per-syscall slowdown</c>, the level being the one in
/// force when the action starts (the kernel's sys_enter hook runs before the deny point decides);
/// it is added to the simulated clock, so it eats into a time budget and drives decay.</item>
/// <item>A denied action counts one violation; if that enters DEFCON 1 with kill configured, the
/// result is <see cref="ActionResult.Killed"/>.</item>
/// </list>
/// In learning mode (feedback mode <c>none</c>), a violation is recorded (the state machine's
/// learning count, reported as <see cref="BackendState.Violations"/>) and the action goes through.
/// Deterministic: it holds no randomness (the env draws <c>fail_prob</c>) and its clock is its own.
/// </summary>
public sealed class SimBackend : IScenarioBackend
{
    private const string KilledReason = "killed at DEFCON 1";
    /// <summary>The reason's prefix for a violation learning mode recorded and let through.</summary>
    internal const string RecordedReason = "learning mode: recorded, not denied: ";

    private readonly ActionScenario _scenario;
    private readonly DecisionTable _decisions;
    private readonly ulong[] _syscalls;
    private readonly ulong[] _baseNs;
    private readonly Func<ulong> _clock;
    private readonly bool _learning;
    private readonly SyscallWatch? _watch;
    private EpisodeSyscalls? _episodeSyscalls;
    private DefconStateMachine? _defcon;
    private ulong _nowNs;
    private ulong _slowdownNs;
    private int _childTid;

    /// <param name="scenario">The scenario.</param>
    /// <param name="learning">Learning mode: violations are recorded, nothing is denied, slowed or killed.</param>
    /// <param name="watch">Syscall traces (<see cref="SimTraceModel"/>) recorded and scored live, or null.</param>
    public SimBackend(ActionScenario scenario, bool learning = false, SyscallWatch? watch = null)
    {
        _learning = learning;
        _watch = watch;
        _scenario = scenario;
        _decisions = new DecisionTable(scenario);
        _syscalls = scenario.Actions.Select(a => (ulong)a.Syscalls).ToArray();
        _baseNs = scenario.Actions.Select(a => (ulong)a.Syscalls * (ulong)scenario.SyscallNs + (ulong)a.WaitMs * 1_000_000).ToArray();
        _clock = () => _nowNs;
    }

    /// <inheritdoc />
    public string Name => "sim";

    /// <summary>The decisions in use (tests compare them with the live policy).</summary>
    internal DecisionTable Decisions => _decisions;

    /// <inheritdoc />
    public BackendState BeginEpisode()
    {
        _nowNs = 0;
        _slowdownNs = 0;
        _childTid = SimTraceModel.ActuatorTid;
        _defcon = new DefconStateMachine(_scenario.Defcon, _clock, _learning);
        _episodeSyscalls = _watch?.Begin(); // nothing runs to kill: the outcome says killed
        if (_episodeSyscalls is not null)
            Feed(SimTraceModel.ActuatorTid, "python3", SimTraceModel.Startup);
        return BackendState.Fresh;
    }

    /// <inheritdoc />
    public ActionOutcome Perform(int action, bool failsByItself)
    {
        var defcon = _defcon ?? throw new InvalidOperationException("BeginEpisode was not called");
        if (defcon.Killed || _episodeSyscalls is { Killed: true })
            return new ActionOutcome(ActionResult.Killed, KilledReason, State(defcon));
        var outcome = Decide(defcon, action, failsByItself);
        return _episodeSyscalls is null ? outcome : Watched(_episodeSyscalls, action, outcome);
    }

    private ActionOutcome Decide(DefconStateMachine defcon, int action, bool failsByItself)
    {
        var level = defcon.Level;
        ulong slowdown = _syscalls[action] * defcon.Ladder.SlowdownNsFor(level);
        _slowdownNs += slowdown;

        ActionResult result;
        if (_decisions.Verdict(action, level) == Verdict.Deny && _learning)
        {
            defcon.RecordViolation();
            _nowNs += _baseNs[action] + slowdown;
            return new ActionOutcome(failsByItself ? ActionResult.Error : ActionResult.Ok, RecordedReason + _decisions.Reason(action, level), State(defcon));
        }
        if (_decisions.Verdict(action, level) == Verdict.Deny)
        {
            defcon.RecordViolation();
            result = defcon.Killed ? ActionResult.Killed : ActionResult.Denied;
        }
        else
        {
            result = failsByItself ? ActionResult.Error : ActionResult.Ok;
        }
        _nowNs += _baseNs[action] + slowdown;
        return new ActionOutcome(result, _decisions.Reason(action, level), State(defcon));
    }

    // The action's modelled syscalls go to the recording and the scorer; a kill by the scorer
    // takes the action's place in the outcome.
    private ActionOutcome Watched(EpisodeSyscalls syscalls, int action, ActionOutcome outcome)
    {
        var spec = _scenario.Actions[action];
        bool ran = outcome.Result is not (ActionResult.Denied or ActionResult.Killed);
        Feed(SimTraceModel.ActuatorTid, "python3", SimTraceModel.Actuator(spec.Kind, ran));
        if (spec.Kind == ActionKind.Exec)
            Feed(++_childTid, SimTraceModel.Comm(spec.Path!), SimTraceModel.Child(spec.Path!, ran));
        return syscalls.Judge(outcome);
    }

    private void Feed(int tid, string comm, int[] syscalls)
    {
        foreach (int nr in syscalls)
            _episodeSyscalls!.Add(SimTraceModel.ActuatorTid, tid, comm, nr);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _defcon = null;
        _watch?.End();
    }

    private BackendState State(DefconStateMachine defcon) =>
        new(defcon.Level, _learning ? defcon.LearningViolations : defcon.Violations, _slowdownNs, _nowNs);
}
