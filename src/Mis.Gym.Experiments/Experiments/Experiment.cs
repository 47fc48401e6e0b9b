using System.Globalization;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Experiments;

/// <summary>One point of an experiment's sweep grid: everything a run needs except its seed.</summary>
public sealed record ExperimentConfig
{
    /// <summary>For people and directory names: the swept values (<c>deny+slowdown</c>; <c>feedback=deny, agent.lr=0.001</c>), or <c>default</c> without a sweep.</summary>
    public required string Label { get; init; }

    /// <summary>The run directory's name for this config (the label made safe for a path).</summary>
    public required string DirectoryName { get; init; }

    /// <summary>The scenario file, as resolved against the experiment file.</summary>
    public required string ScenarioPath { get; init; }

    /// <summary>The parsed scenario (before the feedback mode is applied).</summary>
    public required ActionScenario Scenario { get; init; }

    /// <summary><c>sim</c> or <c>kernel</c>.</summary>
    public required string Backend { get; init; }

    /// <summary>How much of the enforcer's response the workload feels.</summary>
    public required FeedbackMode Feedback { get; init; }

    /// <summary>The agent's algorithm, as <see cref="Agents.AgentFactory"/> names it.</summary>
    public required string Algorithm { get; init; }

    /// <summary>Hyperparameters for the agent (TOML values: long, double, bool, string).</summary>
    public required IReadOnlyDictionary<string, object> Hyperparameters { get; init; }

    /// <summary>Training episodes per seed.</summary>
    public required int Episodes { get; init; }

    /// <summary>The swept keys and their values for this point, in file order (empty without a sweep).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> SweepValues { get; init; } = [];
}

/// <summary>What the report computes (<c>[report]</c>).</summary>
public sealed record ReportSettings
{
    /// <summary><c>violation_threshold</c>: "stopped violating" means the moving average of violations per episode fell below this. Default 0.5.</summary>
    public double ViolationThreshold { get; init; } = 0.5;

    /// <summary><c>window</c>: episodes in the moving averages of the learning curves. Default 20.</summary>
    public int Window { get; init; } = 20;

    /// <summary><c>final_fraction</c>: the share of last episodes whose mean is the "final" figure (success rate, return). Default 0.1.</summary>
    public double FinalFraction { get; init; } = 0.1;
}

/// <summary>
/// An experiment's anomaly scorer (<c>[anomaly]</c>): the model its learning-mode configs are scored
/// by (live; <c>anomaly-kill</c> configs are killed by it), trained by the experiment itself from
/// normal behaviour it collects first, or a model file.
/// </summary>
public sealed record ExperimentAnomaly
{
    /// <summary>The <c>model</c> that means: collect normal behaviour, then train on it, before the configs run.</summary>
    public const string TrainHere = "train";

    /// <summary>The anomaly models <c>algo</c> names (Mis.Anomaly's; a test holds the two lists equal).</summary>
    public static readonly string[] Algorithms = ["ngram", "lm", "pca", "lstm", "ensemble"];

    /// <summary><see cref="TrainHere"/>, or a model file's full path.</summary>
    public required string Model { get; init; }

    /// <summary>Whether the experiment trains its own model (<see cref="TrainHere"/>).</summary>
    public bool TrainsHere => Model == TrainHere;

    /// <summary><c>collect_episodes</c>: per seed, learning-mode episodes of a random agent that takes only the actions the policy allows, traces recorded: the normal behaviour. Default 100.</summary>
    public int CollectEpisodes { get; init; } = 100;

    /// <summary><c>algo</c>: the model trained (<see cref="Algorithms"/>). Default ensemble, as <c>mis anomaly train</c>'s.</summary>
    public string Algo { get; init; } = "ensemble";

    /// <summary><c>false_alarm_rate</c>: the share of unseen normal traces calibrated to score above 800 (see Mis.Anomaly's cross-fitted calibration). Default 0.01.</summary>
    public double FalseAlarmRate { get; init; } = 0.01;

