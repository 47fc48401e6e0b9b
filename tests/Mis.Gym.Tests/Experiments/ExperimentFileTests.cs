using Mis.Enforcer.Configuration;
using Mis.Gym.Envs;
using Mis.Gym.Experiments;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Tests.Experiments;

/// <summary>Experiment files: what they say, and errors that name file, line and key.</summary>
public sealed class ExperimentFileTests
{
    [Fact]
    public void The_flagship_sweeps_the_four_feedback_modes_with_at_least_five_seeds()
    {
        var experiment = ExperimentFile.Load(Path.Combine(Support.RepoRoot, "experiments", "feedback-modes.toml"));
        Assert.Equal("feedback-modes", experiment.Name);
        Assert.True(experiment.Seeds.Count >= 5);
        Assert.Equal(["feedback"], experiment.SweepKeys);
        // The four modes of the policy's response; anomaly-kill is the anomaly-kill experiment's.
        Assert.Equal(FeedbackModes.Words.Take(4), experiment.Configs.Select(c => c.Label));
        Assert.Equal(Enum.GetValues<FeedbackMode>().Take(4), experiment.Configs.Select(c => c.Feedback));
        Assert.All(experiment.Configs, c => Assert.Equal("privileged-tool", c.Scenario.Name));
        Assert.Contains("slowdown", experiment.Question);
    }

    [Fact]
    public void Every_shipped_experiment_loads()
    {
        foreach (var file in Directory.GetFiles(Path.Combine(Support.RepoRoot, "experiments"), "*.toml"))
            Assert.NotEmpty(ExperimentFile.Load(file).Configs);
    }

    [Fact]
    public void A_sweep_is_the_grid_of_its_keys_in_file_order_with_the_last_varying_fastest()
    {
        var experiment = ExperimentSupport.Parse(ExperimentSupport.Text(seeds: "[3, 1, 4]", extra: """
            [sweep]
            feedback = ["deny", "none"]
            episodes = [5, 7, 9]
            """));
        Assert.Equal([3, 1, 4], experiment.Seeds);
        Assert.Equal(["feedback", "episodes"], experiment.SweepKeys);
        Assert.Equal(6, experiment.Configs.Count);
        Assert.Equal(["feedback=deny, episodes=5", "feedback=deny, episodes=7", "feedback=deny, episodes=9",
                      "feedback=none, episodes=5", "feedback=none, episodes=7", "feedback=none, episodes=9"],
                     experiment.Configs.Select(c => c.Label));
        Assert.Equal("feedback=deny__episodes=7", experiment.Configs[1].DirectoryName);
        Assert.Equal([FeedbackMode.Deny, FeedbackMode.Deny, FeedbackMode.Deny, FeedbackMode.None, FeedbackMode.None, FeedbackMode.None],
                     experiment.Configs.Select(c => c.Feedback));
        Assert.Equal([5, 7, 9, 5, 7, 9], experiment.Configs.Select(c => c.Episodes));
        Assert.Equal((5 + 7 + 9) * 2 * 3, experiment.TotalEpisodes);
    }

    [Fact]
    public void Agent_keys_are_hyperparameters_and_can_be_swept()
    {
        var experiment = ExperimentSupport.Parse(ExperimentSupport.Text(algorithm: "scripted", agentExtra: "stop_after = 3", extra: """
            [sweep]
            "agent.stop_after" = [1, 2]
            """));
        Assert.Equal([1L, 2L], experiment.Configs.Select(c => c.Hyperparameters["stop_after"]));
        Assert.Equal(["1", "2"], experiment.Configs.Select(c => c.Label));
        Assert.All(experiment.Configs, c => Assert.Equal(FeedbackMode.DenySlowdownKill, c.Feedback));
    }

    [Fact]
    public void Without_a_sweep_there_is_one_default_config()
    {
        var config = Assert.Single(ExperimentSupport.Parse(ExperimentSupport.Text(seeds: "3")).Configs);
        Assert.Equal("default", config.Label);
        Assert.Equal("sim", config.Backend);
        Assert.Equal("random", config.Algorithm);
        Assert.Empty(config.Hyperparameters);
    }

    [Theory]
    [InlineData("[experiment]\nname = \"x\"\nepisodez = 3\n", 3, "experiment.episodez", "did you mean 'episodes'")]
    [InlineData("[experiments]\n", 1, "experiments", "did you mean 'experiment'")]
    [InlineData("name = \"x\"\n", 1, "name", "outside any table")]
    public void Unknown_keys_and_tables_are_errors_with_a_suggestion(string text, int line, string key, string message)
    {
        var e = Assert.Throws<ConfigException>(() => ExperimentSupport.Parse(text));
        Assert.Equal(line, e.Line);
        Assert.Equal(key, e.Key);
        Assert.Contains(message, e.Message);
        Assert.Contains("exp.toml:" + line, e.Message);
    }

    [Fact]
    public void A_bad_hyperparameter_is_reported_at_its_line()
    {
        string text = ExperimentSupport.Text(agentExtra: "learning_rate = 0.1");
        int line = text.Split('\n').ToList().FindIndex(l => l.Contains("learning_rate", StringComparison.Ordinal)) + 1;
        var e = Assert.Throws<ConfigException>(() => ExperimentSupport.Parse(text));
        Assert.Equal(line, e.Line);
        Assert.Equal("agent.learning_rate", e.Key);
        Assert.Contains("learning_rate", e.Detail);
    }

