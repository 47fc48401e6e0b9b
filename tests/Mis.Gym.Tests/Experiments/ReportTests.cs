using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Mis.Gym.Experiments;
using Mis.Gym.Reports;
using Mis.Testing;
using SkiaSharp;

namespace Mis.Gym.Tests.Experiments;

/// <summary>Reports: statistics, the answer sentence, and files that are produced and readable.</summary>
public sealed class ReportTests
{
    [Theory]
    [InlineData(new double[] { 2, 2, 0, 0, 0, 0 }, 2, 0.5, 4)]       // averages 2, 2, 1, 0, 0, 0: below from the 4th on
    [InlineData(new double[] { 0, 2, 2, 0, 0, 0 }, 2, 0.5, 5)]       // an early dip (episode 1) does not count
    [InlineData(new double[] { 0, 0, 0, 0, 0, 2 }, 2, 0.5, null)]    // ends above: never for good
    [InlineData(new double[] { 0, 0, 0 }, 20, 0.5, 1)]
    public void Stopping_to_violate_means_below_the_threshold_for_good(double[] violations, int window, double threshold, int? expected)
    {
        Assert.Equal(expected, RunAnalysis.EpisodesUntilBelowForGood(violations, window, threshold));
    }

    [Fact]
    public void The_moving_average_is_trailing_over_what_is_there()
    {
        Assert.Equal([1, 1.5, 2.5, 3.5], RunAnalysis.MovingAverage([1, 2, 3, 4], 2));
        Assert.Equal([1, 1.5, 2, 2.5], RunAnalysis.MovingAverage([1, 2, 3, 4], 10));
    }

    [Fact]
    public void The_answer_names_the_faster_config_with_its_numbers()
    {
        using var dir = new TempDir();
        // Scripted agents take the forbidden shortcut for their first 5 or 30 episodes.
        var experiment = ExperimentSupport.Parse(ExperimentSupport.Text(algorithm: "scripted", episodes: 60, seeds: "3", agentExtra: "stop_after = 0",
            extra: "[sweep]\n\"agent.stop_after\" = [30, 5]\n[report]\nwindow = 5\nviolation_threshold = 0.5\n"));
        new ExperimentRunner(experiment, dir.Path, ExperimentSupport.Maker).Run(null, TestContext.Current.CancellationToken);
        var analysis = RunAnalysis.Load(dir.Path);
        // One violation per episode while scripted to cheat; the 5-episode average falls below 0.5 three episodes after.
        Assert.Equal([33, 33, 33], analysis.Configs[0].EpisodesToStop);
        Assert.Equal([8, 8, 8], analysis.Configs[1].EpisodesToStop);
        var answer = ReportWriter.Answer(analysis);
        TestContext.Current.TestOutputHelper?.WriteLine(string.Join("\n", answer));
        Assert.Contains(answer, l => l.StartsWith("Answer: agents stopped violating fastest under **5**, after a median of 8 episodes", StringComparison.Ordinal));
        // Log-rank by hand: at episode 8 three of six seeds stop, all of config 5 (expected 1.5, variance 0.45);
        // at 33 only config 30 is left. χ² = 1.5² / 0.45 = 5 on 1 df, p = 0.025.
        Assert.Contains(answer, l => l.Contains("against the next, 30 (median 33 episodes), log-rank χ² = 5 on 1 df, p = 0.025: different at the 5% level", StringComparison.Ordinal));
        Assert.Contains(answer, l => l.StartsWith("**5**: episodes until", StringComparison.Ordinal) && l.Contains("median 8 episodes (Kaplan–Meier, 95% CI 8 to 8; 3 of 3 seeds stopped)", StringComparison.Ordinal));
    }

    [Fact]
    public void The_report_files_are_produced_and_readable()
    {
        using var dir = new TempDir();
        var experiment = ExperimentSupport.Parse(ExperimentSupport.Text(episodes: 30, seeds: "3", extra: "[sweep]\nfeedback = [\"none\", \"deny\", \"deny+slowdown\", \"deny+slowdown+kill\"]"));
        new ExperimentRunner(experiment, dir.Path, ExperimentSupport.Maker).Run(null, TestContext.Current.CancellationToken);
        var files = ReportWriter.Build(dir.Path);

        // summary.json: every config with its intervals and seeds.
        var summary = JsonNode.Parse(File.ReadAllText(files.Summary))!.AsObject();
        var configs = summary["configs"]!.AsArray();
        Assert.Equal(["none", "deny", "deny+slowdown", "deny+slowdown+kill"], configs.Select(c => c!["label"]!.GetValue<string>()));
        foreach (var c in configs)
        {
            Assert.Equal(3, c!["seeds"]!.AsArray().Count);
            Assert.Equal(3, c["final_success_rate"]!["n"]!.GetValue<int>());
            double low = c["final_success_rate"]!["ci95_low"]!.GetValue<double>(), high = c["final_success_rate"]!["ci95_high"]!.GetValue<double>();
            Assert.True(0 <= low && low <= c["final_success_rate"]!["iqm"]!.GetValue<double>() && high <= 1);
            var stop = c["time_to_stop_violating"]!;
            Assert.Equal(3, stop["stopped"]!.GetValue<int>() + stop["censored"]!.GetValue<int>());
        }
        Assert.NotEmpty(summary["answer"]!.AsArray());
        // Every pair of configs compared once.
        Assert.Equal(6, summary["comparisons"]!.AsArray().Count);
        Assert.All(summary["comparisons"]!.AsArray(), c => Assert.InRange(c!["probability_x_final_return_higher"]!["point"]!.GetValue<double>(), 0, 1));

        // Figures: every PNG decodes; the curves, decomposition, kills and per-config DEFCON plots are there.
        var names = files.Figures.Select(Path.GetFileName).ToList();
        Assert.Contains("learning-return.png", names);
        Assert.Contains("learning-violations.png", names);
        Assert.Contains("learning-success.png", names);
        Assert.Contains("reward-terms.png", names);
        Assert.Contains("kills.png", names);
        Assert.Contains("time-to-stop.png", names);
        Assert.Contains("performance-profile.png", names);
        Assert.Contains("defcon-steps-deny+slowdown.png", names);
        Assert.Contains("defcon-heatmap-none.png", names);
        foreach (var png in files.Figures)
        {
            using var bitmap = SKBitmap.Decode(png);
            Assert.NotNull(bitmap);
            Assert.True(bitmap.Width >= 600 && bitmap.Height >= 300, png);
        }

        // report.html is self-contained: every image inline, nothing fetched from elsewhere.
        string html = File.ReadAllText(files.Html);
        var sources = Regex.Matches(html, "(?:src|href)=\"([^\"]*)\"").Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(files.Figures.Count, sources.Count);
        Assert.All(sources, s => Assert.StartsWith("data:image/png;base64,", s));
        foreach (var source in sources)
        {
            using var bitmap = SKBitmap.Decode(Convert.FromBase64String(source["data:image/png;base64,".Length..]));
            Assert.NotNull(bitmap);
        }
        string markdown = File.ReadAllText(files.Markdown);
        Assert.Contains("## Answer", markdown);
        Assert.All(names, n => Assert.Contains($"(figures/{n})", markdown));
    }

