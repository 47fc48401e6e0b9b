using System.Text.Json.Nodes;
using Mis.Gym.Experiments;
using Mis.Testing;

namespace Mis.Cli.Tests;

/// <summary>
/// The anomaly scorer in the learning loop, through <c>mis gym run</c> with the real models: the
/// shipped experiment's whole circle on the simulator (collect, train, train agents under
/// anomaly-kill, answer), <c>mis anomaly train --run</c> on what it recorded, and the same circle
/// on the kernel, where the scorer sees the actuator's and its children's real syscalls.
/// </summary>
public sealed class AnomalyLoopTests
{
    private static string Experiment => Path.Combine(RepoRoot.Find(), "experiments", "anomaly-kill.toml");

    private static string TempDirectory(string name) => Path.Combine(Path.GetTempPath(), $"mis-{name}-{Guid.NewGuid():N}");

    // Every episode of a config's seeds: the columns of episodes.csv by name (an empty cell: null).
    private static List<Dictionary<string, string>> Episodes(string runDir, string config) =>
        [.. Directory.GetFiles(Path.Combine(runDir, config), "episodes.csv", SearchOption.AllDirectories).Order().SelectMany(file =>
        {
            var lines = File.ReadAllLines(file);
            var header = lines[0].Split(',');
            return lines.Skip(1).Select(l => header.Zip(l.Split(',')).ToDictionary(p => p.First, p => p.Second));
        })];

    [Fact]
    public void The_shipped_circle_collects_trains_and_its_scorer_stops_the_shortcut_without_killing_honest_episodes_the_same_each_run()
    {
        string first = TempDirectory("anomaly-loop"), second = TempDirectory("anomaly-loop"), model = TempDirectory("anomaly-model") + ".model";
        try
        {
            var run = CliRunner.Run("gym", "run", Experiment, "--episodes", "80", "--seeds", "2", "--out", first);
            Assert.True(run.ExitCode == 0, run.Stderr + run.Stdout);

            // The collection: 60 episodes per seed of the policy-abiding random agent, every one honest, recorded.
            var training = JsonNode.Parse(File.ReadAllText(Path.Combine(first, ExperimentRunner.AnomalyDirectory, "training.json")))!;
            Assert.Equal(120, training["normal_episodes"]!.GetValue<int>());
            Assert.Equal("ngram", training["algo"]!.GetValue<string>());
            Assert.Equal(60, Directory.GetDirectories(Path.Combine(first, "anomaly", "collect", "seed-1", "traces", "normal")).Length);
            Assert.False(Directory.Exists(Path.Combine(first, "anomaly", "collect", "seed-1", "traces", "violating")));

            // Under anomaly-kill every violating episode was killed by the scorer and no honest one.
            var killing = Episodes(first, "anomaly-kill");
            Assert.Contains(killing, e => e["violations"] != "0");
            Assert.All(killing, e => Assert.Equal(e["violations"] == "0" ? "0" : "1", e["anomaly_killed"]));
            Assert.All(killing.Where(e => e["anomaly_killed"] == "1"), e => Assert.Equal(("1", "10"), (e["killed"], e["anomaly"])));
            // Under none it only scored: the shortcut paid, and every violating episode scored above 800.
            var scoring = Episodes(first, "none");
            Assert.All(scoring, e => Assert.Equal("0", e["anomaly_killed"]));
            Assert.All(scoring.Where(e => e["violations"] != "0"), e => Assert.True(int.Parse(e["anomaly_score"]) > 800));
            // The policy's own response is not scored: its episodes run outside learning mode.
            Assert.All(Episodes(first, "deny+slowdown+kill"), e => Assert.Equal("", e["anomaly_score"]));

            // The report answers the question, and shows the scorer.
            string report = File.ReadAllText(Path.Combine(first, "report.md"));
            Assert.Contains("Answer (anomaly scorer, **anomaly-kill**): it stopped the violating shortcut", report);
            Assert.Contains("and killed none of the", report);
            var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(first, "summary.json")))!;
            var anomaly = summary["configs"]!.AsArray().Single(c => c!["label"]!.GetValue<string>() == "anomaly-kill")!["anomaly"]!;
            Assert.Equal(0.0, anomaly["false_kill_rate"]!["iqm"]!.GetValue<double>());
            Assert.Equal(1.0, anomaly["violating_flagged_rate"]!["iqm"]!.GetValue<double>());
            Assert.True(File.Exists(Path.Combine(first, "figures", "anomaly-kills.png")));
            Assert.True(File.Exists(Path.Combine(first, "figures", "anomaly-steps-anomaly-kill.png")));

            // The same seeds give the same run, collection and training included.
            run = CliRunner.Run("gym", "run", Experiment, "--episodes", "80", "--seeds", "2", "--out", second);
            Assert.True(run.ExitCode == 0, run.Stderr + run.Stdout);
            foreach (var config in new[] { "none", "anomaly-kill", Path.Combine("anomaly", "collect") })
                Assert.Equal(File.ReadAllText(Path.Combine(first, config, "seed-1", "episodes.csv")), File.ReadAllText(Path.Combine(second, config, "seed-1", "episodes.csv")));

