using System.Text.Json.Nodes;
using Mis.Gym.Agents;
using Mis.Gym.Experiments;
using Mis.Gym.Reports;

namespace Mis.Gym.Tests.Experiments;

/// <summary>
/// Sharded sweeps: which runs a shard takes, where the shard comes from (option, Slurm, Kubernetes),
/// shards running at once into one directory, and the merge: the summary of a complete sweep is
/// the bytes of a one-machine run's, a missing run is named with its shard, a killed shard resumes.
/// </summary>
public sealed class ShardTests
{
    // 3 configs × 3 seeds = 9 runs; the counting agent resumes exactly, so interrupted shards can be compared byte for byte.
    private static Experiment Sweep(int episodes = 30) => ExperimentSupport.Parse(ExperimentSupport.Text(algorithm: "counting", episodes: episodes, seeds: "3",
        checkpointEvery: 7, extra: "[sweep]\nfeedback = [\"none\", \"deny\", \"deny+slowdown+kill\"]"));

    private static string[] RunFileNames => [RunFiles.Trajectory, RunFiles.TrajectoryJson, RunFiles.Episodes];

    // Every per-seed run file, by path relative to the run directory.
    private static Dictionary<string, string> RunContents(string runDir) =>
        Directory.GetFiles(runDir, "*.*", SearchOption.AllDirectories)
            .Where(f => RunFileNames.Contains(Path.GetFileName(f)))
            .ToDictionary(f => Path.GetRelativePath(runDir, f), File.ReadAllText);

    private static string WholeRun(TempDir dir, Experiment experiment)
    {
        string whole = dir.File("whole");
        new ExperimentRunner(experiment, whole, ExperimentSupport.Maker).Run(null, TestContext.Current.CancellationToken);
        ReportWriter.Build(whole);
        return whole;
    }

    private static ExperimentRunner ShardRunner(Experiment experiment, string dir, int index, int count) =>
        new(experiment, dir, ExperimentSupport.Maker) { Shard = new Shard(index, count) };

    [Theory]
    [InlineData("0/1", 0, 1)]
    [InlineData("2/3", 2, 3)]
    [InlineData("15/16", 15, 16)]
    public void A_shard_is_written_I_slash_N(string text, int index, int count)
    {
        var shard = Shard.Parse(text);
        Assert.Equal((index, count), (shard.Index, shard.Count));
        Assert.Equal(text, shard.ToString());
    }