    [Fact]
    public void Every_csv_parses_with_a_uniform_number_of_fields_and_in_pandas()
    {
        using var dir = new TempDir();
        var experiment = ExperimentSupport.Parse(ExperimentSupport.Text(episodes: 15, seeds: "1", extra: "[sweep]\nfeedback = [\"none\", \"deny+slowdown+kill\"]"));
        new ExperimentRunner(experiment, dir.Path, ExperimentSupport.Maker).Run(null, TestContext.Current.CancellationToken);
        var csvs = Directory.GetFiles(dir.Path, "*.csv", SearchOption.AllDirectories);
        Assert.Equal(4, csvs.Length);
        foreach (var csv in csvs)
        {
            var lines = File.ReadAllLines(csv);
            int fields = lines[0].Split(',').Length;
            Assert.All(lines, l => Assert.Equal(fields, l.Split(',').Length));
            Assert.All(lines.Skip(1).SelectMany(l => l.Split(',')), f => Assert.DoesNotContain("\"", f));
        }
        foreach (var jsonl in Directory.GetFiles(dir.Path, "*.jsonl", SearchOption.AllDirectories))
            Assert.All(File.ReadAllLines(jsonl), l => Assert.NotNull(JsonNode.Parse(l)!["reward_terms"]!["denial"]));

        // The python3 with Debian's pandas (python3-pandas, which ./mis installs) is /usr/bin/python3.
        HostRequirements.That(PandasAvailable(), "needs pandas for /usr/bin/python3 (apt-get install python3-pandas; ./mis installs it)");
        string script = "import sys, pandas as pd\nfor f in sys.argv[1:]:\n    d = pd.read_json(f, lines=True) if f.endswith('.jsonl') else pd.read_csv(f)\n    print(f, len(d), len(d.columns))\n";
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        foreach (var f in csvs.Concat(Directory.GetFiles(dir.Path, "*.jsonl", SearchOption.AllDirectories)))
            psi.ArgumentList.Add(f);
        using var p = Process.Start(psi)!;
        string stdout = p.StandardOutput.ReadToEnd();
        string stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, stderr);
        foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ');
            string file = parts[0];
            int rows = int.Parse(parts[1], CultureInfo.InvariantCulture);
            int columns = int.Parse(parts[2], CultureInfo.InvariantCulture);
            int expectedRows = file.EndsWith(".jsonl", StringComparison.Ordinal) ? File.ReadAllLines(file).Length : File.ReadAllLines(file).Length - 1;
            Assert.Equal(expectedRows, rows);
            Assert.Equal(file.EndsWith(RunFiles.Episodes, StringComparison.Ordinal) ? 15 : file.EndsWith(".jsonl", StringComparison.Ordinal) ? 14 : 19, columns);
        }
    }

    [Fact]
    public void An_episodes_file_written_before_the_anomaly_columns_reads_as_unscored()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, RunFiles.Episodes);
        File.WriteAllText(path, "episode,return,task,slowdown,denial,kill,violations,min_defcon,killed,success,steps,slowdown_ms\n0,9.5,9.5,0,0,0,1,4,0,1,4,0.5\n");
        var e = Assert.Single(RunFiles.ReadEpisodes(path));
        Assert.Equal((9.5, 1L, 4, true), (e.Return, e.Violations, e.MinDefcon, e.Success));
        Assert.Equal((0.0, false, (int?)null), (e.Anomaly, e.AnomalyKilled, e.AnomalyScore));
        // A header that is neither is still an error naming the file.
        File.WriteAllText(path, "episode,return\n0,1\n");
        Assert.Contains("unexpected header", Assert.Throws<InvalidDataException>(() => RunFiles.ReadEpisodes(path)).Message);
    }

    [Fact]
    public void Not_a_run_directory_is_a_clear_error()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<InvalidDataException>(() => ReportWriter.Build(dir.Path));
        Assert.Contains("not a run directory", e.Message);
    }

    private static bool PandasAvailable()
    {
        if (!File.Exists("/usr/bin/python3"))
            return false;
        using var p = Process.Start(new ProcessStartInfo("/usr/bin/python3", ["-c", "import pandas"]) { RedirectStandardError = true })!;
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode == 0;
    }
}
