using Mis.Gym.Scenarios;
using Mis.Gym.Spaces;
using Mis.Gym.Wrappers;

namespace Mis.Gym.Envs;

/// <summary>
/// Makes MIS environments from scenario files (Gymnasium's <c>gymnasium.make</c>): the scenario's
/// env on the chosen backend, with its step budget applied as a <see cref="TimeLimit{TObs, TAct}"/>.
/// </summary>
public static class MisGym
{
    /// <summary>The in-process simulator backend.</summary>
    public const string Sim = "sim";

    /// <summary>The real kernel enforcer backend (<see cref="KernelBackend"/>: root, Linux, the BPF enforcer; or the node daemon's, <see cref="NodeDaemon"/>).</summary>
    public const string Kernel = "kernel";

    /// <summary>Backend names <see cref="Make(string, string, bool)"/> knows.</summary>
    public static IReadOnlyList<string> Backends { get; } = [Sim, Kernel];

    /// <summary>Loads <paramref name="scenarioPath"/> and makes its environment.</summary>
    /// <param name="scenarioPath">A scenario TOML file.</param>
    /// <param name="backend"><c>sim</c> or <c>kernel</c>.</param>
    /// <param name="recordStatistics">Also wrap in <see cref="RecordEpisodeStatistics{TObs, TAct}"/> (outside the time limit).</param>
    /// <returns>The environment: observations are float vectors, actions are indices into the scenario's actions.</returns>
    /// <exception cref="Mis.Enforcer.Configuration.ConfigException">The scenario file is invalid; the message names file, line and key.</exception>
    /// <exception cref="BackendUnavailableException">The backend cannot run here.</exception>
    public static IEnv<float[], int> Make(string scenarioPath, string backend = Sim, bool recordStatistics = false) =>
        Make(ScenarioFile.Load(scenarioPath), backend, recordStatistics);

    /// <summary>Makes the environment of a parsed scenario (see the public overload).</summary>
    public static IEnv<float[], int> Make(Scenario scenario, string backend = Sim, bool recordStatistics = false)
    {
        IEnv<float[], int> env = new TimeLimit<float[], int>(MakeBare(scenario, backend), scenario.MaxSteps);
        return recordStatistics ? new RecordEpisodeStatistics<float[], int>(env) : env;
    }

    /// <summary>
    /// Makes the environment of <paramref name="scenario"/> under a feedback mode
    /// (<see cref="FeedbackModes.Apply"/> to the scenario, learning mode on the backend for
    /// <see cref="FeedbackMode.None"/> and <see cref="FeedbackMode.AnomalyKill"/>), with the step budget.
    /// </summary>
    /// <param name="scenario">The scenario.</param>
    /// <param name="backend"><c>sim</c> or <c>kernel</c>.</param>
    /// <param name="feedback">The feedback mode.</param>
    /// <param name="watch">
    /// The episodes' syscalls recorded and scored live (learning-mode feedback only); required, with
    /// a scorer and <see cref="SyscallWatch.Kill"/>, for <see cref="FeedbackMode.AnomalyKill"/>.
    /// </param>
    /// <exception cref="ArgumentException">A watch the feedback mode cannot have, or anomaly-kill without a killing scorer.</exception>
    public static IEnv<float[], int> Make(ActionScenario scenario, string backend, FeedbackMode feedback, SyscallWatch? watch = null)
    {
        if (watch is not null && !feedback.Learning())
            throw new ArgumentException($"feedback mode {feedback.Word()} is not learning mode; only learning mode (none, anomaly-kill) has every syscall to record and score", nameof(watch));
        if (feedback == FeedbackMode.AnomalyKill && watch is not { Scorer: not null, Kill: true })
            throw new ArgumentException("feedback mode anomaly-kill needs an anomaly model that kills (an experiment's [anomaly] model)", nameof(watch));
        if (feedback != FeedbackMode.AnomalyKill && watch is { Kill: true })
            throw new ArgumentException($"a scorer that kills is feedback mode anomaly-kill, not {feedback.Word()}", nameof(watch));
        var applied = FeedbackModes.Apply(scenario, feedback);
        return new TimeLimit<float[], int>(new MisEnv(applied, CreateBackend(applied, backend, feedback.Learning(), watch)), applied.MaxSteps);
    }

