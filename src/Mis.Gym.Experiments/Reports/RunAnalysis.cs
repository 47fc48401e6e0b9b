using System.Text.Json.Nodes;
using Mis.Gym.Experiments;

namespace Mis.Gym.Reports;

/// <summary>One (config, seed) run as read back from its directory.</summary>
public sealed record SeedRun(int Seed, string Directory, string Status, string? Error, IReadOnlyList<EpisodeRecord> Episodes);

/// <summary>A learning curve: the per-seed moving average of a metric, then mean and 95% band over seeds, per episode.</summary>
public sealed record Curve(double[] Episode, double[] Mean, double[] Low, double[] High);

/// <summary>One config's statistics over its seeds.</summary>
public sealed record ConfigAnalysis
{
    /// <summary>The config's directory under the run directory.</summary>
    public required string DirectoryName { get; init; }
    /// <summary>The name the report shows for this config.</summary>
    public required string Label { get; init; }
    /// <summary>The resolved config as written to its config.json.</summary>
    public required JsonObject Config { get; init; }
    /// <summary>Every seed run of this config.</summary>
    public required IReadOnlyList<SeedRun> Runs { get; init; }

    /// <summary>Runs with at least one episode.</summary>
    public IEnumerable<SeedRun> WithData => Runs.Where(r => r.Episodes.Count > 0);

    /// <summary>Episodes until the moving average of violations per episode fell below the threshold for good, per seed (null: never).</summary>
    public required IReadOnlyList<int?> EpisodesToStop { get; init; }

    /// <summary><see cref="EpisodesToStop"/> over seeds, a seed that never got there counted as its episode total (a lower bound).</summary>
    public required Interval EpisodesToStopInterval { get; init; }

    /// <summary>Success rate over the final fraction of episodes, over seeds.</summary>
    public required Interval FinalSuccess { get; init; }
    /// <summary>Violations per episode over the final fraction of episodes, over seeds.</summary>
    public required Interval FinalViolations { get; init; }
    /// <summary>Return over the final fraction of episodes, over seeds.</summary>
    public required Interval FinalReturn { get; init; }
    /// <summary>Share of episodes killed over the final fraction, over seeds.</summary>
    public required Interval FinalKillRate { get; init; }
    /// <summary>Mean return over all episodes, over seeds.</summary>
    public required Interval MeanReturn { get; init; }
    /// <summary>Mean task reward term per episode, over seeds.</summary>
    public required Interval TaskTerm { get; init; }
    /// <summary>Mean slowdown reward term per episode, over seeds.</summary>
    public required Interval SlowdownTerm { get; init; }
    /// <summary>Mean denial reward term per episode, over seeds.</summary>
    public required Interval DenialTerm { get; init; }
    /// <summary>Mean kill reward term per episode, over seeds.</summary>
    public required Interval KillTerm { get; init; }
    /// <summary>Kills per seed run, over seeds.</summary>
    public required Interval Kills { get; init; }

    /// <summary>Return per episode.</summary>
    public required Curve ReturnCurve { get; init; }
    /// <summary>Violations per episode.</summary>
    public required Curve ViolationCurve { get; init; }
    /// <summary>Success rate per episode.</summary>
    public required Curve SuccessCurve { get; init; }
    /// <summary>Kill rate per episode.</summary>
    public required Curve KillCurve { get; init; }
}

/// <summary>The whole experiment as read back from a run directory: what the report and summary.json say.</summary>
public sealed record RunAnalysis
{
    /// <summary>The run directory (absolute).</summary>
    public required string Directory { get; init; }
    /// <summary>The experiment's name.</summary>
    public required string Name { get; init; }
    /// <summary>The experiment's description.</summary>
    public required string Description { get; init; }
    /// <summary>The question the experiment answers.</summary>
    public required string Question { get; init; }
    /// <summary>The keys the configs differ in.</summary>
    public required IReadOnlyList<string> SweepKeys { get; init; }
    /// <summary>The report settings from the experiment file.</summary>
    public required ReportSettings Settings { get; init; }
    /// <summary>Every config that started, in experiment order.</summary>
    public required IReadOnlyList<ConfigAnalysis> Configs { get; init; }

    /// <summary>Reads every config and seed of the run directory and computes the statistics.</summary>
    /// <exception cref="InvalidDataException">The directory is not a run directory, or a file in it is malformed (the message names it).</exception>
    public static RunAnalysis Load(string directory)
    {
        directory = Path.GetFullPath(directory);
        var experiment = RunFiles.ReadJson(Path.Combine(directory, RunFiles.ExperimentJson))
            ?? throw new InvalidDataException($"{directory} is not a run directory: it has no readable {RunFiles.ExperimentJson} (made by `mis gym run`)");
        var report = experiment["report"]?.AsObject();
        var settings = new ReportSettings
        {
            ViolationThreshold = report?["violation_threshold"]?.GetValue<double>() ?? 0.5,
            Window = report?["window"]?.GetValue<int>() ?? 20,
            FinalFraction = report?["final_fraction"]?.GetValue<double>() ?? 0.1,
        };
        var seeds = experiment["seeds"]?.AsArray().Select(s => s!.GetValue<int>()).ToList() ?? [];
        var configs = new List<ConfigAnalysis>();
        foreach (var node in experiment["configs"]?.AsArray() ?? [])
        {
            string name = node!.GetValue<string>();
            string configDir = Path.Combine(directory, name);
            var config = RunFiles.ReadJson(Path.Combine(configDir, RunFiles.Config));
            if (config is null)
                continue; // never started
            var runs = new List<SeedRun>();
            foreach (int seed in seeds)
            {
                string dir = RunFiles.SeedDirectory(configDir, seed);
                var status = RunFiles.ReadJson(Path.Combine(dir, RunFiles.Status));
                string episodesPath = Path.Combine(dir, RunFiles.Episodes);
                var episodes = File.Exists(episodesPath) ? RunFiles.ReadEpisodes(episodesPath) : [];
                runs.Add(new SeedRun(seed, dir, status?["status"]?.GetValue<string>() ?? "not started", status?["error"]?.GetValue<string>(), episodes));
            }
            configs.Add(Analyse(name, config, runs, settings));
        }
        return new RunAnalysis
        {
            Directory = directory,
            Name = experiment["name"]?.GetValue<string>() ?? Path.GetFileName(directory),
            Description = experiment["description"]?.GetValue<string>() ?? "",
            Question = experiment["question"]?.GetValue<string>() ?? "",
            SweepKeys = experiment["sweep_keys"]?.AsArray().Select(k => k!.GetValue<string>()).ToList() ?? [],
            Settings = settings,
            Configs = configs,
        };
    }

