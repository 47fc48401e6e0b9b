using Mis.Enforcer.Events;
using Mis.Enforcer.Run;

namespace Mis.Gym.Envs;

/// <summary>
/// What one env's episodes' syscalls feed, on a backend in learning mode (the kernel reports every
/// syscall only there; the simulator makes them with <see cref="SimTraceModel"/>): a recording of
/// each thread's syscalls (<see cref="Traces"/>), and the anomaly scorer, live. With
/// <see cref="Kill"/> (feedback mode <c>anomaly-kill</c>) the first window above
/// <see cref="Threshold"/> kills the episode's workload: the step in which that window was scored
/// reports <see cref="ActionResult.Killed"/>, its reason names the score, and the env charges
/// <c>[reward] anomaly_kill</c>. The windows an action completes are scored before its step
/// returns (the backend waits for them). A window ends every stride of a thread's syscalls, and
/// when the thread exits: an exec's child is judged with the action that ran it, while the
/// actuator's own syscalls may be judged up to a stride (a few actions) later.
/// </summary>
/// <remarks>One watch per env: it holds the running episode's recording.</remarks>
public sealed class SyscallWatch
{
    private EpisodeSyscalls? _episode;

    /// <summary>Record every thread's syscalls of the running episode (<see cref="Traces"/>).</summary>
    public bool RecordTraces { get; init; }

    /// <summary>The anomaly model scoring each thread's windows live; null: none.</summary>
    public IOnlineScorer? Scorer { get; init; }

    /// <summary>Calibrated score above which a window is anomalous. Default 800, the scorer's configured false-alarm rate.</summary>
    public int Threshold { get; init; } = 800;

    /// <summary>Kill the episode's workload at its first anomalous window (feedback mode <c>anomaly-kill</c>); false: score only.</summary>
    public bool Kill { get; init; }

    /// <summary>
    /// The running (or last) episode's syscalls so far, one entry per thread in thread id order;
    /// empty without <see cref="RecordTraces"/>. After an episode's last step it holds the whole
    /// episode: a backend waits for an action's syscalls before the step returns.
    /// </summary>
    public IReadOnlyList<ThreadTrace> Traces() => _episode?.Traces() ?? [];

    /// <summary>A fresh recording and monitor for an episode that starts (its workload's kill is set once it runs: <see cref="EpisodeSyscalls.KillWith"/>).</summary>
    internal EpisodeSyscalls Begin()
    {
        _episode?.Dispose();
        _episode = new EpisodeSyscalls(this);
        return _episode;
    }

    /// <summary>Stops the running episode's monitor (the backend closes).</summary>
    internal void End() => _episode?.Stop();
}

/// <summary>The anomaly scorer's reading of an episode after an action.</summary>
/// <param name="Score">The episode's score so far: its highest window's, 0..1000 (a trace's score is its highest window's).</param>
/// <param name="Windows">Windows scored so far.</param>
/// <param name="Skipped">Windows not scored (the model fell behind or failed).</param>
/// <param name="Killed">The scorer killed the workload (at this action or before).</param>
public readonly record struct AnomalyReading(int Score, long Windows, long Skipped, bool Killed);

/// <summary>One episode's syscall consumers: the recording and the live monitor.</summary>
internal sealed class EpisodeSyscalls : IDisposable
{
    // How long an action waits for its windows' scores: far above what any model here takes for
    // one action's windows; past it the step goes on and the windows count as late, not lost.
    private static readonly TimeSpan ScoreWait = TimeSpan.FromSeconds(10);

    private readonly TraceRecorder? _recorder;
    private readonly AnomalyMonitor? _monitor;
    private readonly string _model;
    private readonly int _threshold;
    private readonly Lock _gate = new();
    private Action? _kill;

    internal EpisodeSyscalls(SyscallWatch watch)
    {
        _threshold = watch.Threshold;
        _recorder = watch.RecordTraces ? new TraceRecorder() : null;
        _model = watch.Scorer?.Name ?? "";
        if (watch.Scorer is { } scorer)
            _monitor = new AnomalyMonitor(scorer, new AnomalySettings(watch.Threshold, watch.Kill), 0, (EnforcementEvent _) => { }, OnKill);
    }

    /// <summary>Whether anything consumes the syscalls.</summary>
    internal bool Active => _recorder is not null || _monitor is not null;

    /// <summary>Whether the scorer killed the workload (the monitor holds the window that did).</summary>
    internal bool Killed => _monitor?.Progress().Killed is not null;

    /// <summary>How to kill the episode's workload, once it exists; a kill the scorer called for before lands now.</summary>
    internal void KillWith(Action kill)
    {
        lock (_gate)
            _kill = kill;
        if (Killed)
            Kill(kill); // a second kill of a killed cgroup is harmless, a missed one is not
    }

    private void OnKill()
    {
        Action? kill;
        lock (_gate)
            kill = _kill;
        if (kill is not null)
            Kill(kill);
    }

    private static void Kill(Action kill)
    {
        try
        {
            kill();
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or ObjectDisposedException or UnauthorizedAccessException)
        {
            // The workload ended (its cgroup is gone) while its last window was scored: nothing to kill.
        }
    }

    /// <summary>One syscall of thread <paramref name="tid"/> (from one thread at a time).</summary>
    internal void Add(int pid, int tid, string comm, int syscall)
    {
        _recorder?.Add(pid, tid, comm, syscall);
        _monitor?.Add(pid, tid, comm, syscall);
    }

    /// <summary>
    /// After an action's syscalls are in: waits for their windows' scores and adds the scorer's
    /// reading to the action's outcome; a kill by the scorer takes the action's place, its reason
    /// naming the window. Both backends judge their actions here.
    /// </summary>
    internal ActionOutcome Judge(ActionOutcome outcome)
    {
        if (_monitor is null)
            return outcome;
        _monitor.WaitScored(ScoreWait);
        var p = _monitor.Progress();
        var reading = new AnomalyReading(p.Peak?.Score ?? 0, p.WindowsScored, p.WindowsSkipped, p.Killed is not null);
        return p.Killed is not { } hit ? outcome with { Anomaly = reading }
            : outcome with
            {
                Result = ActionResult.Killed,
                Reason = $"killed by the anomaly scorer: score {hit.Score} > {_threshold} (model {_model}, {hit.Comm} thread {hit.Tid})",
                Anomaly = reading,
            };
    }

    internal IReadOnlyList<ThreadTrace> Traces() => _recorder?.Snapshot() ?? [];

    internal void Stop() => _monitor?.Stop();

    public void Dispose() => Stop();
}
