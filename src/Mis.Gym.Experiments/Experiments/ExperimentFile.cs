using Mis.Enforcer.Configuration;
using Mis.Gym.Agents;
using Mis.Gym.Envs;
using Mis.Gym.Scenarios;
using Tomlyn.Syntax;

namespace Mis.Gym.Experiments;

/// <summary>Makes an agent: <see cref="AgentFactory.Create"/>'s signature, so tests can plug in their own.</summary>
public delegate IAgent AgentMaker(string algorithm, int observationSize, int actionCount, int seed, IReadOnlyDictionary<string, object> hyperparameters);

/// <summary>
/// Reads an experiment file (<c>experiments/*.toml</c>; README "Experiments"):
/// <code>
/// [experiment]
/// name = "feedback-modes"             # default: the file name; runs go to runs/NAME
/// description = "..."
/// question = "..."                    # what the report answers
/// scenario = "scenarios/data-shortcut.toml"   # relative to this file
/// backend = "sim"                     # sim | kernel
/// feedback = "deny+slowdown+kill"     # none | deny | deny+slowdown | deny+slowdown+kill | anomaly-kill
/// episodes = 300                      # training episodes per (config, seed)
/// seeds = 5                           # seeds 0..4; or a list: [1, 7, 42]
/// checkpoint_every = 25               # episodes between checkpoints (resume point)
///
/// [agent]
/// algorithm = "ppo"                   # ppo | dqn | q | random
/// learning_rate = 0.0003              # every other key is a hyperparameter of the algorithm
///
/// [sweep]                             # a grid: every combination, each run with every seed
/// feedback = ["none", "deny", "deny+slowdown", "deny+slowdown+kill"]
/// "agent.learning_rate" = [0.001, 0.0003]   # scenario, backend, feedback, episodes, agent.KEY
///
/// [anomaly]                           # the anomaly scorer; needed by anomaly-kill, scores none (without killing)
/// model = "train"                     # "train": collect normal behaviour and train first; or a model file, relative to this file
/// collect_episodes = 100              # per seed: learning-mode episodes of a random agent taking only allowed actions
/// algo = "ensemble"                   # ensemble | ngram | lm | pca | lstm
/// false_alarm_rate = 0.01             # unseen normal traces above 800
/// threshold = 800                     # anomaly-kill kills above it
/// record_traces = false               # also record the learning-mode configs' traces (seed-N/traces/)
///
/// [report]
/// violation_threshold = 0.5           # "stopped violating": moving average below this
/// window = 20                         # episodes in moving averages
/// final_fraction = 0.1                # last share of episodes for final figures
/// </code>
/// Unknown tables and keys are errors (with a suggestion); every error is a
/// <see cref="ConfigException"/> naming file, line, column and key. The agent is made once per
/// distinct configuration while loading, so a bad hyperparameter fails here, at its line.
/// </summary>
public static class ExperimentFile
{
    private static readonly Dictionary<string, string[]> Keys = new()
    {
        ["experiment"] = ["name", "description", "question", "scenario", "backend", "feedback", "episodes", "seeds", "checkpoint_every"],
        ["report"] = ["violation_threshold", "window", "final_fraction"],
        ["anomaly"] = ["model", "collect_episodes", "algo", "false_alarm_rate", "seed", "threshold", "record_traces"],
    };

    private static readonly string[] Tables = ["experiment", "agent", "sweep", "report", "anomaly"];
    private static readonly string[] SweepableKeys = ["scenario", "backend", "feedback", "episodes", "agent.algorithm"];

    /// <summary>Loads and checks an experiment file.</summary>
    public static Experiment Load(string path, AgentMaker? makeAgent = null) =>
        Bind(TomlDocument.Load(path, "experiment file"), makeAgent);

    /// <summary>Parses experiment text; <paramref name="file"/> names it in errors and anchors relative scenario paths.</summary>
    internal static Experiment Parse(string text, string file, AgentMaker? makeAgent = null) =>
        Bind(TomlDocument.Parse(text, file), makeAgent);

