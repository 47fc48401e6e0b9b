using System.Diagnostics;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Session;
using Mis.Gym.Scenarios;
using Mis.Gym.Spaces;

namespace Mis.Gym.Envs;

/// <summary>
/// A scenario's <c>[workload]</c> (<see cref="WorkloadSpec"/>) as a Gymnasium environment: each
/// episode runs the scenario's command — an agent program — for real, in a fresh MIS cgroup under
/// the kernel enforcer and the seccomp supervisor with the scenario's policy and DEFCON ladder, in
/// a private view of the scenario's files (<see cref="KernelBackendFiles"/>). The program is the
/// one acting; the env measures what enforcement did to it. Kernel only: the simulator has no
/// program to run.
/// <list type="bullet">
/// <item>Action space: <c>Discrete(1)</c>, action 0 = "continue": let the program run one more
/// <c>step_ms</c> slice. (One action keeps the <c>IEnv&lt;float[], int&gt;</c> of every MIS env,
/// so wrappers, vector envs, the checker and the runners take it as it is; a learning agent
/// belongs inside the program.)</item>
/// <item>Observation (<see cref="ObservationNames"/>): <c>running</c> (1 while the program runs),
/// <c>defcon</c>, <c>violations</c>, <c>denials</c> (this episode), <c>slowdown_ms</c>
/// (this episode, the kernel's measured busy-wait), <c>time_ms</c> (wall time since the start; 0 at reset).</item>
/// <item>Reward: <c>task − slowdown − denial − kill</c>, each term in <c>info["reward_terms"]</c>
/// as in the action scenarios. Slowdown: <c>slowdown_per_ms</c> × the ms the slice lost to
/// slowdown. Denial: <c>denial</c> × the slice's denials (the rise of the kernel's violation
/// count: every denied file, exec, escape-class or network operation is one; with <c>[defcon]</c>
/// decay, forgiveness within a slice nets out). Kill: <c>kill</c> on the step the program was
/// killed at DEFCON 1. Task, on the step the program exits by itself: <c>reward = "exit"</c> pays
/// <c>[task] reward</c> for exit status 0; <c>reward_command</c> pays the number it prints (run in
/// the episode's view after the program ended). Killed or timed out: no task reward.</item>
/// <item>Terminated: the program exited, or was killed (by the enforcer or a signal).
/// Truncated: <c>timeout_ms</c> passed; the program is killed. The step budget
/// (<c>max_steps</c>, by default enough for <c>timeout_ms</c>) is the usual time limit wrapper.</item>
/// <item>Info: <c>result</c> (<c>running</c>, <c>exited</c>, <c>killed</c>, <c>timeout</c>),
/// <c>exit_code</c> (the status, or −signal, or null while it runs), <c>reason</c>, <c>defcon</c>,
/// <c>violations</c>, <c>denials</c>, <c>slowdown_ns</c>, <c>time_ns</c>, <c>reward_terms</c>,
/// and at the end <c>stdout</c> and <c>stderr</c> (their last 4 KiB).</item>
/// </list>
/// Not deterministic: the program's timing is real, so the same seed need not give the same
/// trajectory (check it with <c>EnvCheckOptions.Nondeterministic</c>); reset's seed is accepted
/// and unused (the env draws nothing).
/// </summary>
public sealed class CommandEnv : Env<float[], int>
{
    /// <summary>The observation's elements, in order.</summary>
    internal static readonly IReadOnlyList<string> ObservationNames = ["running", "defcon", "violations", "denials", "slowdown_ms", "time_ms"];

    private const double MsPerNs = 1e-6;

    private readonly CommandScenario _scenario;
    private readonly WorkloadSpec _spec;
    private readonly EnforcementSession _session;
    private readonly PolicySlot _policy;
    private readonly KernelBackendFiles _files;
    private readonly Box _observationSpace;
    private readonly Discrete _actionSpace = new(ActionNames.Count);
    private CommandRun? _run;
    private Stopwatch _clock = new();
    private ulong _violations, _denials, _slowdownNs, _rawSlowdownNs, _lastViolations;
    private int _defcon = 5;

