using Mis.Cli.Commands;

namespace Mis.Cli.Tests;

/// <summary><c>mis gym run</c> and <c>mis report</c>, through the real binary.</summary>
public sealed class ExperimentCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "mis-cli-exp-" + Guid.NewGuid().ToString("N"));

    public ExperimentCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteExperiment(string extra = "")
    {
        string scenario = Path.Combine(RepoRoot.Find(), "experiments", "scenarios", "data-shortcut.toml");
        string file = Path.Combine(_dir, "exp.toml");
        File.WriteAllText(file, $"""
            [experiment]
            name = "cli-test"
            scenario = "{scenario}"
            episodes = 50
            seeds = 5
            checkpoint_every = 4

            [agent]
            algorithm = "random"

            [sweep]
            feedback = ["deny", "deny+slowdown+kill"]
            {extra}
            """);
        return file;
    }

    [Fact]
    public void Gym_run_writes_the_run_directory_and_ends_with_the_report_path()
    {
        string outDir = Path.Combine(_dir, "run");
        var result = CliRunner.Run("gym", "run", WriteExperiment(), "--out", outDir, "--episodes", "9", "--seeds", "2");
        Assert.True(result.ExitCode == 0, result.Stderr + result.Stdout);
        // Not a terminal: plain progress lines with the count, the rate and the end.
        Assert.Contains("36/36 episodes", result.Stdout);
        Assert.Contains("ep/s", result.Stdout);
        Assert.DoesNotContain('\u001b', result.Stdout + result.Stderr); // no escape sequences in a log
        var lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal($"report: {Path.Combine(outDir, "report.html")}", lines[^1]);
        Assert.Equal($"tensorboard: tensorboard --logdir {outDir}", lines[^2]);
        foreach (var config in new[] { "deny", "deny+slowdown+kill" })
        {
            foreach (var seed in new[] { 0, 1 })
            {
                string seedDir = Path.Combine(outDir, config, $"seed-{seed}");
                Assert.Equal(10, File.ReadAllLines(Path.Combine(seedDir, "episodes.csv")).Length); // header + 9 episodes
                Assert.True(File.Exists(Path.Combine(seedDir, "trajectory.csv")));
                Assert.True(File.Exists(Path.Combine(seedDir, "trajectory.jsonl")));
                Assert.Single(Directory.GetFiles(Path.Combine(outDir, "tensorboard", config, $"seed-{seed}"), "events.out.tfevents.*"));
            }
        }
        foreach (var file in new[] { "experiment.toml", "summary.json", "report.md", "report.html", "figures/learning-return.png" })
            Assert.True(File.Exists(Path.Combine(outDir, file)), file);

        // Rerun into the same directory: everything is already complete.
        var again = CliRunner.Run("gym", "run", WriteExperiment(), "--out", outDir, "--episodes", "9", "--seeds", "2");
        Assert.Equal(0, again.ExitCode);
        Assert.Contains("4 run(s) were already complete", again.Stdout);

        // mis report rebuilds the report from the files alone.
        File.Delete(Path.Combine(outDir, "report.html"));
        Directory.Delete(Path.Combine(outDir, "figures"), recursive: true);
        var report = CliRunner.Run("report", outDir);
        Assert.True(report.ExitCode == 0, report.Stderr);
        Assert.True(File.Exists(Path.Combine(outDir, "report.html")));
        Assert.True(File.Exists(Path.Combine(outDir, "figures", "defcon-heatmap-deny.png")));
    }

    [Fact]
    public void A_bad_experiment_file_names_file_line_and_key()
    {
        string file = WriteExperiment(extra: "\n[reporting]\n");
        var result = CliRunner.Run("gym", "run", file, "--out", Path.Combine(_dir, "never"));
        Assert.Equal(ExperimentConsole.BadInput, result.ExitCode);
        Assert.Matches($@"{Regex(file)}:1\d:1: .*reporting.*did you mean 'report'", result.Stderr);
        Assert.False(Directory.Exists(Path.Combine(_dir, "never")));
    }

    [Fact]
    public void Report_of_a_directory_that_is_not_a_run_is_an_error()
    {
        var result = CliRunner.Run("report", _dir);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("not a run directory", result.Stderr);
    }

    [Fact]
    public void Gym_run_and_report_have_help_naming_their_options()
    {
        var run = CliRunner.Run("gym", "run", "--help");
        Assert.Equal(0, run.ExitCode);
        foreach (var option in new[] { "--out", "--episodes", "--seeds" })
            Assert.Contains(option, run.Stdout);
        var report = CliRunner.Run("report", "--help");
        Assert.Equal(0, report.ExitCode);
        Assert.Contains("RUN_DIR", report.Stdout);
    }

    private static string Regex(string text) => System.Text.RegularExpressions.Regex.Escape(text);
}