    /// <summary>The bare environment, without the time limit.</summary>
    internal static MisEnv MakeUnwrapped(ActionScenario scenario, string backend = Sim) => new(scenario, CreateBackend(scenario, backend));

    /// <summary>
    /// The kernel backend's env with the simulator's slowdown model (exactly repeatable; see
    /// <see cref="KernelBackend"/>), with the step budget. A command scenario has no model: its
    /// <see cref="CommandEnv"/> as it is.
    /// </summary>
    public static IEnv<float[], int> MakeKernelModelled(Scenario scenario) => scenario switch
    {
        ActionScenario actions => new TimeLimit<float[], int>(new MisEnv(actions, NodeDaemon.KernelBackend(actions, measuredSlowdown: false)), actions.MaxSteps),
        _ => Make(scenario, Kernel),
    };

    /// <summary>The actions <paramref name="scenario"/>'s policy allows at DEFCON 5: what a workload that keeps to it may do.</summary>
    public static IReadOnlyList<int> AllowedActions(ActionScenario scenario)
    {
        var decisions = new DecisionTable(scenario);
        return [.. Enumerable.Range(0, scenario.Actions.Count).Where(a => decisions.Verdict(a, 5) != Mis.Enforcer.Policy.Verdict.Deny)];
    }

    /// <summary>The env of a <c>[workload]</c> scenario: <see cref="CommandEnv"/>, kernel only.</summary>
    /// <exception cref="BackendUnavailableException">Another backend was asked for, or the kernel one cannot run here.</exception>
    internal static CommandEnv MakeCommand(CommandScenario scenario, string backend = Kernel)
    {
        if (backend != Kernel)
        {
            CheckName(backend);
            throw new BackendUnavailableException(CommandNeedsKernel(scenario));
        }
        return new CommandEnv(scenario);
    }

    /// <summary>The backends that can run <paramref name="scenario"/>: every one for an action scenario, the kernel for a command scenario.</summary>
    public static IReadOnlyList<string> BackendsFor(Scenario scenario) => scenario is CommandScenario ? [Kernel] : Backends;

    /// <summary>
    /// The spaces and action names of <paramref name="scenario"/>'s env, the same on every backend,
    /// without making one (no backend is opened).
    /// </summary>
    public static (Space<float[]> Observation, Discrete Action, IReadOnlyList<string> ActionNames) Spaces(Scenario scenario) => scenario switch
    {
        ActionScenario actions => (new ObservationLayout(actions).Space, new Discrete(actions.Actions.Count), actions.Actions.Select(a => a.Name).ToList()),
        _ => (CommandEnv.Observations(), new Discrete(CommandEnv.ActionNames.Count), CommandEnv.ActionNames),
    };

    /// <summary>What to say when a command scenario is asked for on the simulator.</summary>
    internal static string CommandNeedsKernel(CommandScenario scenario) =>
        $"scenario {scenario.Name} runs a command ([workload] at {scenario.Workload.Source}): a command workload needs the kernel backend " +
        "(--backend kernel); the simulator has no program to run";

    /// <summary>A backend for <paramref name="scenario"/>; the one place a new backend is plugged in.</summary>
    /// <exception cref="BackendUnavailableException">The backend is not available (the message says why).</exception>
    /// <exception cref="ArgumentException">Unknown backend name.</exception>
    internal static IScenarioBackend CreateBackend(ActionScenario scenario, string backend, bool learning = false, SyscallWatch? watch = null) => backend switch
    {
        Sim => new SimBackend(scenario, learning, watch),
        Kernel => NodeDaemon.KernelBackend(scenario, learning: learning, watch: watch),
        _ => throw UnknownBackend(backend),
    };

    // The one place a scenario kind meets its env: an action scenario's MisEnv over a backend, or a
    // command scenario's CommandEnv.
    private static IEnv<float[], int> MakeBare(Scenario scenario, string backend) => scenario switch
    {
        ActionScenario actions => MakeUnwrapped(actions, backend),
        CommandScenario command => MakeCommand(command, backend),
        _ => throw new ArgumentException($"unknown scenario kind {scenario.GetType().Name}", nameof(scenario)),
    };

    private static void CheckName(string backend)
    {
        if (!Backends.Contains(backend))
            throw UnknownBackend(backend);
    }

    private static ArgumentException UnknownBackend(string backend) =>
        new($"unknown backend \"{backend}\"; expected one of: {string.Join(", ", Backends)}", nameof(backend));
}