    [Theory]
    [InlineData("3/3", "below the number of shards")]
    [InlineData("0/0", "at least 1")]
    [InlineData("-1/3", "not I/N")]
    [InlineData("1", "not I/N")]
    [InlineData("a/b", "not I/N")]
    [InlineData("1/2/3", "not I/N")]
    public void A_bad_shard_is_refused_saying_what_is_expected(string text, string expected)
    {
        var e = Assert.Throws<FormatException>(() => ShardSelection.Resolve(text, _ => null));
        Assert.StartsWith("--shard ", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Shards_deal_the_runs_round_robin_in_experiment_order_and_together_take_each_once()
    {
        var experiment = Sweep();
        var runs = experiment.Runs.Select(r => $"{r.Config.DirectoryName}/{r.Seed}").ToList();
        Assert.Equal(["none/0", "none/1", "none/2", "deny/0", "deny/1", "deny/2", "deny+slowdown+kill/0", "deny+slowdown+kill/1", "deny+slowdown+kill/2"], runs);
        var shards = Enumerable.Range(0, 4).Select(i => new Shard(i, 4).Select(runs).ToList()).ToList();
        Assert.Equal(["none/0", "deny/1", "deny+slowdown+kill/2"], shards[0]);
        Assert.Equal(["none/1", "deny/2"], shards[1]);
        Assert.Equal(runs.Order(), shards.SelectMany(s => s).Order());
        Assert.Equal(runs, Shard.Whole.Select(runs));
    }

    [Fact]
    public void The_shard_comes_from_the_option_then_Slurm_then_Kubernetes()
    {
        static ShardChoice Resolve(string? option, params (string Name, string Value)[] variables) =>
            ShardSelection.Resolve(option, name => variables.FirstOrDefault(v => v.Name == name).Value);

        var none = Resolve(null);
        Assert.True(none.Shard.IsWhole);

        var slurm = Resolve(null, ("SLURM_ARRAY_TASK_ID", "6"), ("SLURM_ARRAY_TASK_MIN", "4"), ("SLURM_ARRAY_TASK_COUNT", "5"));
        Assert.Equal("2/5", slurm.Shard.ToString());
        Assert.Contains("SLURM_ARRAY_TASK_ID=6", slurm.Source, StringComparison.Ordinal);
        // Without SLURM_ARRAY_TASK_MIN the array starts at 0; a stepped range (--array=0-8:2) maps by its step.
        Assert.Equal("3/4", Resolve(null, ("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_COUNT", "4")).Shard.ToString());
        Assert.Equal("2/5", Resolve(null, ("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_MIN", "0"), ("SLURM_ARRAY_TASK_STEP", "2"), ("SLURM_ARRAY_TASK_COUNT", "5")).Shard.ToString());

        var pod = Resolve(null, ("JOB_COMPLETION_INDEX", "7"), ("MIS_SHARD_COUNT", "8"));
        Assert.Equal("7/8", pod.Shard.ToString());
        Assert.Contains("JOB_COMPLETION_INDEX=7", pod.Source, StringComparison.Ordinal);

        // An explicit --shard wins over the environment.
        var explicitShard = Resolve("0/1", ("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "2"));
        Assert.True(explicitShard.Shard.IsWhole);
        Assert.Equal("--shard", explicitShard.Source);
    }

    [Fact]
    public void An_environment_that_does_not_say_the_shard_is_refused_saying_what_to_do()
    {
        static string Error(params (string Name, string Value)[] variables) =>
            Assert.Throws<FormatException>(() => ShardSelection.Resolve(null, name => variables.FirstOrDefault(v => v.Name == name).Value)).Message;

        Assert.Contains("SLURM_ARRAY_TASK_COUNT is not", Error(("SLURM_ARRAY_TASK_ID", "1")), StringComparison.Ordinal);
        Assert.Contains("--shard I/N", Error(("SLURM_ARRAY_TASK_ID", "1")), StringComparison.Ordinal);
        // --array=1,5,7: task 7 is not the third of a contiguous range.
        Assert.Contains("not a contiguous range", Error(("SLURM_ARRAY_TASK_ID", "7"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "3")), StringComparison.Ordinal);
        Assert.Contains("not a non-negative whole number", Error(("SLURM_ARRAY_TASK_ID", "x"), ("SLURM_ARRAY_TASK_COUNT", "3")), StringComparison.Ordinal);
        string pod = Error(("JOB_COMPLETION_INDEX", "2"));
        Assert.Contains("MIS_SHARD_COUNT is not", pod, StringComparison.Ordinal);
        Assert.Contains("completions", pod, StringComparison.Ordinal);
        Assert.Contains("below the number of shards", Error(("JOB_COMPLETION_INDEX", "2"), ("MIS_SHARD_COUNT", "2")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Three_shards_at_once_into_one_directory_merge_into_the_one_machine_summary_byte_for_byte()
    {
        using var dir = new TempDir();
        var experiment = Sweep();
        string whole = WholeRun(dir, experiment);

        string shared = dir.File("shared");
        using var start = new Barrier(3);
        var shards = Enumerable.Range(0, 3).Select(i => Task.Factory.StartNew(() =>
        {
            start.SignalAndWait(TestContext.Current.CancellationToken); // all three write the description files at the same moment
            return ShardRunner(experiment, shared, i, 3).Run(null, TestContext.Current.CancellationToken);
        }, TestContext.Current.CancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        var outcomes = await Task.WhenAll(shards);
        Assert.Equal([3, 3, 3], outcomes.Select(o => o.Count));
        Assert.All(outcomes.SelectMany(o => o), o => Assert.Equal(RunStatus.Completed, o.Status));

        Assert.False(File.Exists(Path.Combine(shared, "summary.json"))); // the runner never reports; the shards' command does not either
        Assert.Empty(Directory.GetFiles(shared, "*.tmp", SearchOption.AllDirectories));
        Assert.Equal(File.ReadAllText(Path.Combine(whole, RunFiles.ExperimentJson)), File.ReadAllText(Path.Combine(shared, RunFiles.ExperimentJson)));
        Assert.Equal(RunContents(whole), RunContents(shared));
        var analysis = RunAnalysis.Load(shared);
        Assert.True(analysis.IsComplete);
        Assert.Equal(["0/3", "1/3", "2/3"], analysis.Shards.Select(s => s.Shard.ToString()));
        Assert.All(analysis.Shards, s => Assert.Equal("finished", s.Status));

        var merged = ReportWriter.Build(shared);
        Assert.Equal(File.ReadAllBytes(Path.Combine(whole, "summary.json")), File.ReadAllBytes(merged.Summary));
        var summary = JsonNode.Parse(File.ReadAllText(merged.Summary))!;
        Assert.True(summary["complete"]!.GetValue<bool>());
        Assert.Empty(summary["runs_not_complete"]!.AsArray());
        Assert.Null(summary["generated"]); // the time is in report.md only
        Assert.Contains("Generated ", File.ReadAllText(merged.Markdown), StringComparison.Ordinal);
    }

    [Fact]
    public void An_interrupted_shard_rerun_resumes_from_its_checkpoint_and_the_merge_equals_the_uninterrupted_run()
    {
        using var dir = new TempDir();
        var experiment = Sweep(episodes: 40);
        string whole = WholeRun(dir, experiment);

        string shared = dir.File("shared");
        ShardRunner(experiment, shared, 0, 3).Run(null, TestContext.Current.CancellationToken);
        ShardRunner(experiment, shared, 2, 3).Run(null, TestContext.Current.CancellationToken);
        // Shard 1 (runs none/1, deny/1, deny+slowdown+kill/1) stopped in the middle of its second run.
        using var cancel = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() => ShardRunner(experiment, shared, 1, 3).Run(p =>
        {
            if (p.Done >= 40 + 23)
                cancel.Cancel();
        }, cancel.Token));

        var partial = RunAnalysis.Load(shared);
        Assert.False(partial.IsComplete);
        Assert.Equal(["deny / seed 1: interrupted, shard 1/3", "deny+slowdown+kill / seed 1: not started, shard 1/3"],
            partial.Incomplete.Select(r => $"{r.Config} / seed {r.Seed}: {r.Status}, shard {r.Shard}"));
        Assert.Equal(23, partial.Incomplete[0].Episodes); // cancelled after episode 23: checkpointed there
        var lines = ReportWriter.IncompleteLines(partial);
        Assert.Contains(lines, l => l.StartsWith("shard 1/3: interrupted", StringComparison.Ordinal));
        var incompleteSummary = JsonNode.Parse(File.ReadAllText(ReportWriter.Build(shared).Summary))!;
        Assert.False(incompleteSummary["complete"]!.GetValue<bool>());
        Assert.Equal(2, incompleteSummary["runs_not_complete"]!.AsArray().Count);
        Assert.Contains("### Runs not complete", File.ReadAllText(Path.Combine(shared, "report.md")), StringComparison.Ordinal);

        var outcomes = ShardRunner(experiment, shared, 1, 3).Run(null, TestContext.Current.CancellationToken);
        Assert.Equal([RunStatus.Skipped, RunStatus.Completed, RunStatus.Completed], outcomes.Select(o => o.Status));
        Assert.Equal(23, outcomes[1].ResumedFrom); // from its checkpoint
        Assert.Equal(RunContents(whole), RunContents(shared));
        Assert.Equal(File.ReadAllBytes(Path.Combine(whole, "summary.json")), File.ReadAllBytes(ReportWriter.Build(shared).Summary));
    }

    [Fact]
    public void A_shard_of_another_experiment_is_refused_before_it_writes_a_run()
    {
        using var dir = new TempDir();
        ShardRunner(Sweep(episodes: 10), dir.Path, 0, 2).Run(null, TestContext.Current.CancellationToken);
        var other = ShardRunner(Sweep(episodes: 12), dir.Path, 1, 2);
        var e = Assert.Throws<InvalidOperationException>(() => other.Run(null, TestContext.Current.CancellationToken));
        Assert.Contains("describes another experiment than shard 1/2's", e.Message, StringComparison.Ordinal);
        Assert.Contains("there is \"episodes = 10\", this shard's is \"episodes = 12\"", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "none", "seed-1")), "shard 1/2 ran nothing");
    }

    [Fact]
    public void A_config_never_started_is_named_with_every_seed()
    {
        using var dir = new TempDir();
        var experiment = Sweep(episodes: 5);
        new ExperimentRunner(experiment, dir.Path, ExperimentSupport.Maker).Run(null, TestContext.Current.CancellationToken);
        Directory.Delete(Path.Combine(dir.Path, "deny"), recursive: true);
        var analysis = RunAnalysis.Load(dir.Path);
        Assert.Equal(9, analysis.RunCount);
        Assert.Equal(["deny/0", "deny/1", "deny/2"], analysis.Incomplete.Select(r => $"{r.Config}/{r.Seed}"));
        Assert.All(analysis.Incomplete, r => Assert.Equal(("not started", (string?)null), (r.Status, r.Shard)));
    }

    [Fact]
    public async Task Of_writers_publishing_one_file_at_once_exactly_one_wins_and_the_others_see_its_bytes()
    {
        using var dir = new TempDir();
        string path = dir.File(RunFiles.ExperimentJson);
        for (int round = 0; round < 20; round++)
        {
            File.Delete(path);
            using var start = new Barrier(6);
            var writers = Enumerable.Range(0, 6).Select(i => Task.Factory.StartNew(() =>
            {
                start.SignalAndWait(TestContext.Current.CancellationToken);
                return RunFiles.PublishOnce(path, $"writer {i}\n" + new string('x', 100_000));
            }, TestContext.Current.CancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
            var seen = await Task.WhenAll(writers);
            Assert.Equal(1, seen.Count(s => s is null));
            string published = File.ReadAllText(path);
            Assert.All(seen.Where(s => s is not null), s => Assert.Equal(published, s));
        }
        Assert.Equal([RunFiles.ExperimentJson], Directory.GetFiles(dir.Path).Select(Path.GetFileName)); // no temporary left
        Assert.Null(RunFiles.PublishOnce(path, File.ReadAllText(path))); // the same bytes again: nothing to do
    }

    [Fact]
    public void A_line_without_its_newline_is_not_read_and_an_empty_file_has_no_rows()
    {
        using var dir = new TempDir();
        string path = dir.File(RunFiles.Episodes);
        string row = RunFiles.Csv(new EpisodeRecord(0, 1.5, 2, 0.25, 0.25, 0, 1, 3, false, true, 4, 0.5));
        // A shard killed while writing: the last row is cut short.
        File.WriteAllText(path, $"{RunFiles.EpisodesHeader}\n{row}\n{row.Replace("0,", "1,", StringComparison.Ordinal)}\n{row[..7]}");
        Assert.Equal(2, RunFiles.ReadEpisodes(path).Count);
        File.WriteAllText(path, "");
        Assert.Empty(RunFiles.ReadEpisodes(path));
        File.WriteAllText(path, RunFiles.EpisodesHeader[..10]);
        Assert.Empty(RunFiles.ReadEpisodes(path));
    }

    [Fact]
    public void A_random_agent_resumed_from_its_save_draws_what_an_uninterrupted_one_draws()
    {
        using var dir = new TempDir();
        var observation = new float[3];
        using var first = AgentFactory.Create("random", 3, 9, seed: 5, new Dictionary<string, object>());
        for (int i = 0; i < 100; i++)
            first.Act(observation);
        first.Save(dir.Path);
        var expected = Enumerable.Range(0, 50).Select(_ => first.Act(observation)).ToList();
        using var resumed = AgentFactory.Create("random", 3, 9, seed: 5, new Dictionary<string, object>());
        resumed.Load(dir.Path);
        Assert.Equal(expected, Enumerable.Range(0, 50).Select(_ => resumed.Act(observation)));
    }
}
