using System.Text.Json.Nodes;
using Mis.Gym.Experiments;

namespace Mis.Gym.Tests.Experiments;

/// <summary>The runner: seeded reproducibility, resume after an interruption, isolation of a failing run.</summary>
public sealed class ExperimentRunnerTests
{
    private static readonly string[] RunFileNames = [RunFiles.Trajectory, RunFiles.TrajectoryJson, RunFiles.Episodes];

    private static Dictionary<string, string> Contents(string runDir) =>
        Directory.GetFiles(runDir, "*.*", SearchOption.AllDirectories)
            .Where(f => RunFileNames.Contains(Path.GetFileName(f)))
            .ToDictionary(f => Path.GetRelativePath(runDir, f), File.ReadAllText);

    [Fact]
    public void A_run_is_determined_by_its_seed()
    {
        using var dir = new TempDir();
        var experiment = ExperimentSupport.Parse(ExperimentSupport.Text(episodes: 30, seeds: "[7, 8]", extra: "[sweep]\nfeedback = [\"none\", \"deny+slowdown+kill\"]"));
        new ExperimentRunner(experiment, dir.File("a"), ExperimentSupport.Maker).Run(null, TestContext.Current.CancellationToken);
        new ExperimentRunner(experiment, dir.File("b"), ExperimentSupport.Maker).Run(null, TestContext.Current.CancellationToken);
        var a = Contents(dir.File("a"));
        var b = Contents(dir.File("b"));
        Assert.Equal(2 * 2 * 3, a.Count);
        Assert.Equal(a, b);
        // And the seed matters: the two seeds' trajectories differ.
        Assert.NotEqual(a[Path.Combine("none", "seed-7", RunFiles.Trajectory)], a[Path.Combine("none", "seed-8", RunFiles.Trajectory)]);
    }

