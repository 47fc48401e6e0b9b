using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Mis.Cli.Tests;

/// <summary>
/// <c>mis gym run --shard I/N</c> and the merge by <c>mis report</c>, through the real binary on the
/// simulator: shards as concurrent processes into one directory, a shard killed outright and rerun,
/// the shard taken from a Slurm array task's or an Indexed Job pod's environment.
/// </summary>
public sealed class ShardCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "mis-cli-shard-" + Guid.NewGuid().ToString("N"));

    public ShardCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // 2 configs × 3 seeds = 6 runs with the random agent (which resumes its stream exactly).
    private string WriteExperiment(int episodes, int checkpointEvery = 5)
    {
        string scenario = Path.Combine(RepoRoot.Find(), "experiments", "scenarios", "data-shortcut.toml");
        string file = Path.Combine(_dir, "sweep.toml");
        File.WriteAllText(file, $"""
            [experiment]
            name = "shard-test"
            scenario = "{scenario}"
            episodes = {episodes}
            seeds = 3
            checkpoint_every = {checkpointEvery}

            [agent]
            algorithm = "random"

            [sweep]
            feedback = ["deny", "deny+slowdown+kill"]
            """);
        return file;
    }

    private string WholeRun(string file)
    {
        string whole = Path.Combine(_dir, "whole");
        var result = CliRunner.Run("gym", "run", file, "--out", whole);
        Assert.True(result.ExitCode == 0, result.Stderr + result.Stdout);
        return whole;
    }

    private static Dictionary<string, string> Episodes(string runDir) =>
        Directory.GetFiles(runDir, "episodes.csv", SearchOption.AllDirectories).ToDictionary(f => Path.GetRelativePath(runDir, f), File.ReadAllText);

    [Fact]
    public async Task Three_shard_processes_at_once_merge_into_the_one_machine_summary_byte_for_byte()
    {
        string file = WriteExperiment(episodes: 40);
        string whole = WholeRun(file);
        string shared = Path.Combine(_dir, "shared");

        var shards = Enumerable.Range(0, 3).Select(i => Task.Run(() => CliRunner.Run("gym", "run", file, "--out", shared, "--shard", $"{i}/3"),
            TestContext.Current.CancellationToken)).ToArray();
        var results = await Task.WhenAll(shards);
        for (int i = 0; i < 3; i++)
        {
            Assert.True(results[i].ExitCode == 0, results[i].Stderr + results[i].Stdout);
            Assert.Contains($"shard {i}/3 (from --shard): 2 of the 6 (config, seed) runs (numbers {i}, {i + 3} in experiment order)", results[i].Stdout);
            Assert.Contains($"shard {i}/3 done: 2 of its 2 run(s) complete", results[i].Stdout);
            Assert.EndsWith($"merge: when every shard has finished, mis report {shared}\n", results[i].Stdout);
        }
        // No shard reported: another could still have been running.
        Assert.False(File.Exists(Path.Combine(shared, "summary.json")));
        Assert.Empty(Directory.GetFiles(shared, "*.tmp", SearchOption.AllDirectories));

        var report = CliRunner.Run("report", shared);
        Assert.True(report.ExitCode == 0, report.Stderr + report.Stdout);
        Assert.DoesNotContain("incomplete", report.Stdout);
        Assert.Equal(File.ReadAllBytes(Path.Combine(whole, "summary.json")), File.ReadAllBytes(Path.Combine(shared, "summary.json")));
        Assert.Equal(Episodes(whole), Episodes(shared));
        Assert.Equal(6, Episodes(shared).Count);
    }

    [Fact]
    public void A_shard_killed_mid_run_resumes_from_its_checkpoint_and_the_merge_equals_the_uninterrupted_run()
    {
        string file = WriteExperiment(episodes: 1500, checkpointEvery: 10);
        string whole = WholeRun(file);
        string shared = Path.Combine(_dir, "shared");

        // Shard 0/2 runs deny/0, deny/2 and deny+slowdown+kill/1; kill it outright (SIGKILL, no
        // chance to checkpoint) once its second run has a checkpoint.
        string second = Path.Combine(shared, "deny", "seed-2");
        using (var shard = CliRunner.StartInBackground("gym", "run", file, "--out", shared, "--shard", "0/2"))
        {
            var clock = Stopwatch.StartNew();
            while (!File.Exists(Path.Combine(second, "checkpoint.json")) && !shard.HasExited && clock.Elapsed < TimeSpan.FromMinutes(2))
                Thread.Sleep(5);
            if (!shard.HasExited)
                shard.Kill(entireProcessTree: true);
            shard.WaitForExit();
        }
        var status = JsonNode.Parse(File.ReadAllText(Path.Combine(second, "status.json")))!;
        Assert.True(status["status"]!.GetValue<string>() == "running", $"the shard was to be killed in the middle of deny/seed-2, which is {status.ToJsonString()}");

        // The merge names what is missing, with its shard, and says so in its exit status.
        var partial = CliRunner.Run("report", shared);
        Assert.True(partial.ExitCode == 3, partial.Stderr + partial.Stdout);
        Assert.Contains("mis report: incomplete: 5 of 6 runs are not complete", partial.Stdout);
        Assert.Contains("  deny / seed 2: running (", partial.Stdout);
        Assert.Contains("  deny+slowdown+kill / seed 1: not started (0 episodes on disk), shard 0/2", partial.Stdout);
        Assert.Contains("  deny / seed 1: not started (0 episodes on disk), shard 1/2", partial.Stdout);
        Assert.Contains("  shard 0/2: running on ", partial.Stdout);
        Assert.Contains("  shard(s) 1/2: never started", partial.Stdout);
        Assert.Contains("### Runs not complete", File.ReadAllText(Path.Combine(shared, "report.md")));

        var resumed = CliRunner.Run("gym", "run", file, "--out", shared, "--shard", "0/2");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr + resumed.Stdout);
        Assert.Contains("1 run(s) were already complete", resumed.Stdout);
        var other = CliRunner.Run("gym", "run", file, "--out", shared, "--shard", "1/2");
        Assert.True(other.ExitCode == 0, other.Stderr + other.Stdout);

        var report = CliRunner.Run("report", shared);
        Assert.True(report.ExitCode == 0, report.Stderr + report.Stdout);
        Assert.Equal(Episodes(whole), Episodes(shared));
        Assert.Equal(File.ReadAllBytes(Path.Combine(whole, "summary.json")), File.ReadAllBytes(Path.Combine(shared, "summary.json")));
    }

    [Fact]
    public void The_shard_comes_from_a_Slurm_array_task_or_an_Indexed_Job_pod()
    {
        string file = WriteExperiment(episodes: 3);
        string outDir = Path.Combine(_dir, "env");
        var slurm = CliRunner.Run(new Dictionary<string, string> { ["SLURM_ARRAY_TASK_ID"] = "4", ["SLURM_ARRAY_TASK_MIN"] = "3", ["SLURM_ARRAY_TASK_COUNT"] = "4" },
            "gym", "run", file, "--out", outDir);
        Assert.True(slurm.ExitCode == 0, slurm.Stderr + slurm.Stdout);
        Assert.Contains("shard 1/4 (from SLURM_ARRAY_TASK_ID=4, SLURM_ARRAY_TASK_MIN=3, SLURM_ARRAY_TASK_COUNT=4): 2 of the 6", slurm.Stdout);
        Assert.True(File.Exists(Path.Combine(outDir, "deny", "seed-1", "episodes.csv")));
        Assert.True(File.Exists(Path.Combine(outDir, "deny+slowdown+kill", "seed-2", "episodes.csv")));
        Assert.False(Directory.Exists(Path.Combine(outDir, "deny", "seed-0")));

        var pod = CliRunner.Run(new Dictionary<string, string> { ["JOB_COMPLETION_INDEX"] = "2", ["MIS_SHARD_COUNT"] = "4" }, "gym", "run", file, "--out", outDir);
        Assert.True(pod.ExitCode == 0, pod.Stderr + pod.Stdout);
        Assert.Contains("shard 2/4 (from JOB_COMPLETION_INDEX=2, MIS_SHARD_COUNT=4)", pod.Stdout);

        var noCount = CliRunner.Run(new Dictionary<string, string> { ["JOB_COMPLETION_INDEX"] = "2" }, "gym", "run", file, "--out", outDir);
        Assert.Equal(2, noCount.ExitCode);
        Assert.Contains("MIS_SHARD_COUNT is not", noCount.Stderr);

        // An explicit --shard wins.
        var explicitShard = CliRunner.Run(new Dictionary<string, string> { ["SLURM_ARRAY_TASK_ID"] = "0", ["SLURM_ARRAY_TASK_COUNT"] = "4" },
            "gym", "run", file, "--out", outDir, "--shard", "3/4");
        Assert.True(explicitShard.ExitCode == 0, explicitShard.Stderr + explicitShard.Stdout);
        Assert.Contains("shard 3/4 (from --shard)", explicitShard.Stdout);

        // Three of four shards: mis report names the fourth.
        var report = CliRunner.Run("report", outDir);
        Assert.Equal(3, report.ExitCode);
        Assert.Contains("shard(s) 0/4: never started", report.Stdout);
    }

    [Theory]
    [InlineData("4/4", "the index is 0-based")]
    [InlineData("1/0", "at least 1")]
    [InlineData("one/4", "is not I/N")]
    public void A_bad_shard_is_a_usage_error_naming_the_flag(string shard, string expected)
    {
        var result = CliRunner.Run("gym", "run", WriteExperiment(episodes: 3), "--out", Path.Combine(_dir, "bad"), "--shard", shard);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"mis gym run: --shard \"{shard}\"", result.Stderr);
        Assert.Contains(expected, result.Stderr);
        Assert.False(Directory.Exists(Path.Combine(_dir, "bad")));
    }

    [Fact]
    public void A_shard_of_another_experiment_in_the_same_directory_is_refused()
    {
        string outDir = Path.Combine(_dir, "mixed");
        string file = WriteExperiment(episodes: 3);
        Assert.Equal(0, CliRunner.Run("gym", "run", file, "--out", outDir, "--shard", "0/2").ExitCode);
        var other = CliRunner.Run("gym", "run", file, "--out", outDir, "--shard", "1/2", "--seeds", "2");
        Assert.Equal(2, other.ExitCode);
        Assert.Contains("describes another experiment than shard 1/2's", other.Stderr);
    }
}
