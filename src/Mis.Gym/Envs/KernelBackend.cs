using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;
using Mis.Enforcer.Session;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Envs;

/// <summary>
/// The real backend: every episode runs an actuator process (<see cref="KernelBackendActuator"/>,
/// a python3 loop) in a fresh MIS-managed cgroup, launched confined by <see cref="WorkloadLauncher"/>
/// under the <see cref="SeccompSupervisor"/> with the scenario's policy, its DEFCON ladder and its
/// network rules in the kernel. Each action is real syscalls done by the actuator (open/read/close,
/// open/write/close, opendir/getdents, posix_spawn+wait, socket/connect(/send), sleep; submit is a
/// no-op round trip); it reports the errno: EPERM → denied (killed when the kernel state says the
/// cgroup was killed), the actuator's death → killed, another errno → error. DEFCON, violations and
/// the slowdown total are read from the kernel (<see cref="KernelEnforcer.State"/>).
/// <para>Time: <c>ElapsedNs</c> is the scenario's nominal action cost (as the simulator's clock:
/// syscalls × <c>syscall_ns</c> + wait ms) plus the kernel's measured slowdown, so observations stay
/// comparable with the simulator while the slowdown term is the measured one; the real latency of
/// each action is kept in <see cref="LastLatencyNs"/>.</para>
/// <para>Files: paths the scenario names are used as they are (the policy decides on them). Missing
/// ones (readable files with a line of content, directories, <c>#!/bin/sh exit 0</c> stubs for
/// missing programs) and the directories written to exist only in the episode's private view
/// (<see cref="KernelBackendFiles"/>: its own mount namespace); the host's files never change.</para>
/// <para>Learning mode (feedback mode <c>none</c>): the cgroup is managed in the kernel's learning
/// mode and nothing is denied: a file or exec the policy denies is reported by
/// <see cref="LearningFileDecider"/> and allowed, a network rule's deny becomes trace and the
/// backend reports the violation; the kernel records each as a learning violation (no escalation),
/// reported as <see cref="BackendState.Violations"/>.</para>
/// <para><c>fail_prob</c>: an allowed action the env drew as failing is still performed, and its
/// result is reported as an error (the world's hiccup is modelled, the enforcement is real).</para>
/// </summary>
public sealed partial class KernelBackend : IScenarioBackend
{
    private const string KilledReason = "killed at DEFCON 1";

    private readonly ActionScenario _scenario;
    private readonly DecisionTable _decisions;
    private readonly string[] _commands;
    private readonly ulong[] _baseNs;
    private readonly EnforcementSession _session;
    private readonly PolicySlot _policy;
    private readonly KernelBackendFiles _files;
    private readonly bool _measured;
    private readonly ulong[] _syscalls;
    private readonly bool _learning;
    private readonly WorkloadIdentity _identity;
    private readonly SyscallWatch? _watch;
    private Episode? _episode;
    private ulong _nominalNs;
    private bool _disposed;