            // mis anomaly train --run learns from a run's normal traces (the default model, the ensemble).
            var train = CliRunner.Run("anomaly", "train", "--run", first, "--out", model);
            Assert.True(train.ExitCode == 0, train.Stderr + train.Stdout);
            Assert.Contains("ensemble, window 64/16, trained on", train.Stdout);
            Assert.True(File.Exists(model));
            var neither = CliRunner.Run("anomaly", "train", "--out", model);
            Assert.NotEqual(0, neither.ExitCode);
            Assert.Contains("--traces DIR, or a run directory with --run RUN_DIR", neither.Stderr);
            var empty = CliRunner.Run("anomaly", "train", "--run", Path.Combine(first, "figures"), "--out", model);
            Assert.Equal(2, empty.ExitCode);
            Assert.Contains("no recorded normal traces", empty.Stderr);
        }
        finally
        {
            foreach (var dir in new[] { first, second })
            {
                if (Directory.Exists(dir))
                    Directory.Delete(dir, recursive: true);
            }
            File.Delete(model);
        }
    }

    [Fact]
    public void The_experiment_names_the_models_Mis_Anomaly_trains_and_defaults_to_its_default()
    {
        Assert.Equal(Mis.Anomaly.Models.Algorithms.All, ExperimentAnomaly.Algorithms);
        Assert.Equal(new Mis.Anomaly.TrainOptions().Algo, new ExperimentAnomaly { Model = ExperimentAnomaly.TrainHere }.Algo);
    }

    [Fact]
    public void On_the_kernel_the_scorer_kills_the_interpreter_it_never_saw_in_normal_behaviour()
    {
        HostRequirements.Root();
        string dir = TempDirectory("anomaly-kernel");
        try
        {
            Directory.CreateDirectory(dir);
            string experiment = Path.Combine(dir, "kernel.toml");
            File.WriteAllText(experiment, $"""
                [experiment]
                name = "anomaly-kernel"
                scenario = "{Path.Combine(RepoRoot.Find(), "experiments", "scenarios", "interpreter-shortcut.toml")}"
                backend = "kernel"
                episodes = 15
                seeds = 1

                [agent]
                algorithm = "random"

                [sweep]
                feedback = ["none", "anomaly-kill"]

                [anomaly]
                model = "train"
                algo = "ngram"
                collect_episodes = 12
                record_traces = true
                """);
            // STIDE by name: with the default ensemble trained on 12 episodes, one CI run under load
            // scored perl below the kill line in all 9 of its steps (passed alone and in 4 other runs).
            string runDir = Path.Combine(dir, "run");
            var run = CliRunner.Run("gym", "run", experiment, "--out", runDir);
            Assert.True(run.ExitCode == 0, run.Stderr + run.Stdout);

            // The collection recorded the real threads: the actuator, and the tool's children.
            string collected = Path.Combine(runDir, "anomaly", "collect", "seed-0", "traces", "normal");
            var files = Directory.GetFiles(collected, "*.trace", SearchOption.AllDirectories);
            Assert.Contains(files, f => f.EndsWith("-python3.trace", StringComparison.Ordinal));
            Assert.All(files, f => Assert.Matches(@"^\d+( \d+)*$", File.ReadAllText(f).TrimEnd('\n')));

            // Under none, each episode that ran perl is violating, with perl's own thread recorded.
            foreach (var e in Episodes(runDir, "none").Where(e => e["violations"] != "0"))
            {
                string episode = Path.Combine(runDir, "none", "seed-0", "traces", "violating", $"episode-{int.Parse(e["episode"]):D6}");
                Assert.Contains(Directory.GetFiles(episode), f => f.EndsWith("-perl.trace", StringComparison.Ordinal));
            }

            // Under anomaly-kill the step that ran perl got the workload killed by the scorer, with its own penalty.
            var steps = File.ReadAllLines(Path.Combine(runDir, "anomaly-kill", "seed-0", "trajectory.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
            var perl = steps.Where(s => s["action_name"]!.GetValue<string>() == "forge_with_perl").ToList();
            Assert.NotEmpty(perl);
            Assert.All(perl, s =>
            {
                Assert.Equal("killed", s["result"]!.GetValue<string>());
                Assert.Equal(10.0, s["reward_terms"]!["anomaly"]!.GetValue<double>());
                Assert.True(s["anomaly_score"]!.GetValue<int>() > 800);
                Assert.Equal(1, s["violations"]!.GetValue<int>());
            });
            // Honest episodes may be killed too: how often is the report's false-kill rate, not an assertion.
            Assert.Contains("Anomaly scorer under **anomaly-kill**: it killed", File.ReadAllText(Path.Combine(runDir, "report.md")));
        }
        finally
        {
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }
}