    [Fact]
    public void Every_step_and_episode_is_written_with_consistent_totals()
    {
        using var dir = new TempDir();
        var experiment = ExperimentSupport.Parse(ExperimentSupport.Text(episodes: 25, seeds: "1"));
        var outcome = Assert.Single(new ExperimentRunner(experiment, dir.Path, ExperimentSupport.Maker).Run(null, TestContext.Current.CancellationToken));
        Assert.Equal(RunStatus.Completed, outcome.Status);
        var episodes = RunFiles.ReadEpisodes(Path.Combine(outcome.Directory, RunFiles.Episodes));
        Assert.Equal(Enumerable.Range(0, 25), episodes.Select(e => e.Episode));
        var steps = File.ReadAllLines(Path.Combine(outcome.Directory, RunFiles.Trajectory)).Skip(1).Select(l => l.Split(',')).ToList();
        Assert.Equal(episodes.Sum(e => e.Steps), steps.Count);
        Assert.Equal(steps.Count, File.ReadAllLines(Path.Combine(outcome.Directory, RunFiles.TrajectoryJson)).Length);
        foreach (var e in episodes)
        {
            var own = steps.Where(s => s[0] == e.Episode.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(e.Return, own.Sum(s => double.Parse(s[5], System.Globalization.CultureInfo.InvariantCulture)), 9);
            Assert.Equal(e.Violations, own.Sum(s => int.Parse(s[12], System.Globalization.CultureInfo.InvariantCulture)));
            Assert.Equal(e.Return, e.Task - e.Slowdown - e.Denial - e.Kill, 9);
            Assert.True(own[^1][15] == "1" || own[^1][16] == "1", "the last step of an episode ends it");
        }
        var status = RunFiles.ReadJson(Path.Combine(outcome.Directory, RunFiles.Status))!;
        Assert.Equal("complete", status["status"]!.GetValue<string>());
    }

    [Fact]
    public void An_interrupted_run_resumes_to_exactly_the_uninterrupted_result()
    {
        using var dir = new TempDir();
        var experiment = ExperimentSupport.Parse(ExperimentSupport.Text(algorithm: "counting", episodes: 40, seeds: "2", checkpointEvery: 7,
            extra: "[sweep]\nfeedback = [\"deny\", \"deny+slowdown+kill\"]"));
        new ExperimentRunner(experiment, dir.File("whole"), ExperimentSupport.Maker).Run(null, TestContext.Current.CancellationToken);

        // Interrupt in the middle of the second config's first seed (episode 100 of 160).
        using var cancel = new CancellationTokenSource();
        var runner = new ExperimentRunner(experiment, dir.File("resumed"), ExperimentSupport.Maker);
        Assert.ThrowsAny<OperationCanceledException>(() => runner.Run(p =>
        {
            if (p.Done >= 100)
                cancel.Cancel();
        }, cancel.Token));
        var partial = RunFiles.ReadEpisodes(Path.Combine(dir.File("resumed"), "deny+slowdown+kill", "seed-0", RunFiles.Episodes));
        Assert.Equal(20, partial.Count); // finished episodes were kept
        Assert.Equal("interrupted", RunFiles.ReadJson(Path.Combine(dir.File("resumed"), "deny+slowdown+kill", "seed-0", RunFiles.Status))!["status"]!.GetValue<string>());

        long startedAt = -1;
        var outcomes = runner.Run(p => startedAt = startedAt < 0 ? p.Done : startedAt, TestContext.Current.CancellationToken);
        Assert.Equal(100, startedAt);
        Assert.Equal([RunStatus.Skipped, RunStatus.Skipped, RunStatus.Completed, RunStatus.Completed], outcomes.Select(o => o.Status));
        Assert.Equal(20, outcomes[2].ResumedFrom);
        Assert.Equal(Contents(dir.File("whole")), Contents(dir.File("resumed")));
    }

    [Fact]
    public void What_a_crash_wrote_after_the_last_checkpoint_is_cut_back_and_redone()
    {
        using var dir = new TempDir();
        var experiment = ExperimentSupport.Parse(ExperimentSupport.Text(algorithm: "counting", episodes: 30, seeds: "1", checkpointEvery: 10));
        new ExperimentRunner(experiment, dir.File("whole"), ExperimentSupport.Maker).Run(null, TestContext.Current.CancellationToken);

        using var cancel = new CancellationTokenSource();
        var runner = new ExperimentRunner(experiment, dir.File("crashed"), ExperimentSupport.Maker);
        Assert.ThrowsAny<OperationCanceledException>(() => runner.Run(p =>
        {
            if (p.Done >= 20)
                cancel.Cancel();
        }, cancel.Token));
        // A crash leaves what was written after the checkpoint: a torn line in every file.
        string seedDir = Path.Combine(dir.File("crashed"), "default", "seed-0");
        foreach (var name in RunFileNames)
            File.AppendAllText(Path.Combine(seedDir, name), "20,3,1,torn");
        runner.Run(null, TestContext.Current.CancellationToken);
        Assert.Equal(Contents(dir.File("whole")), Contents(dir.File("crashed")));
    }

    [Fact]
    public void A_failing_run_is_recorded_and_the_others_complete()
    {
        using var dir = new TempDir();
        var experiment = ExperimentSupport.Parse(ExperimentSupport.Text(episodes: 10, seeds: "3"));
        var outcomes = new ExperimentRunner(experiment, dir.Path, (algorithm, obs, actions, seed, hp) =>
            seed == 1 ? new ThrowingAgent() : ExperimentSupport.Maker(algorithm, obs, actions, seed, hp)).Run(null, TestContext.Current.CancellationToken);
        Assert.Equal([RunStatus.Completed, RunStatus.Failed, RunStatus.Completed], outcomes.Select(o => o.Status));
        Assert.Contains("the agent broke", outcomes[1].Error);
        var status = RunFiles.ReadJson(Path.Combine(outcomes[1].Directory, RunFiles.Status))!;
        Assert.Equal("failed", status["status"]!.GetValue<string>());
        Assert.Contains("the agent broke", status["error"]!.GetValue<string>());
        Assert.Equal(10, RunFiles.ReadEpisodes(Path.Combine(outcomes[2].Directory, RunFiles.Episodes)).Count);

        // A rerun retries the failed one (here successfully) and skips the rest.
        var rerun = new ExperimentRunner(experiment, dir.Path, ExperimentSupport.Maker).Run(null, TestContext.Current.CancellationToken);
        Assert.Equal([RunStatus.Skipped, RunStatus.Completed, RunStatus.Skipped], rerun.Select(o => o.Status));
    }

    [Fact]
    public void A_directory_holding_another_configuration_is_not_resumed_into()
    {
        using var dir = new TempDir();
        new ExperimentRunner(ExperimentSupport.Parse(ExperimentSupport.Text(algorithm: "scripted", agentExtra: "stop_after = 2")), dir.Path, ExperimentSupport.Maker)
            .Run(null, TestContext.Current.CancellationToken);
        // More episodes extend the same configuration...
        new ExperimentRunner(ExperimentSupport.Parse(ExperimentSupport.Text(algorithm: "scripted", episodes: 20, agentExtra: "stop_after = 2")), dir.Path, ExperimentSupport.Maker)
            .Run(null, TestContext.Current.CancellationToken);
        Assert.Equal(20, RunFiles.ReadEpisodes(Path.Combine(dir.Path, "default", "seed-0", RunFiles.Episodes)).Count);
        // ...another hyperparameter is another configuration.
        var other = new ExperimentRunner(ExperimentSupport.Parse(ExperimentSupport.Text(algorithm: "scripted", agentExtra: "stop_after = 3")), dir.Path, ExperimentSupport.Maker);
        var e = Assert.Throws<InvalidOperationException>(() => other.Run(null, TestContext.Current.CancellationToken));
        Assert.Contains("another configuration", e.Message);
        Assert.Contains("stop_after", e.Message);
    }

    [Fact]
    public void Episode_seeds_differ_across_seeds_and_episodes()
    {
        var seeds = new HashSet<int>();
        for (int seed = 0; seed < 20; seed++)
            for (int episode = 0; episode < 200; episode++)
                Assert.True(seeds.Add(ExperimentRunner.EpisodeSeed(seed, episode)));
        Assert.All(seeds, s => Assert.True(s >= 0));
    }

    private sealed class ThrowingAgent : Mis.Gym.Agents.IAgent
    {
        private int _steps;

        public string Algorithm => "throwing";

        public int Act(float[] observation) => 0;

        public int ActGreedy(float[] observation) => 0;

        public void Observe(in Mis.Gym.Agents.Transition transition)
        {
            if (++_steps == 5)
                throw new InvalidOperationException("the agent broke");
        }

        public void Save(string directory)
        {
        }

        public void Load(string directory)
        {
        }

        public void Dispose()
        {
        }
    }
}