    /// <summary>Makes the backend (the kernel enforcer, the workload cgroups, the scenario's files).</summary>
    /// <param name="scenario">The scenario.</param>
    /// <param name="measuredSlowdown">
    /// True (the default): the slowdown in observations and rewards is the kernel's measured one,
    /// rounded to whole delays; it varies between runs by the few syscalls a real program does or
    /// does not make (the dynamic loader, python's allocator), so trajectories are not bit-for-bit
    /// repeatable. False: the simulator's model (the action's syscall count × the delay of the
    /// level in force), which is exactly repeatable; DEFCON, violations, denials and kills are
    /// the kernel's either way.
    /// </param>
    /// <param name="learning">Learning mode: violations are recorded, nothing is denied, slowed or killed.</param>
    /// <param name="identity">
    /// Who the actuator runs as: root without capabilities (the default), or the caller the node
    /// daemon runs the episodes for; the files made for the episode are then that account's.
    /// </param>
    /// <param name="watch">
    /// Each episode's syscalls recorded and scored live (learning mode only: only then does the
    /// kernel report every syscall), or null.
    /// </param>
    /// <exception cref="BackendUnavailableException">Not root, no python3 for the actuator, or the kernel enforcer or the scenario's files cannot be made here (the message says which).</exception>
    /// <exception cref="ArgumentException">A <paramref name="watch"/> without learning mode.</exception>
    public KernelBackend(ActionScenario scenario, bool measuredSlowdown = true, bool learning = false, WorkloadIdentity? identity = null, SyscallWatch? watch = null)
    {
        if (watch is not null && !learning)
            throw new ArgumentException("syscall traces and live anomaly scoring need learning mode: only then does the kernel report each syscall", nameof(watch));
        _measured = measuredSlowdown;
        _learning = learning;
        _watch = watch;
        _identity = identity ?? WorkloadIdentity.Root;
        _syscalls = scenario.Actions.Select(a => (ulong)a.Syscalls).ToArray();
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
            throw new BackendUnavailableException(
                $"the kernel backend needs Linux and root (it creates cgroups and loads the BPF enforcer); not root, run it through the node daemon (--enforcer {NodeDaemon.DefaultAddress}, or set {NodeDaemon.EnvironmentVariable}), or use --backend sim");
        if (!File.Exists(KernelBackendActuator.Python))
            throw new BackendUnavailableException($"the kernel backend's actuator needs {KernelBackendActuator.Python}");
        _scenario = scenario;
        _decisions = new DecisionTable(scenario);
        _commands = scenario.Actions.Select(KernelBackendActuator.Command).ToArray();
        _baseNs = scenario.Actions.Select(a => (ulong)a.Syscalls * (ulong)scenario.SyscallNs + (ulong)a.WaitMs * 1_000_000).ToArray();
        _files = KernelBackendFiles.Plan(scenario);
        _session = OpenSession(scenario);
        try
        {
            _policy = _session.Install(scenario.Policy, learning ? FeedbackModes.LearningNetRules(scenario.Policy.NetRules) : null);
        }
        catch
        {
            _session.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The session of one env: its own cgroup directory (<c>gym-PID-N</c>), so envs of one process
    /// never share one, with the scenario's DEFCON ladder and network lockdown level.
    /// </summary>
    internal static EnforcementSession OpenSession(Scenario scenario)
    {
        try
        {
            return EnforcementSession.Open(new SessionOptions
            {
                Defcon = scenario.Defcon,
                PrivateDirectory = "gym",
            });
        }
        catch (KernelUnavailableException e)
        {
            throw new BackendUnavailableException($"the kernel enforcer cannot run here: {e.Message}", e);
        }
    }

    /// <inheritdoc />
    public string Name => "kernel";

    /// <summary>Real wall time of the last action (actuator round trip), in ns.</summary>
    public ulong LastLatencyNs { get; private set; }

    /// <summary>How many actions the scenario offers.</summary>
    public int ActionCount => _scenario.Actions.Count;

    /// <summary>The cgroup directory of the running episode, if any (tests check it is removed).</summary>
    public string? CgroupPath => _episode?.Cgroup.Path;

    /// <summary>The directory holding this backend's workload cgroups (<c>&lt;mount&gt;/mis/gym-PID-N/enforcer-PID</c>).</summary>
    public string CgroupsRoot => _session.CgroupRoot;

    /// <inheritdoc />
    public BackendState BeginEpisode()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        EndEpisode();
        _nominalNs = 0;
        _episode = Episode.Start(_scenario, _session, _policy, _files, _identity, _learning, _watch?.Begin());
        return BackendState.Fresh;
    }

    /// <inheritdoc />
    public ActionOutcome Perform(int action, bool failsByItself)
    {
        var episode = _episode ?? throw new InvalidOperationException("BeginEpisode was not called");
        // Managed from Start to EndEpisode: no state here is a broken episode, not DEFCON 5.
        var before = episode.State()
            ?? throw new InvalidOperationException($"the episode's cgroup {episode.Cgroup.Id} is no longer managed");
        int level = before.Defcon;
        string reason = _decisions.Reason(action, level);
        if (episode.Dead || before is { Killed: true } || episode.Syscalls is { Killed: true })
            return new ActionOutcome(ActionResult.Killed, KilledReason, State(episode, level));

        if (_learning && _decisions.Verdict(action, level) == Verdict.Deny)
        {
            reason = SimBackend.RecordedReason + reason;
            if (_scenario.Actions[action].Kind.IsNetwork())
                _session.Kernel.Report(new ViolationReport(episode.Cgroup.Id, _scenario.Actions[action].Kind == ActionKind.Send ? ViolationOp.Send : ViolationOp.Connect, 0, 0, _scenario.Actions[action].Target));
        }
        long start = Stopwatch.GetTimestamp();
        int? errno = episode.Do(_commands[action]);
        LastLatencyNs = (ulong)Stopwatch.GetElapsedTime(start).Ticks * 100;
        var after = episode.State();
        bool killed = errno is null || after is { Killed: true } || (errno == Mis.Native.Errno.EPERM && after?.Defcon == DefconLevel.Severest && _scenario.Defcon.KillAtLevel1);
        if (errno == Mis.Native.Errno.EPERM && killed)
        {
            // The kill follows the killing denial; make sure it landed before reporting it.
            episode.Dead = episode.WaitDead(TimeSpan.FromSeconds(2));
        }
        else if (errno is null)
        {
            episode.Dead = true;
        }
        ActionResult result = killed ? ActionResult.Killed
            : errno == Mis.Native.Errno.EPERM ? ActionResult.Denied
            : errno != 0 ? ActionResult.Error
            : failsByItself ? ActionResult.Error
            : ActionResult.Ok;
        _nominalNs += _baseNs[action];
        var state = State(episode, level, action);
        var outcome = new ActionOutcome(result, killed ? KilledReason : reason, state);
        return episode.Syscalls is { } syscalls ? Watched(episode, syscalls, outcome) : outcome;
    }

    // The action's syscalls reach the recording and the scorer through the session's event reader:
    // wait until it has read every event up to now (the actuator is blocked in its next read, or
    // dead), then for their windows' scores. A kill by the scorer takes the action's place.
    private ActionOutcome Watched(Episode episode, EpisodeSyscalls syscalls, ActionOutcome outcome)
    {
        _session.WaitForEventsRead(TimeSpan.FromSeconds(2));
        var judged = syscalls.Judge(outcome);
        if (judged.Anomaly is { Killed: true })
            episode.Dead = episode.Dead || episode.WaitDead(TimeSpan.FromSeconds(2));
        return judged;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        EndEpisode();
        _watch?.End();
        _policy.Dispose();
        _session.Dispose();
    }

    // The kernel's slowdown total is the time its delays really took (a few µs of jitter per
    // delayed syscall); the step's share is rounded to whole delays of the level in force (the
    // smaller one when the action changed the level), so equal syscall counts give equal
    // observations and rewards.
    private BackendState State(Episode episode, int levelBefore = 5, int action = -1)
    {
        var s = episode.State();
        if (s is null)
            return new BackendState(episode.LastDefcon, episode.LastViolations, episode.LastSlowdown, _nominalNs + episode.LastSlowdown);
        ulong raw = s.SlowdownNsTotal - episode.RawSlowdownNs;
        episode.RawSlowdownNs = s.SlowdownNsTotal;
        ulong unit = Unit(levelBefore, s.Defcon);
        ulong step = !_measured ? (action < 0 ? 0 : _syscalls[action] * _scenario.Defcon.Ladder.SlowdownNsFor(DefconLevel.From(levelBefore)))
            : unit == 0 ? raw : (raw + unit / 2) / unit * unit;
        ulong slowdown = episode.LastSlowdown + step;
        return episode.Remember(new BackendState(s.Defcon, _learning ? s.LearningViolations : s.Violations, slowdown, _nominalNs + slowdown));
    }

    private ulong Unit(int before, int after)
    {
        ulong a = before is >= 1 and <= 5 ? _scenario.Defcon.Ladder.SlowdownNsFor(DefconLevel.From(before)) : 0;
        ulong b = after is >= 1 and <= 5 ? _scenario.Defcon.Ladder.SlowdownNsFor(DefconLevel.From(after)) : 0;
        return a == 0 ? b : b == 0 ? a : Math.Min(a, b);
    }

    private void EndEpisode()
    {
        var episode = _episode;
        _episode = null;
        if (episode is null)
            return;
        episode.Dispose();
    }
}