    private static Experiment Bind(TomlDocument document, AgentMaker? makeAgent)
    {
        makeAgent ??= AgentFactory.Create;
        string file = document.File;
        document.RejectTopLevelKeys("put it under [experiment], [agent], [sweep] or [report]");

        var tables = new Dictionary<string, TomlTable>();
        foreach (var table in document.Tables)
        {
            string name = table.Name;
            if (Array.IndexOf(Tables, name) < 0)
                throw document.UnknownTable(table, Tables, "[experiment], [agent], [sweep], [report] or [anomaly]");
            table.ExpectArray(false);
            if (tables.TryGetValue(name, out var first))
                throw table.Error(name, $"[{name}] appears twice (first at line {first.Line})");
            tables[name] = table;
        }
        if (!tables.TryGetValue("experiment", out var experimentTable))
            throw new ConfigException(file, 1, 1, "experiment", "no [experiment] table; it names the scenario, the backend and the episodes");
        var head = experimentTable.Read(Keys["experiment"]);
        if (!tables.TryGetValue("agent", out var agentTable))
            throw new ConfigException(file, 1, 1, "agent", "no [agent] table; it names the algorithm (algorithm = \"ppo\", \"dqn\", \"q\" or \"random\")");
        var report = tables.TryGetValue("report", out var reportTable) ? ReportFrom(reportTable.Read(Keys["report"])) : new ReportSettings();
        var anomaly = tables.TryGetValue("anomaly", out var anomalyTable) ? AnomalyFrom(file, anomalyTable.Read(Keys["anomaly"])) : null;

        ConfigValue Required(string key) => head.Required(key);

        // The base settings: what every config has unless the sweep says otherwise.
        var settings = new Dictionary<string, ConfigValue>
        {
            ["scenario"] = Required("scenario"),
            ["episodes"] = Required("episodes"),
        };
        if (head.TryGetValue("backend", out var backend))
            settings["backend"] = backend;
        if (head.TryGetValue("feedback", out var feedback))
            settings["feedback"] = feedback;

        var agentValues = AgentValues(agentTable);
        if (!agentValues.ContainsKey("algorithm"))
            throw agentTable.Error("agent.algorithm", $"missing; [agent] needs algorithm ({string.Join(", ", AgentFactory.Algorithms)})");
        foreach (var (key, value) in agentValues)
            settings["agent." + key] = value;

        var sweep = tables.TryGetValue("sweep", out var sweepTable) ? SweepFrom(sweepTable) : [];
        var experiment = new Experiment
        {
            Name = head.Get("name", n => n.NonEmptyString(), Path.GetFileNameWithoutExtension(file)),
            File = file,
            Text = document.Text,
            Description = head.Get("description", d => d.String(), ""),
            Question = head.Get("question", q => q.String(), ""),
            Seeds = SeedsFrom(Required("seeds")),
            SweepKeys = sweep.Select(s => s.Key).ToList(),
            Configs = [],
            Report = report,
            Anomaly = anomaly,
        };
        if (head.TryGetValue("checkpoint_every", out var checkpointEvery))
            experiment = experiment with { CheckpointEvery = checkpointEvery.Int(1) };
        var configs = new List<ExperimentConfig>();
        var scenarios = new Dictionary<string, ActionScenario>();
        var checkedAgents = new HashSet<string>();
        foreach (var point in Grid(sweep))
        {
            var values = new Dictionary<string, ConfigValue>(settings);
            foreach (var (key, value) in point)
                values[key] = value;
            var config = ConfigFrom(file, values, point, scenarios, anomaly is not null);
            CheckAgent(config, values, checkedAgents, makeAgent);
            configs.Add(config);
        }
        var duplicate = configs.GroupBy(c => c.DirectoryName).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw sweepTable!.Error("sweep", $"two points of the grid share the directory name \"{duplicate.Key}\"; make the swept values distinct");
        return experiment with { Configs = configs };
    }

    // [agent]: algorithm plus any hyperparameter; a value is a TOML scalar.
    private static Dictionary<string, ConfigValue> AgentValues(TomlTable table)
    {
        var document = table.Document;
        var values = new Dictionary<string, ConfigValue>();
        foreach (var kv in table.Items)
        {
            string key = KeyText(kv.Key);
            if (kv.Value is null)
                continue;
            if (values.ContainsKey(key))
                throw document.Error(kv, $"agent.{key}", "set twice");
            if (kv.Value is not (StringValueSyntax or IntegerValueSyntax or FloatValueSyntax or BooleanValueSyntax))
                throw document.Error(kv.Value, $"agent.{key}", $"expected a string, number or boolean, found {ConfigValue.Describe(kv.Value)}");
            values[key] = new ConfigValue(document.File, $"agent.{key}", kv.Value);
        }
        return values;
    }