    /// <summary><c>seed</c>: the training's seed (split and model). Default 1.</summary>
    public int Seed { get; init; } = 1;

    /// <summary><c>threshold</c>: a window scoring above it is anomalous (anomaly-kill kills). Default 800.</summary>
    public int Threshold { get; init; } = 800;

    /// <summary><c>record_traces</c>: also record every learning-mode training episode's traces in its seed directory. Default false.</summary>
    public bool RecordTraces { get; init; }
}

/// <summary>A parsed experiment file (format in <see cref="ExperimentFile"/>): a grid of configs, each run once per seed.</summary>
public sealed record Experiment
{
    /// <summary>Name (default: the file name without extension); the default run directory is <c>runs/NAME</c>.</summary>
    public required string Name { get; init; }

    /// <summary>The file it was read from.</summary>
    public required string File { get; init; }

    /// <summary>The file's text, copied into the run directory.</summary>
    public required string Text { get; init; }

    /// <summary>Free text for people.</summary>
    public string Description { get; init; } = "";

    /// <summary>The question the experiment answers, for the report.</summary>
    public string Question { get; init; } = "";

    /// <summary>The seeds each config runs with.</summary>
    public required IReadOnlyList<int> Seeds { get; init; }

    /// <summary><c>checkpoint_every</c>: episodes between checkpoints (agent saved, files marked). Default 25.</summary>
    public int CheckpointEvery { get; init; } = 25;

    /// <summary>The sweep's keys, in file order (empty without a sweep).</summary>
    public IReadOnlyList<string> SweepKeys { get; init; } = [];

    /// <summary>The grid: every combination of the swept values, in file order (the last key varies fastest).</summary>
    public required IReadOnlyList<ExperimentConfig> Configs { get; init; }

    /// <summary>Report settings.</summary>
    public ReportSettings Report { get; init; } = new();

    /// <summary>The anomaly scorer (<c>[anomaly]</c>), or null.</summary>
    public ExperimentAnomaly? Anomaly { get; init; }

    /// <summary>
    /// Every (config, seed) run in the experiment's fixed order: config by config in grid order,
    /// each config's seeds in file order. The runner runs them in this order and a
    /// <see cref="Shard"/> takes its share of them by position.
    /// </summary>
    public IReadOnlyList<(ExperimentConfig Config, int Seed)> Runs => Configs.SelectMany(c => Seeds.Select(s => (c, s))).ToList();

    /// <summary>The total number of training episodes over every config and seed.</summary>
    public long TotalEpisodes => Configs.Sum(c => (long)c.Episodes) * Seeds.Count;

    /// <summary>The experiment with every config's episode count replaced (the command line's <c>--episodes</c>).</summary>
    public Experiment WithEpisodes(int episodes) => this with { Configs = Configs.Select(c => c with { Episodes = episodes }).ToList() };

    /// <summary>The experiment with seeds 0..<paramref name="count"/>-1 (the command line's <c>--seeds</c>).</summary>
    public Experiment WithSeedCount(int count) => this with { Seeds = Enumerable.Range(0, count).ToList() };

    /// <summary>The experiment on another backend (quickstart: the kernel where the host allows it).</summary>
    public Experiment WithBackend(string backend) => this with { Configs = Configs.Select(c => c with { Backend = backend }).ToList() };
}

/// <summary>Formatting shared by the experiment files and run files.</summary>
public static class ExperimentText
{
    /// <summary>A TOML value as text: numbers invariant and round-trippable, booleans lower case.</summary>
    internal static string Format(object value) => value switch
    {
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        long l => l.ToString(CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        _ => value.ToString() ?? "",
    };

    /// <summary>A label turned into a directory name: letters, digits and <c>.+=-_</c> kept, the rest <c>_</c>.</summary>
    internal static string SafeName(string label)
    {
        var chars = label.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '+' or '=' or '-' or '_' ? c : '_').ToArray();
        var name = new string(chars);
        return name.Length == 0 || name is "." or ".." ? "_" : name;
    }
}
