using System.Threading.Channels;
using Mis.Enforcer.Events;

namespace Mis.Enforcer.Run;

/// <summary>
/// Online anomaly scoring of one cgroup's syscall stream: a sliding window per thread, scored every
/// <see cref="IOnlineScorer.Stride"/> syscalls on a worker thread, so that a slow model (the LSTM)
/// never stalls the kernel event pump. When a window scores above the threshold and killing is on,
/// the whole cgroup is killed once, and an <c>anomaly</c> event records the score and the window.
/// </summary>
/// <remarks>
/// A thread's score is the maximum over its windows. The offline scorer (Mis.Anomaly) defines a
/// trace's score the same way, with the same windows, so a calibration made on held-out traces holds
/// here: a normal thread crosses 800 with the configured false-alarm rate, not once per window.
/// </remarks>
public sealed class AnomalyMonitor
{
    /// <summary>Windows waiting for the worker; beyond it windows are skipped and counted.</summary>
    internal const int QueueCapacity = 4096;

    // x86-64 exit(2) and exit_group(2): a thread's last syscall.
    private const int SyscallExit = 60, SyscallExitGroup = 231;

    /// <summary>Most windows handed to the model in one <see cref="IOnlineScorer.ScoreBatch"/> call.</summary>
    internal const int MaxBatch = 256;

    private readonly IOnlineScorer _scorer;
    private readonly AnomalySettings _settings;
    private readonly ulong _cgroupId;
    private readonly Action<EnforcementEvent> _publish;
    private readonly Action _kill;
    private readonly Dictionary<int, ThreadWindow> _threads = [];
    private readonly Channel<(ThreadWindow Thread, int[] Window)> _queue;
    private readonly Task _worker;
    private readonly Lock _gate = new();
    private bool _finished;
    private string? _fault;
    private long _skipped;
    private long _scored;
    private long _queued;
    private long _handled; // under _scoredGate (a Monitor: Lock has no condition wait)
    private readonly object _scoredGate = new();
    private AnomalyHit? _killHit;
    private AnomalyHit? _peak;
    private AnomalyHit? _last;

    /// <summary>A monitor of cgroup <paramref name="cgroupId"/> whose events go to <paramref name="log"/> (<c>mis run</c>'s event file); <paramref name="kill"/> kills the workload.</summary>
    public AnomalyMonitor(IOnlineScorer scorer, AnomalySettings settings, ulong cgroupId, EventLog log, Action kill)
        : this(scorer, settings, cgroupId, log.Write, kill)
    {
    }

    /// <summary>A monitor whose events go to <paramref name="publish"/> (the policy engine's event hub).</summary>
    public AnomalyMonitor(IOnlineScorer scorer, AnomalySettings settings, ulong cgroupId, Action<EnforcementEvent> publish, Action kill)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(scorer.WindowSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(scorer.Stride, 1);
        (_scorer, _settings, _cgroupId, _publish, _kill) = (scorer, settings, cgroupId, publish, kill);
        _queue = Channel.CreateBounded<(ThreadWindow, int[])>(new BoundedChannelOptions(QueueCapacity) { SingleReader = true, SingleWriter = true });
        _worker = Task.Run(Work);
    }

    private sealed class ThreadWindow(int pid, int tid, int size)
    {
        internal int Pid { get; } = pid;
        internal int Tid { get; } = tid;
        internal string Comm { get; set; } = "";
        internal int[] Ring { get; } = new int[size];
        internal long Count { get; set; }
        internal long ScoredAt { get; set; }
        internal AnomalyHit? Max { get; set; }
        internal bool Reported { get; set; }

        /// <summary>The last min(Count, size) syscalls, oldest first.</summary>
        internal int[] Snapshot()
        {
            int n = (int)Math.Min(Count, Ring.Length);
            var w = new int[n];
            for (int i = 0; i < n; i++)
                w[i] = Ring[(int)((Count - n + i) % Ring.Length)];
            return w;
        }
    }