    /// <summary>Opens the kernel enforcer and plans the files; episodes start at <see cref="Env{TObs, TAct}.Reset"/>.</summary>
    /// <exception cref="BackendUnavailableException">Not root on Linux, or the kernel enforcer cannot run here.</exception>
    internal CommandEnv(CommandScenario scenario)
    {
        _spec = scenario.Workload;
        _scenario = scenario;
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
            throw new BackendUnavailableException($"scenario {scenario.Name} runs a command ([workload] at {_spec.Source}): that needs the kernel backend in this process, which needs Linux and root" +
                (NodeDaemon.Address is { } daemon ? $" (the node daemon at {daemon} runs action scenarios only)" : ""));
        _files = KernelBackendFiles.Plan(scenario);
        _session = KernelBackend.OpenSession(scenario);
        try
        {
            _policy = _session.Install(scenario.Policy);
        }
        catch
        {
            _session.Dispose();
            throw;
        }
        _observationSpace = Observations();
    }

    /// <summary>The one action's name.</summary>
    internal static readonly IReadOnlyList<string> ActionNames = ["continue"];

    /// <summary>The observation space of every command env: running 0..1, DEFCON 1..5, the rest unbounded above.</summary>
    internal static Box Observations()
    {
        var high = new float[ObservationNames.Count];
        Array.Fill(high, float.PositiveInfinity);
        high[0] = 1f;
        high[1] = 5f;
        var low = new float[ObservationNames.Count];
        low[1] = 1f;
        return new Box(low, high);
    }

    /// <inheritdoc />
    public override Space<float[]> ObservationSpace => _observationSpace;

    /// <inheritdoc />
    public override Space<int> ActionSpace => _actionSpace;

    /// <summary>The scenario this env runs.</summary>
    internal CommandScenario Scenario => _scenario;

    /// <summary>The running episode's cgroup directory, if any (tests check it is removed).</summary>
    internal string? CgroupPath => _run?.Cgroup.Path;

    /// <summary>The directory holding this env's workload cgroups.</summary>
    internal string CgroupsRoot => _session.CgroupRoot;

    /// <inheritdoc />
    protected override ResetResult<float[]> ResetCore(IReadOnlyDictionary<string, object>? options)
    {
        EndRun();
        (_violations, _denials, _slowdownNs, _rawSlowdownNs, _lastViolations, _defcon) = (0, 0, 0, 0, 0, 5);
        _run = CommandRun.Start(_scenario, _session, _policy, _files);
        _clock = Stopwatch.StartNew();
        var info = Info.Of(
            ("scenario", _scenario.Name),
            ("backend", MisGym.Kernel),
            ("command", _spec.Command),
            ("defcon", 5),
            ("violations", 0L),
            ("observation_names", ObservationNames),
            ("action_names", ActionNames));
        return new ResetResult<float[]>(Observe(running: true, timeMs: 0), info);
    }

