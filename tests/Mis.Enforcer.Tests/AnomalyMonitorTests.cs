using System.Diagnostics;
using Mis.Enforcer.Events;
using Mis.Enforcer.Run;

namespace Mis.Enforcer.Tests;

/// <summary>The online monitor without a kernel: a scripted model, syscalls added by hand; when a thread's syscalls are scored, and waiting for the scores.</summary>
public sealed class AnomalyMonitorTests
{
    /// <summary>A model that blocks until released, then scores every window <paramref name="score"/>.</summary>
    private sealed class StuckScorer(int score) : IOnlineScorer
    {
        public ManualResetEventSlim Release { get; } = new();

        public string Name => "stuck";

        public int WindowSize => 8;

        public int Stride => 4;

        public OnlineScore Score(ReadOnlySpan<int> window)
        {
            Release.Wait();
            return new OnlineScore(score, score);
        }
    }

    [Fact]
    public void A_model_that_falls_behind_makes_the_monitor_skip_windows_and_count_them_never_wait()
    {
        var scorer = new StuckScorer(100);
        var events = new List<EnforcementEvent>();
        var monitor = new AnomalyMonitor(scorer, new AnomalySettings(800, KillOnAnomaly: true), 7, e => { lock (events) events.Add(e); }, () => { });
        int windows = AnomalyMonitor.QueueCapacity * 3;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < scorer.WindowSize + (windows - 1) * scorer.Stride; i++)
            monitor.Add(10, 11, "worker", i % 50);
        var adding = clock.Elapsed;

        // The pump never waited for the stuck model: tens of thousands of syscalls in well under a second.
        Assert.True(adding < TimeSpan.FromSeconds(2), $"adding took {adding}");
        var stuck = monitor.Progress();
        Assert.Equal(0, stuck.WindowsScored);
        Assert.True(stuck.WindowsSkipped >= windows - AnomalyMonitor.QueueCapacity - AnomalyMonitor.MaxBatch,
            $"{stuck.WindowsSkipped} skipped of {windows}");

        scorer.Release.Set();
        var report = monitor.Finish();
        // Every window is either scored or counted as skipped, and the report says how many.
        Assert.Equal(windows, report.WindowsScored + report.WindowsSkipped);
        Assert.Equal(stuck.WindowsSkipped, report.WindowsSkipped);
        Assert.True(report.WindowsScored >= AnomalyMonitor.QueueCapacity, $"{report.WindowsScored} scored");
        Assert.Null(report.Killed);
        Assert.Single(events, e => e.Event == "anomaly"); // the thread's highest score
    }

    /// <summary>Scores a window 900 when it holds syscall 59, else 10.</summary>
    private sealed class ExecScorer : IOnlineScorer
    {
        public string Name => "exec";

        public int WindowSize => 8;

        public int Stride => 4;

        public OnlineScore Score(ReadOnlySpan<int> window) => window.Contains(59) ? new(900, 9) : new(10, 0.1);
    }

    [Fact]
    public void Batched_windows_kill_once_at_the_first_anomalous_one_and_each_thread_keeps_its_highest()
    {
        var events = new List<EnforcementEvent>();
        int kills = 0;
        var monitor = new AnomalyMonitor(new ExecScorer(), new AnomalySettings(800, KillOnAnomaly: true), 7,
            e => { lock (events) events.Add(e); }, () => Interlocked.Increment(ref kills));
        for (int i = 0; i < 4000; i++)
        {
            monitor.Add(10, 11, "calm", 0);
            monitor.Add(10, 12, "odd", i % 1000 == 999 ? 59 : 1);
        }
        var report = monitor.Finish();

        Assert.Equal(1, kills);
        Assert.Equal(0, report.WindowsSkipped);
        Assert.Equal((12, 900), (report.Killed!.Tid, report.Killed.Score));
        var kill = Assert.Single(events, e => e.Decision == "kill" && e.Reason!.Contains("cgroup killed"));
        Assert.Contains(59, kill.Window!);
        var highest = events.Where(e => e.Reason!.StartsWith("thread's highest", StringComparison.Ordinal)).ToDictionary(e => e.Tid, e => e.AnomalyScore);
        Assert.Equal(10, highest[11]);
        Assert.Equal(900, highest[12]);
    }

    private const int ExitGroup = 231;

    /// <summary>Scores a window by its length (a window of n syscalls scores n), so a test can tell windows apart.</summary>
    private sealed class LengthScorer : IOnlineScorer
    {
        public string Name => "length";
        public int WindowSize => 8;
        public int Stride => 4;
        public OnlineScore Score(ReadOnlySpan<int> window) => new(window.Length, window.Length);
    }

    [Fact]
    public void A_thread_shorter_than_a_window_is_scored_live_when_it_exits_not_only_at_the_end()
    {
        bool killed = false;
        var monitor = new AnomalyMonitor(new LengthScorer(), new AnomalySettings(4, KillOnAnomaly: true), 1, (EnforcementEvent _) => { }, () => killed = true);
        foreach (int nr in new[] { 59, 12, 9, ExitGroup })
            monitor.Add(1, 2, "short", nr);
        Assert.True(monitor.WaitScored(TimeSpan.FromSeconds(10)));
        // Its whole trace, four syscalls, was scored at its exit: not yet above the threshold of 4.
        var progress = monitor.Progress();
        Assert.Equal((1L, 4, false), (progress.WindowsScored, progress.Peak!.Score, killed));

        // A longer thread: windows at 8 and 12, then its exit (syscall 13) the one ending there, which no stride reached
        for (int i = 0; i < 13; i++)
            monitor.Add(1, 3, "long", i == 12 ? ExitGroup : 0);
        Assert.True(monitor.WaitScored(TimeSpan.FromSeconds(10)));
        progress = monitor.Progress();
        Assert.Equal(4L, progress.WindowsScored);
        Assert.True(killed); // 8 > 4: killed at its first full window
        Assert.Equal(8, progress.Killed!.Score);
        monitor.Stop();
    }

    [Fact]
    public void Waiting_for_scores_returns_once_every_queued_window_is_scored()
    {
        var monitor = new AnomalyMonitor(new LengthScorer(), new AnomalySettings(1000, KillOnAnomaly: false), 1, (EnforcementEvent _) => { }, () => { });
        for (int i = 0; i < 8 + 4 * 99; i++)
            monitor.Add(1, 2, "t", 0);
        Assert.True(monitor.WaitScored(TimeSpan.FromSeconds(10)));
        Assert.Equal(100L, monitor.Progress().WindowsScored);
        monitor.Stop();
        // A stopped monitor scores no more: waiting on it does not hang.
        Assert.True(monitor.WaitScored(TimeSpan.FromSeconds(1)));
    }
}
