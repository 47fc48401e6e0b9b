using Mis.Enforcer.Events;
using Mis.Enforcer.Run;

namespace Mis.Enforcer.Tests;

/// <summary>The online monitor's windows: when a thread's syscalls are scored, and waiting for the scores.</summary>
public sealed class AnomalyMonitorTests
{
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