    // [sweep]: key = [values...], in file order.
    private static List<(string Key, ConfigValue[] Values)> SweepFrom(TomlTable table)
    {
        var document = table.Document;
        var sweep = new List<(string Key, ConfigValue[] Values)>();
        foreach (var kv in table.Items)
        {
            string key = KeyText(kv.Key);
            if (Array.IndexOf(SweepableKeys, key) < 0 && !(key.StartsWith("agent.", StringComparison.Ordinal) && key.Length > "agent.".Length))
            {
                throw document.Error(kv, $"sweep.{key}",
                    $"cannot be swept; sweep one of: {string.Join(", ", SweepableKeys)}, or agent.HYPERPARAMETER{TomlDocument.Suggestion(key, SweepableKeys)}");
            }
            if (sweep.Any(s => s.Key == key))
                throw document.Error(kv, $"sweep.{key}", "swept twice");
            if (kv.Value is not ArraySyntax array)
                throw document.Error(kv.Value ?? (SyntaxNodeBase)kv, $"sweep.{key}", $"expected an array of values to try, found {(kv.Value is null ? "nothing" : ConfigValue.Describe(kv.Value))}");
            var items = array.Items.Select(i => i.Value).OfType<ValueSyntax>().ToArray();
            if (items.Length == 0)
                throw document.Error(array, $"sweep.{key}", "an empty array: give at least one value");
            var values = items.Select(v => new ConfigValue(document.File, $"sweep.{key}", v)).ToArray();
            var texts = values.Select(v => v.Node.ToString()?.Trim() ?? "").ToList();
            for (int i = 1; i < texts.Count; i++)
            {
                if (texts.IndexOf(texts[i]) < i)
                    throw values[i].Error($"element {i + 1}: {texts[i]} is already in the list");
            }
            sweep.Add((key, values));
        }
        return sweep;
    }

    // Every combination of the swept values, the last key varying fastest; one empty point without a sweep.
    private static IEnumerable<List<(string Key, ConfigValue Value)>> Grid(List<(string Key, ConfigValue[] Values)> sweep)
    {
        IEnumerable<List<(string Key, ConfigValue Value)>> points = [[]];
        foreach (var (key, values) in sweep)
            points = points.SelectMany(p => values.Select(v => new List<(string, ConfigValue)>(p) { (key, v) })).ToList();
        return points;
    }