    /// <summary>Adds one syscall of thread <paramref name="tid"/> (called from one thread at a time: the event pump, or a simulator); never waits for the model.</summary>
    public void Add(int pid, int tid, string comm, int syscall)
    {
        lock (_gate)
            AddLocked(pid, tid, comm, syscall);
    }

    // Under the lock: Finish may run while a straggling event is still being delivered.
    private void AddLocked(int pid, int tid, string comm, int syscall)
    {
        if (_finished)
            return;
        int size = _scorer.WindowSize;
        if (!_threads.TryGetValue(tid, out var t))
            _threads[tid] = t = new ThreadWindow(pid, tid, size);
        if (comm.Length > 0)
            t.Comm = comm;
        t.Ring[(int)(t.Count % size)] = syscall;
        t.Count++;
        // Windows end at syscall W, W + S, W + 2S, ...: the offline scorer's windows. A thread's
        // exit is its last syscall: its last window that no stride reached (the whole thread, when
        // it was shorter than one window) is scored then, live, so a short-lived process cannot
        // run its syscalls unscored.
        bool window = t.Count >= size && (t.Count - size) % _scorer.Stride == 0;
        if (window || (syscall is SyscallExit or SyscallExitGroup && t.ScoredAt != t.Count))
        {
            t.ScoredAt = t.Count;
            // A full queue skips the window before copying it: a model that fell behind costs the pump nothing.
            if (_queue.Reader.Count < QueueCapacity && _queue.Writer.TryWrite((t, t.Snapshot())))
                Interlocked.Increment(ref _queued);
            else
                Interlocked.Increment(ref _skipped);
        }
    }

    private async Task Work()
    {
        var batch = new List<(ThreadWindow Thread, int[] Window)>(MaxBatch);
        while (await _queue.Reader.WaitToReadAsync())
        {
            batch.Clear();
            while (batch.Count < MaxBatch && _queue.Reader.TryRead(out var item))
                batch.Add(item);
            IReadOnlyList<OnlineScore> scores;
            try
            {
                scores = _scorer.ScoreBatch([.. batch.Select(b => b.Window)]);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // A failing model must not take the run (or the enforcer) down: count and report it.
                Fail(e, batch.Count);
                Handled(batch.Count);
                continue;
            }
            Record(batch, scores, live: true);
            Handled(batch.Count);
        }
    }

    private void Handled(int windows)
    {
        lock (_scoredGate)
        {
            _handled += windows;
            Monitor.PulseAll(_scoredGate);
        }
    }

    /// <summary>
    /// Waits until every window queued so far has been scored (and a kill it called for issued), at
    /// most <paramref name="timeout"/>: the gym's backends call it after each action, so the action's
    /// score, and a kill for it, come with the action. False when the time ran out.
    /// </summary>
    public bool WaitScored(TimeSpan timeout)
    {
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        lock (_scoredGate)
        {
            while (_handled < Interlocked.Read(ref _queued))
            {
                long left = deadline - Environment.TickCount64;
                if (left <= 0 || _worker.IsCompleted)
                    return false;
                Monitor.Wait(_scoredGate, (int)Math.Min(left, 100));
            }
        }
        return true;
    }

    private void Score(ThreadWindow thread, int[] window, bool live)
    {
        try
        {
            Record([(thread, window)], [_scorer.Score(window)], live);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Fail(e, 1);
        }
    }

    private void Fail(Exception e, int windows)
    {
        Interlocked.Add(ref _skipped, windows);
        Interlocked.CompareExchange(ref _fault, $"{e.GetType().Name}: {e.Message}", null);
    }