    /// <inheritdoc />
    protected override StepResult<float[]> StepCore(int action)
    {
        var run = _run ?? throw new InvalidOperationException("Reset was not called");
        long leftMs = _spec.TimeoutMs - _clock.ElapsedMilliseconds;
        var exit = run.Wait(TimeSpan.FromMilliseconds(Math.Clamp(leftMs, 0, _spec.StepMs)));
        bool timedOut = exit is null && _clock.ElapsedMilliseconds >= _spec.TimeoutMs;
        if (timedOut)
            exit = run.Kill();
        var state = run.State();
        bool killed = !timedOut && exit is { Signal: Mis.Native.Signals.SIGKILL } && state is { } s && (s.Killed || (s.Defcon == 1 && _scenario.Defcon.KillAtLevel1));

        // The slice's enforcement: measured by the kernel, as deltas of the cgroup's totals.
        ulong slowdownNs = 0, denials = 0;
        if (state is not null)
        {
            slowdownNs = state.SlowdownNsTotal - _rawSlowdownNs;
            _rawSlowdownNs = state.SlowdownNsTotal;
            denials = state.Violations > _lastViolations ? state.Violations - _lastViolations : 0;
            _lastViolations = state.Violations;
            (_violations, _defcon) = (state.Violations, state.Defcon);
        }
        _slowdownNs += slowdownNs;
        _denials += denials;

        var result = timedOut ? ProgramResult.Timeout : killed ? ProgramResult.Killed : exit is null ? ProgramResult.Running : ProgramResult.Exited;
        double task = 0;
        string reason = result switch
        {
            ProgramResult.Timeout => $"timeout_ms {_spec.TimeoutMs} reached: the program was killed",
            ProgramResult.Killed => "killed at DEFCON 1",
            ProgramResult.Running => "running",
            _ => exit!.ToString(),
        };
        if (result == ProgramResult.Exited)
        {
            task = _spec.Reward == WorkloadReward.Command ? run.RunRewardCommand(_spec)
                : exit!.ExitCode == 0 ? _scenario.Task.Reward : 0;
            reason = $"{exit}; task reward {task.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
        }
        double slowdown = _scenario.Reward.SlowdownPerMs * (slowdownNs * MsPerNs);
        double denial = _scenario.Reward.Denial * denials;
        double kill = killed ? _scenario.Reward.Kill : 0;
        var terms = new RewardTerms(task, slowdown, denial, kill);

        var entries = new List<(string, object)>
        {
            ("result", result.Word()),
            ("reason", reason),
            ("defcon", _defcon),
            ("violations", (long)_violations),
            ("denials", (long)_denials),
            ("slowdown_ns", (long)_slowdownNs),
            ("time_ns", _clock.Elapsed.Ticks * 100),
            ("reward_terms", terms),
        };
        if (exit is not null)
        {
            entries.Add(("exit_code", exit.ExitCode ?? -exit.Signal!.Value));
            var (stdout, stderr) = run.Output(TimeSpan.FromSeconds(1));
            entries.Add(("stdout", stdout));
            entries.Add(("stderr", stderr));
        }
        var info = Info.Of([.. entries]);
        return new StepResult<float[]>(Observe(running: exit is null, (float)_clock.Elapsed.TotalMilliseconds), terms.Total, Terminated: exit is not null && !timedOut, Truncated: timedOut, info);
    }

    /// <inheritdoc />
    protected override void CloseCore()
    {
        EndRun();
        _policy.Dispose();
        _session.Dispose();
    }

    private float[] Observe(bool running, float timeMs) =>
    [
        running ? 1f : 0f,
        _defcon,
        _violations,
        _denials,
        (float)(_slowdownNs * MsPerNs),
        timeMs,
    ];

    private void EndRun()
    {
        var run = _run;
        _run = null;
        run?.Dispose();
    }
}

/// <summary>How a command env's program stands after a step: <c>info["result"]</c>, as its <see cref="ProgramResults.Word"/>.</summary>
public enum ProgramResult
{
    /// <summary>Still running: the step observed one slice of its run.</summary>
    Running,
    /// <summary>It exited by itself (any status, or a signal other than the enforcer's kill): terminated; the task reward is decided.</summary>
    Exited,
    /// <summary>The enforcer killed it at DEFCON 1: terminated, with the kill penalty.</summary>
    Killed,
    /// <summary><c>timeout_ms</c> passed and it was killed: truncated.</summary>
    Timeout,
}

/// <summary>The words of <see cref="ProgramResult"/> in a step's info (a Gym client reads them as strings).</summary>
public static class ProgramResults
{
    private static readonly string[] Words = ["running", "exited", "killed", "timeout"];

    /// <summary>The info word: <c>running</c>, <c>exited</c>, <c>killed</c> or <c>timeout</c>.</summary>
    internal static string Word(this ProgramResult result) => Words[(int)result];
}
