using Microsoft.Extensions.Time.Testing;
using Mis.Cli.Terminal;

namespace Mis.Cli.Tests;

/// <summary>The progress display: plain lines without control characters when redirected, Spectre's live bars on a terminal.</summary>
public sealed class ConsoleProgressTests
{
    [Fact]
    public void Redirected_progress_is_plain_lines_with_count_rate_and_ETA_and_no_escape_sequences()
    {
        var time = new FakeTimeProvider();
        var output = new StringWriter();
        using (var progress = new ConsoleProgress("mis gym run", output, live: false, "ep", time))
        {
            progress.Stage("episodes", 40);
            for (int done = 1; done <= 40; done++)
            {
                time.Advance(TimeSpan.FromMilliseconds(500));
                progress.Report(done, detail: $"deny / seed {done / 20}");
            }
        }
        string text = output.ToString();
        Assert.DoesNotContain('\u001b', text);
        Assert.DoesNotContain('\r', text);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("mis gym run: episodes", lines[0]);
        Assert.Contains(lines, l => l.StartsWith("mis gym run: 20/40 episodes (50%, 2 ep/s, ETA 0:10)", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("mis gym run: 40/40 episodes (100%, 2 ep/s)", StringComparison.Ordinal));
        Assert.Equal("mis gym run: episodes done at 100% in 0:20", lines[^1]);
        Assert.InRange(lines.Length, 11, 13); // a line per 10 %, not one per episode
    }

    [Fact]
    public void A_slow_stage_still_writes_a_line_every_ten_seconds_and_a_stage_without_measure_one_at_each_end()
    {
        var time = new FakeTimeProvider();
        var output = new StringWriter();
        var progress = new ConsoleProgress("mis bench", output, live: false, time: time);
        progress.Stage("workloads");
        progress.Detail("file walk, round 1/5"); // details are for the terminal
        progress.Stage("kernel overhead", 100);
        progress.Report(1);
        time.Advance(TimeSpan.FromSeconds(11));
        progress.Report(2);
        progress.Report(3);
        progress.Done();
        progress.Dispose();
        Assert.Equal(
            [
                "mis bench: workloads", "mis bench: workloads done at 100% in 0:00", "mis bench: kernel overhead",
                "mis bench: kernel overhead 1% (ETA --:--)", "mis bench: kernel overhead 2% (ETA 8:59)",
                "mis bench: kernel overhead done at 3% in 0:11",
            ],
            output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void On_a_terminal_Spectre_draws_the_bars_and_lets_go_of_the_console_at_the_end()
    {
        var output = new StringWriter();
        using (var progress = new ConsoleProgress("mis gym run", output, live: true, "ep"))
        {
            progress.Stage("episodes", 10);
            for (int done = 1; done <= 10; done++)
                progress.Report(done, detail: "deny / [seed] 0"); // brackets are Spectre markup: shown as they are
            progress.Done();
            progress.Stage("report");
        }
        string text = output.ToString();
        Assert.Contains('\u001b', text); // drawn in place
        Assert.Contains("100%", text);
        Assert.Contains("episodes", text);
        Assert.Contains("report", text);
    }
}