    // One lock per batch, not per window: the pump takes the same lock for every syscall it adds.
    private void Record(IReadOnlyList<(ThreadWindow Thread, int[] Window)> batch, IReadOnlyList<OnlineScore> scores, bool live)
    {
        Interlocked.Add(ref _scored, batch.Count);
        bool anyAbove = live && scores.Any(s => s.Score > _settings.Threshold);
        // Asked outside the lock (it may read kernel state), and only when a window could kill.
        string? veto = anyAbove && _settings.KillOnAnomaly ? _settings.KillVeto?.Invoke() : null;
        AnomalyHit? killNow = null;
        List<AnomalyHit>? reportNow = null;
        lock (_gate)
        {
            for (int i = 0; i < batch.Count; i++)
            {
                var (thread, window) = batch[i];
                var s = scores[i];
                bool above = live && s.Score > _settings.Threshold;
                bool threadMax = thread.Max is null || s.Score > thread.Max.Score, peak = _peak is null || s.Score > _peak.Score;
                if (!(threadMax || peak || above || i == batch.Count - 1))
                    continue; // nothing to remember about this window
                var hit = new AnomalyHit(thread.Pid, thread.Tid, thread.Comm, s.Score, s.Raw, window);
                if (i == batch.Count - 1)
                    _last = hit;
                if (threadMax)
                    thread.Max = hit;
                if (peak)
                    _peak = hit;
                if (above && _killHit is null && _settings.KillOnAnomaly && veto is null)
                {
                    _killHit = killNow = hit;
                }
                else if (above && _killHit is null && _settings.ReportCrossings && !thread.Reported)
                {
                    thread.Reported = true;
                    (reportNow ??= []).Add(hit);
                }
            }
        }
        foreach (var hit in reportNow ?? [])
            _publish(ToEvent(hit, "", $"anomaly score {hit.Score} > anomaly_threshold {_settings.Threshold} (model {_scorer.Name}, raw {hit.Raw:G4}): " +
                                      (veto ?? "not killed (kill_on_anomaly = false)")));
        if (killNow is null)
            return;
        // Event first: the kill ends the workload, and its exit follows this line in the file.
        _publish(ToEvent(killNow, "kill",
            $"anomaly score {killNow.Score} > anomaly_threshold {_settings.Threshold} (model {_scorer.Name}, raw {killNow.Raw:G4}): cgroup killed (kill_on_anomaly)"));
        _kill();
    }

    /// <summary>The scores so far, for a live view of the cgroup (safe from any thread).</summary>
    public AnomalyProgress Progress()
    {
        lock (_gate)
            return new AnomalyProgress(_peak, _last, _killHit, Interlocked.Read(ref _scored), Interlocked.Read(ref _skipped));
    }

    /// <summary>
    /// Stops the worker, scores each thread's last window that no stride reached (a thread shorter
    /// than one window is scored whole), writes one <c>anomaly</c> event per thread with its highest
    /// score, and returns the run's anomaly report.
    /// </summary>
    internal AnomalyReport Finish()
    {
        Stop();
        lock (_gate)
            _finished = true;
        foreach (var t in _threads.Values)
        {
            if (t.Count > 0 && t.ScoredAt != t.Count)
                Score(t, t.Snapshot(), live: false);
        }
        foreach (var t in _threads.Values.Where(t => t.Max is not null).OrderBy(t => t.Tid))
        {
            var m = t.Max!;
            bool above = m.Score > _settings.Threshold;
            _publish(ToEvent(m, above && ReferenceEquals(_killHit, m) ? "kill" : "",
                $"thread's highest anomaly score over {t.Count} syscalls (model {_scorer.Name}, raw {m.Raw:G4}, threshold {_settings.Threshold})"));
        }
        var worst = _threads.Values.Select(t => t.Max).Where(m => m is not null).MaxBy(m => m!.Score);
        return new AnomalyReport(_scorer.Name, _scorer.WindowSize, _settings.Threshold, worst, _killHit,
            Interlocked.Read(ref _scored), Interlocked.Read(ref _skipped), _threads.Count) { Fault = _fault };
    }