    private static ExperimentConfig ConfigFrom(string file, Dictionary<string, ConfigValue> values,
        List<(string Key, ConfigValue Value)> point, Dictionary<string, ActionScenario> scenarios, bool hasAnomaly)
    {
        var scenarioValue = values["scenario"];
        string relative = scenarioValue.NonEmptyString();
        string scenarioPath = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file)) ?? ".", relative));
        if (!scenarios.TryGetValue(scenarioPath, out var scenario))
        {
            if (!System.IO.File.Exists(scenarioPath))
                throw scenarioValue.Error($"scenario file \"{relative}\" not found (looked at {scenarioPath})");
            // An experiment trains an agent on the scenario's actions; a command scenario's program is its own agent.
            scenario = ScenarioFile.Load(scenarioPath) as ActionScenario
                ?? throw scenarioValue.Error($"scenario file \"{relative}\" runs a command ([workload]); an experiment trains an agent on a scenario's [[action]]s");
            scenarios[scenarioPath] = scenario;
        }
        string backend = values.TryGetValue("backend", out var b) ? b.OneOf([.. MisGym.Backends]) : MisGym.Sim;
        var feedback = values.TryGetValue("feedback", out var f) ? FeedbackModes.Parse(f.OneOf(FeedbackModes.Words)) : FeedbackMode.DenySlowdownKill;
        if (feedback == FeedbackMode.AnomalyKill && !hasAnomaly)
            throw f!.Error("anomaly-kill needs an anomaly model: add an [anomaly] table (model = \"train\" to collect normal behaviour and train one first, or a model file)");
        int episodes = values["episodes"].Int(1, 10_000_000);
        string algorithm = values["agent.algorithm"].NonEmptyString();
        var hyperparameters = new SortedDictionary<string, object>(StringComparer.Ordinal);
        foreach (var (key, value) in values)
        {
            if (key.StartsWith("agent.", StringComparison.Ordinal) && key != "agent.algorithm")
                hyperparameters[key["agent.".Length..]] = Scalar(value);
        }
        var sweepValues = point.Select(p => new KeyValuePair<string, string>(p.Key, Display(p.Value))).ToList();
        string label = sweepValues.Count switch
        {
            0 => "default",
            1 => sweepValues[0].Value,
            _ => string.Join(", ", sweepValues.Select(kv => $"{kv.Key}={kv.Value}")),
        };
        string directory = sweepValues.Count switch
        {
            0 => "default",
            1 => ExperimentText.SafeName(sweepValues[0].Value),
            _ => string.Join("__", sweepValues.Select(kv => ExperimentText.SafeName($"{kv.Key}={kv.Value}"))),
        };
        return new ExperimentConfig
        {
            Label = label,
            DirectoryName = directory,
            ScenarioPath = scenarioPath,
            Scenario = scenario,
            Backend = backend,
            Feedback = feedback,
            Algorithm = algorithm,
            Hyperparameters = hyperparameters,
            Episodes = episodes,
            SweepValues = sweepValues,
        };
    }

    // Makes the agent once per distinct configuration, so a bad hyperparameter is reported at its line.
    private static void CheckAgent(ExperimentConfig config, Dictionary<string, ConfigValue> values, HashSet<string> done, AgentMaker makeAgent)
    {
        var layout = new ObservationLayout(config.Scenario);
        string identity = $"{config.Algorithm}|{layout.Names.Count}|{config.Scenario.Actions.Count}|" +
                          string.Join(",", config.Hyperparameters.Select(kv => $"{kv.Key}={ExperimentText.Format(kv.Value)}"));
        if (!done.Add(identity))
            return;
        try
        {
            makeAgent(config.Algorithm, layout.Names.Count, config.Scenario.Actions.Count, 0, config.Hyperparameters).Dispose();
        }
        catch (ArgumentException e)
        {
            // Point at the hyperparameter the message names, else at the algorithm.
            var at = values.Where(kv => kv.Key.StartsWith("agent.", StringComparison.Ordinal) && kv.Key != "agent.algorithm")
                           .FirstOrDefault(kv => e.Message.Contains($"\"{kv.Key["agent.".Length..]}\"", StringComparison.Ordinal)).Value
                     ?? values["agent.algorithm"];
            throw at.Error($"agent {config.Algorithm}: {e.Message}");
        }
        catch (NotImplementedException e)
        {
            var at = values["agent.algorithm"];
            throw at.Error($"{e.Message}; use one that is, e.g. \"random\"");
        }
    }

    private static IReadOnlyList<int> SeedsFrom(ConfigValue value)
    {
        if (value.Node is IntegerValueSyntax)
            return Enumerable.Range(0, value.Int(1, 10_000)).ToList();
        if (value.Node is not ArraySyntax)
            throw value.Error($"expected a count (seeds = 5: seeds 0..4) or a list of seeds ([1, 7, 42]), found {ConfigValue.Describe(value.Node)}");
        var seeds = ((ArraySyntax)value.Node).Items.Select(i => i.Value).OfType<ValueSyntax>()
            .Select(v => new ConfigValue(value.File, value.Key, v).Int(0)).ToList();
        if (seeds.Count == 0)
            throw value.Error("an empty list: give at least one seed");
        for (int i = 1; i < seeds.Count; i++)
        {
            if (seeds.Take(i).Contains(seeds[i]))
                throw value.Error($"element {i + 1}: seed {seeds[i]} is already in the list");
        }
        return seeds;
    }

    private static ExperimentAnomaly AnomalyFrom(string file, TomlValues v)
    {
        var defaults = new ExperimentAnomaly { Model = ExperimentAnomaly.TrainHere };
        var model = v.Required("model");
        string path = model.NonEmptyString();
        if (path != ExperimentAnomaly.TrainHere)
        {
            path = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file)) ?? ".", path));
            if (!System.IO.File.Exists(path))
                throw model.Error($"model file \"{model.NonEmptyString()}\" not found (looked at {path}); give a `mis anomaly train` model, or \"train\" to train one here");
        }
        return new ExperimentAnomaly
        {
            Model = path,
            CollectEpisodes = v.Get("collect_episodes", c => c.Int(2, 1_000_000), defaults.CollectEpisodes),
            Algo = v.Get("algo", a => a.OneOf(ExperimentAnomaly.Algorithms), defaults.Algo),
            FalseAlarmRate = v.Get("false_alarm_rate", r => r.Number(0.0001, 0.5), defaults.FalseAlarmRate),
            Seed = v.Get("seed", s => s.Int(0), defaults.Seed),
            Threshold = v.Get("threshold", t => t.Int(0, 1000), defaults.Threshold),
            RecordTraces = v.Get("record_traces", r => r.Bool(), defaults.RecordTraces),
        };
    }

    private static ReportSettings ReportFrom(TomlValues v)
    {
        var defaults = new ReportSettings();
        return new ReportSettings
        {
            ViolationThreshold = v.Get("violation_threshold", t => t.Number(0), defaults.ViolationThreshold),
            Window = v.Get("window", w => w.Int(1, 100_000), defaults.Window),
            FinalFraction = v.Get("final_fraction", f => f.Number(0.001, 1), defaults.FinalFraction),
        };
    }

    private static object Scalar(ConfigValue value) => value.Node switch
    {
        StringValueSyntax s => s.Value ?? "",
        IntegerValueSyntax i => i.Value,
        FloatValueSyntax f => f.Value,
        BooleanValueSyntax b => b.Value,
        _ => throw value.Error($"expected a string, number or boolean, found {ConfigValue.Describe(value.Node)}"),
    };

    private static string Display(ConfigValue value) => ExperimentText.Format(Scalar(value));

    // A key as written, dotted parts joined with '.', quotes removed: agent.lr, "agent.lr" and agent . lr are one key.
    private static string KeyText(KeySyntax? key) =>
        string.Join('.', (key?.ToString() ?? "").Split('.').Select(p => p.Trim().Trim('"', '\'')));
}