    private static ConfigAnalysis Analyse(string name, JsonObject config, List<SeedRun> runs, ReportSettings s)
    {
        var data = runs.Where(r => r.Episodes.Count > 0).ToList();
        var toStop = data.Select(r => EpisodesUntilBelowForGood(r.Episodes.Select(e => (double)e.Violations).ToArray(), s.Window, s.ViolationThreshold)).ToList();
        var toStopOrTotal = data.Zip(toStop, (r, e) => (double)(e ?? r.Episodes.Count)).ToList();
        Interval Final(Func<EpisodeRecord, double> metric) => Interval.Of(data.Select(r =>
        {
            int n = Math.Max(1, (int)Math.Ceiling(r.Episodes.Count * s.FinalFraction));
            return r.Episodes.Skip(r.Episodes.Count - n).Average(metric);
        }).ToList());
        Interval All(Func<EpisodeRecord, double> metric) => Interval.Of(data.Select(r => r.Episodes.Average(metric)).ToList());
        Curve CurveOf(Func<EpisodeRecord, double> metric) => LearningCurve(data, metric, s.Window);
        return new ConfigAnalysis
        {
            DirectoryName = name,
            Label = config["label"]?.GetValue<string>() ?? name,
            Config = config,
            Runs = runs,
            EpisodesToStop = toStop,
            EpisodesToStopInterval = Interval.Of(toStopOrTotal),
            FinalSuccess = Final(e => e.Success ? 1 : 0),
            FinalViolations = Final(e => e.Violations),
            FinalReturn = Final(e => e.Return),
            FinalKillRate = Final(e => e.Killed ? 1 : 0),
            MeanReturn = All(e => e.Return),
            TaskTerm = All(e => e.Task),
            SlowdownTerm = All(e => e.Slowdown),
            DenialTerm = All(e => e.Denial),
            KillTerm = All(e => e.Kill),
            Kills = Interval.Of(data.Select(r => (double)r.Episodes.Count(e => e.Killed)).ToList()),
            ReturnCurve = CurveOf(e => e.Return),
            ViolationCurve = CurveOf(e => e.Violations),
            SuccessCurve = CurveOf(e => e.Success ? 1 : 0),
            KillCurve = CurveOf(e => e.Killed ? 1 : 0),
        };
    }

    /// <summary>
    /// The number of episodes after which the trailing moving average (over up to
    /// <paramref name="window"/> episodes) of <paramref name="values"/> falls below
    /// <paramref name="threshold"/> for good (stays below to the end of the run); null when it
    /// ends at or above it. "For good" rather than "first", so a lucky dip is not a lesson learnt.
    /// </summary>
    internal static int? EpisodesUntilBelowForGood(double[] values, int window, double threshold)
    {
        var average = MovingAverage(values, window);
        int i = average.Length - 1;
        if (i < 0 || average[i] >= threshold)
            return null;
        while (i > 0 && average[i - 1] < threshold)
            i--;
        return i + 1;
    }

    /// <summary>Trailing moving average: element i is the mean of the last min(window, i + 1) values up to i.</summary>
    internal static double[] MovingAverage(double[] values, int window)
    {
        var result = new double[values.Length];
        double sum = 0;
        for (int i = 0; i < values.Length; i++)
        {
            sum += values[i];
            if (i >= window)
                sum -= values[i - window];
            result[i] = sum / Math.Min(window, i + 1);
        }
        return result;
    }

    // Over the episodes every seed has: per seed the moving average, then mean and t-band per episode.
    private static Curve LearningCurve(List<SeedRun> runs, Func<EpisodeRecord, double> metric, int window)
    {
        int length = runs.Count == 0 ? 0 : runs.Min(r => r.Episodes.Count);
        var smoothed = runs.Select(r => MovingAverage(r.Episodes.Take(length).Select(metric).ToArray(), window)).ToList();
        var x = new double[length];
        var mean = new double[length];
        var low = new double[length];
        var high = new double[length];
        var column = new double[runs.Count];
        for (int i = 0; i < length; i++)
        {
            for (int k = 0; k < runs.Count; k++)
                column[k] = smoothed[k][i];
            var interval = Interval.Of(column);
            (x[i], mean[i], low[i], high[i]) = (i + 1, interval.Mean, interval.Low, interval.High);
        }
        return new Curve(x, mean, low, high);
    }
}