    /// <summary>Stops the worker after the windows already queued; safe to call twice.</summary>
    public void Stop()
    {
        _queue.Writer.TryComplete();
        _worker.Wait();
    }

    private EnforcementEvent ToEvent(AnomalyHit hit, string decision, string reason) => new()
    {
        Event = "anomaly",
        Timestamp = DateTimeOffset.UtcNow,
        CgroupId = _cgroupId,
        Pid = hit.Pid,
        Tid = hit.Tid,
        Comm = hit.Comm,
        Operation = "anomaly",
        Target = _scorer.Name,
        Decision = decision,
        Defcon = 5,
        AnomalyScore = hit.Score,
        AnomalyRaw = double.IsFinite(hit.Raw) ? hit.Raw : null, // JSON has no NaN or infinity
        WindowSize = hit.Window.Length,
        Window = hit.Window,
        Reason = reason,
    };
}

/// <summary>What online scoring does with a score: <c>[policy] anomaly_threshold</c> and <c>kill_on_anomaly</c>.</summary>
/// <param name="Threshold">Scores above it are anomalous (0..1000).</param>
/// <param name="KillOnAnomaly">Kill the cgroup at the first anomalous window.</param>
public sealed record AnomalySettings(int Threshold, bool KillOnAnomaly)
{
    /// <summary>
    /// Asked when a window crosses the threshold with killing on: a reason not to kill now (the policy
    /// engine's: the cgroup has left learning mode), or null to kill. Null: always kill.
    /// </summary>
    public Func<string?>? KillVeto { get; init; }

    /// <summary>
    /// Also write an <c>anomaly</c> event when a thread's window first crosses the threshold without a
    /// kill (the policy engine's live view); <c>mis run</c> reports each thread's highest score at the end only.
    /// </summary>
    public bool ReportCrossings { get; init; }
}

/// <summary>A cgroup's online scoring so far.</summary>
/// <param name="Peak">The highest-scoring window yet (the cgroup's score, as a trace's is its highest window's).</param>
/// <param name="Last">The window scored last.</param>
/// <param name="Killed">The window that got the cgroup killed, if one did.</param>
/// <param name="WindowsScored">Windows scored.</param>
/// <param name="WindowsSkipped">Windows not scored (the model fell behind or failed).</param>
public sealed record AnomalyProgress(AnomalyHit? Peak, AnomalyHit? Last, AnomalyHit? Killed, long WindowsScored, long WindowsSkipped);

/// <summary>One scored window.</summary>
/// <param name="Pid">Process of the thread.</param>
/// <param name="Tid">The thread.</param>
/// <param name="Comm">The thread's command name when scored.</param>
/// <param name="Score">Calibrated score 0..1000.</param>
/// <param name="Raw">The model's raw statistic.</param>
/// <param name="Window">The syscall numbers scored, oldest first.</param>
public sealed record AnomalyHit(int Pid, int Tid, string Comm, int Score, double Raw, int[] Window);

/// <summary>A run's online anomaly scoring, for the summary.</summary>
/// <param name="Model">The model's algorithm.</param>
/// <param name="WindowSize">Syscalls per window.</param>
/// <param name="Threshold">The threshold in force.</param>
/// <param name="Worst">The highest-scoring window of the run, if any was scored.</param>
/// <param name="Killed">The window that got the cgroup killed, if one did.</param>
/// <param name="WindowsScored">Windows scored.</param>
/// <param name="WindowsSkipped">Windows not scored: the model fell behind (queue full) or failed on them.</param>
/// <param name="Threads">Threads seen.</param>
public sealed record AnomalyReport(string Model, int WindowSize, int Threshold, AnomalyHit? Worst, AnomalyHit? Killed,
    long WindowsScored, long WindowsSkipped, int Threads)
{
    /// <summary>The first error the model raised, if it failed on some windows (they count as skipped).</summary>
    public string? Fault { get; init; }
}