    [Fact]
    public void An_unknown_algorithm_is_reported_at_the_algorithm()
    {
        var e = Assert.Throws<ConfigException>(() => ExperimentSupport.Parse(ExperimentSupport.Text(algorithm: "sarsa")));
        Assert.Equal("agent.algorithm", e.Key);
        Assert.Contains("sarsa", e.Detail);
    }

    [Theory]
    [InlineData("[sweep]\nseeds = [1, 2]\n", "sweep.seeds", "cannot be swept")]
    [InlineData("[sweep]\nfeedback = \"deny\"\n", "sweep.feedback", "expected an array")]
    [InlineData("[sweep]\nfeedback = []\n", "sweep.feedback", "empty")]
    [InlineData("[sweep]\nfeedback = [\"deny\", \"deny\"]\n", "sweep.feedback", "already in the list")]
    [InlineData("[sweep]\nfeedback = [\"deny\", \"slowdown\"]\n", "sweep.feedback", "expected one of: none, deny")]
    [InlineData("[sweep]\nbackend = [\"sim\", \"gpu\"]\n", "sweep.backend", "expected one of: sim, kernel")]
    [InlineData("[report]\nwindow = 0\n", "report.window", "")]
    [InlineData("[sweep]\nfeedback = [\"none\", \"anomaly-kill\"]\n", "sweep.feedback", "anomaly-kill needs an anomaly model: add an [anomaly] table")]
    [InlineData("[anomaly]\nalgo = \"ngram\"\n", "anomaly.model", "missing")]
    [InlineData("[anomaly]\nmodel = \"train\"\nalgo = \"svm\"\n", "anomaly.algo", "expected one of: ngram, lm, pca, lstm, ensemble")]
    [InlineData("[anomaly]\nmodel = \"nope.model\"\n", "anomaly.model", "model file \"nope.model\" not found")]
    [InlineData("[anomaly]\nmodel = \"train\"\ncollect_episodes = 1\n", "anomaly.collect_episodes", "")]
    [InlineData("[anomaly]\nmodel = \"train\"\nthreshold = 1001\n", "anomaly.threshold", "")]
    [InlineData("[anomaly]\nmodel = \"train\"\nrecord = true\n", "anomaly.record", "expected one of: model, collect_episodes")]
    public void Bad_sweeps_and_settings_name_the_key(string extra, string key, string message)
    {
        var e = Assert.Throws<ConfigException>(() => ExperimentSupport.Parse(ExperimentSupport.Text(extra: extra)));
        Assert.Equal(key, e.Key);
        Assert.Contains(message, e.Detail);
        Assert.True(e.Line > 0);
    }

    [Fact]
    public void The_anomaly_kill_experiment_trains_its_own_scorer_and_sweeps_it_against_the_policy()
    {
        var experiment = ExperimentFile.Load(Path.Combine(Support.RepoRoot, "experiments", "anomaly-kill.toml"));
        Assert.Equal([FeedbackMode.None, FeedbackMode.DenySlowdownKill, FeedbackMode.AnomalyKill], experiment.Configs.Select(c => c.Feedback));
        var anomaly = Assert.IsType<ExperimentAnomaly>(experiment.Anomaly);
        Assert.True(anomaly.TrainsHere);
        Assert.Equal(("ngram", 800, 0.01), (anomaly.Algo, anomaly.Threshold, anomaly.FalseAlarmRate));
        Assert.All(experiment.Configs, c => Assert.Equal(("interpreter-shortcut", MisGym.Sim), (c.Scenario.Name, c.Backend)));
    }

    [Fact]
    public void An_anomaly_table_without_algo_trains_the_ensemble_as_mis_anomaly_train_does()
    {
        var anomaly = ExperimentSupport.Parse(ExperimentSupport.Text(extra: "[anomaly]\nmodel = \"train\"\n")).Anomaly!;
        Assert.Equal("ensemble", anomaly.Algo);
    }

    [Fact]
    public void A_missing_scenario_names_the_path_it_looked_at()
    {
        var e = Assert.Throws<ConfigException>(() => ExperimentSupport.Parse(
            "[experiment]\nscenario = \"scenarios/nope.toml\"\nepisodes = 3\nseeds = 1\n[agent]\nalgorithm = \"random\"\n", "/tmp/x/exp.toml"));
        Assert.Equal(2, e.Line);
        Assert.Equal("experiment.scenario", e.Key);
        Assert.Contains("/tmp/x/scenarios/nope.toml", e.Detail);
    }

    [Theory]
    [InlineData("seeds = 0", "out of range")]
    [InlineData("seeds = [1, 1]", "already in the list")]
    [InlineData("seeds = \"5\"", "a count")]
    public void Bad_seeds_are_errors(string seeds, string message)
    {
        var text = ExperimentSupport.Text().Replace("seeds = 2", seeds, StringComparison.Ordinal);
        var e = Assert.Throws<ConfigException>(() => ExperimentSupport.Parse(text));
        Assert.Equal("experiment.seeds", e.Key);
        Assert.Contains(message, e.Message);
    }
}
