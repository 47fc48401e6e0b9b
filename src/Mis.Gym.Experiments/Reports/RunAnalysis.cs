using System.Text.Json.Nodes;
using Mis.Gym.Experiments;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Reports;

/// <summary>One (config, seed) run as read back from its directory.</summary>
public sealed record SeedRun(int Seed, string Directory, string Status, string? Error, IReadOnlyList<EpisodeRecord> Episodes);

/// <summary>A (config, seed) run of the experiment that is not complete: not started, partial (running or interrupted) or failed.</summary>
/// <param name="Config">The config's label (its directory name when it never started).</param>
/// <param name="Seed">The seed.</param>
/// <param name="Status">What its <c>status.json</c> says, or <c>not started</c>.</param>
/// <param name="Episodes">Episodes on disk.</param>
/// <param name="Error">A failed run's error.</param>
/// <param name="Shard">The shard (<c>I/N</c>) it belongs to, when the run directory's shard state files name one number of shards; else null.</param>
public sealed record IncompleteRun(string Config, int Seed, string Status, int Episodes, string? Error, string? Shard);

/// <summary>A learning curve: the per-seed moving average of a metric, then per episode the IQM over seeds with its 95% bootstrap band.</summary>
public sealed record Curve(double[] Episode, double[] Iqm, double[] Low, double[] High);

/// <summary>One config's statistics over its seeds: IQMs with 95% bootstrap intervals, and the time to stop violating as censored data.</summary>
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

    /// <summary>Episodes until the moving average of violations per episode fell below the threshold for good, per seed with data (null: never).</summary>
    public required IReadOnlyList<int?> EpisodesToStop { get; init; }

    /// <summary>
    /// <see cref="EpisodesToStop"/> as censored data: a seed that never stopped is censored at its
    /// last episode (all we know is that it had not stopped by then), not counted as if it stopped.
    /// </summary>
    public required KaplanMeier TimeToStop { get; init; }

    /// <summary>Success rate over the final fraction of episodes, over seeds.</summary>
    public required Estimate FinalSuccess { get; init; }
    /// <summary>Violations per episode over the final fraction of episodes, over seeds.</summary>
    public required Estimate FinalViolations { get; init; }
    /// <summary>Return over the final fraction of episodes, per seed with data (the scores the probability of improvement and the performance profile compare).</summary>
    public required IReadOnlyList<double> FinalReturns { get; init; }
    /// <summary>Return over the final fraction of episodes, over seeds.</summary>
    public required Estimate FinalReturn { get; init; }
    /// <summary>Share of episodes killed over the final fraction, over seeds.</summary>
    public required Estimate FinalKillRate { get; init; }
    /// <summary>Mean return over all episodes, over seeds.</summary>
    public required Estimate MeanReturn { get; init; }
    /// <summary>Mean task reward term per episode, over seeds.</summary>
    public required Estimate TaskTerm { get; init; }
    /// <summary>Mean slowdown reward term per episode, over seeds.</summary>
    public required Estimate SlowdownTerm { get; init; }
    /// <summary>Mean denial reward term per episode, over seeds.</summary>
    public required Estimate DenialTerm { get; init; }
    /// <summary>Mean kill reward term per episode, over seeds.</summary>
    public required Estimate KillTerm { get; init; }
    /// <summary>Mean anomaly-kill reward term per episode, over seeds.</summary>
    public required Estimate AnomalyTerm { get; init; }
    /// <summary>Kills per seed run, over seeds.</summary>
    public required Estimate Kills { get; init; }

    /// <summary>Return per episode.</summary>
    public required Curve ReturnCurve { get; init; }
    /// <summary>Violations per episode.</summary>
    public required Curve ViolationCurve { get; init; }
    /// <summary>Success rate per episode.</summary>
    public required Curve SuccessCurve { get; init; }
    /// <summary>Kill rate per episode.</summary>
    public required Curve KillCurve { get; init; }

    /// <summary>The time to stop as censored observations, one per seed with data: the episode it stopped, or its last episode (censored).</summary>
    public required IReadOnlyList<Observation> StopObservations { get; init; }

    /// <summary>What the anomaly scorer did, when it scored this config's episodes; null otherwise.</summary>
    public AnomalyAnalysis? Anomaly { get; init; }
}

/// <summary>
/// What the anomaly scorer did to the episodes of a config it scored (a learning-mode config of an
/// experiment with <c>[anomaly]</c>). An episode is honest when the policy recorded no violation in
/// it, violating otherwise; it is flagged when the scorer killed it (<c>anomaly-kill</c>) or, where
/// the scorer only scored (<c>none</c>), when its score went above the threshold: what it would have
/// killed. Rates are per seed, then the IQM over seeds with its bootstrap interval.
/// </summary>
public sealed record AnomalyAnalysis
{
    /// <summary>The scorer killed (<c>anomaly-kill</c>); false: it only scored.</summary>
    public required bool Kills { get; init; }

    /// <summary>The score above which a window is anomalous.</summary>
    public required int Threshold { get; init; }

    /// <summary>Honest episodes, over all seeds.</summary>
    public required int Honest { get; init; }

    /// <summary>Honest episodes flagged: false kills (or false alarms, scoring only).</summary>
    public required int HonestFlagged { get; init; }

    /// <summary>Violating episodes, over all seeds.</summary>
    public required int Violating { get; init; }

    /// <summary>Violating episodes flagged: stopped by the scorer (or that it would have stopped).</summary>
    public required int ViolatingFlagged { get; init; }

    /// <summary>Per seed, the share of its honest episodes flagged.</summary>
    public required Estimate FalseKillRate { get; init; }

    /// <summary>Per seed, the share of its violating episodes flagged.</summary>
    public required Estimate ViolatingFlaggedRate { get; init; }

    /// <summary>The share of episodes flagged over training (moving average, IQM over seeds).</summary>
    public required Curve FlagCurve { get; init; }

    /// <summary>Whether the scorer flagged <paramref name="e"/>.</summary>
    internal bool Flagged(in EpisodeRecord e) => Kills ? e.AnomalyKilled : e.AnomalyScore > Threshold;
}

/// <summary>Two configs compared: X's chance to beat Y on final return, and whether their times to stop violating differ.</summary>
/// <param name="X">The first config.</param>
/// <param name="Y">The second config.</param>
/// <param name="ReturnImprovement">P(a seed of X ends with a higher final return than a seed of Y), ties one half, with its 95% bootstrap interval.</param>
/// <param name="TimeToStop">The log-rank test of the two time-to-stop curves (null when neither config had a seed stop).</param>
public sealed record Comparison(ConfigAnalysis X, ConfigAnalysis Y, (double Point, double Low, double High) ReturnImprovement, LogRankResult? TimeToStop);

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
    /// <summary>Every pair of configs with data, X before Y in experiment order.</summary>
    public required IReadOnlyList<Comparison> Comparisons { get; init; }
    /// <summary>The log-rank test across every config with data: do their times to stop violating differ at all?</summary>
    public required LogRankResult? TimeToStopTest { get; init; }
    /// <summary>Every run of the experiment that is not complete, in experiment order (empty for a complete sweep).</summary>
    public required IReadOnlyList<IncompleteRun> Incomplete { get; init; }
    /// <summary>The state files of the shards that ran into the directory (none for a one-machine run).</summary>
    public required IReadOnlyList<ShardRecord> Shards { get; init; }
    /// <summary>The number of (config, seed) runs of the experiment.</summary>
    public required int RunCount { get; init; }

    /// <summary>Whether every (config, seed) run of the experiment is complete.</summary>
    public bool IsComplete => Incomplete.Count == 0;

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
        int anomalyThreshold = experiment["anomaly"]?["threshold"]?.GetValue<int>() ?? 800;
        var configs = new List<ConfigAnalysis>();
        var incomplete = new List<IncompleteRun>();
        var shards = ShardState.ReadAll(directory);
        // The owner of a missing run, when the shards agree on how many there are: runs are dealt
        // round-robin in experiment order (Shard).
        int? shardCount = shards.Select(r => r.Shard.Count).Distinct().Count() == 1 ? shards[0].Shard.Count : null;
        var configNames = experiment["configs"]?.AsArray().Select(n => n!.GetValue<string>()).ToList() ?? [];
        string? Owner(int config, int seed) => shardCount is { } n ? new Shard((config * seeds.Count + seed) % n, n).ToString() : null;
        foreach (var (name, configIndex) in configNames.Select((n, i) => (n, i)))
        {
            string configDir = Path.Combine(directory, name);
            var config = RunFiles.ReadJson(Path.Combine(configDir, RunFiles.Config));
            if (config is null)
            {
                incomplete.AddRange(seeds.Select((seed, i) => new IncompleteRun(name, seed, "not started", 0, null, Owner(configIndex, i))));
                continue;
            }
            var runs = new List<SeedRun>();
            foreach (int seed in seeds)
            {
                string dir = RunFiles.SeedDirectory(configDir, seed);
                var status = RunFiles.ReadJson(Path.Combine(dir, RunFiles.Status));
                string episodesPath = Path.Combine(dir, RunFiles.Episodes);
                var episodes = File.Exists(episodesPath) ? RunFiles.ReadEpisodes(episodesPath) : [];
                runs.Add(new SeedRun(seed, dir, status?["status"]?.GetValue<string>() ?? "not started", status?["error"]?.GetValue<string>(), episodes));
            }
            var analysed = Analyse(name, config, runs, settings, anomalyThreshold);
            configs.Add(analysed);
            incomplete.AddRange(runs.Select((r, i) => (r, i)).Where(x => x.r.Status != "complete")
                .Select(x => new IncompleteRun(analysed.Label, x.r.Seed, x.r.Status, x.r.Episodes.Count, x.r.Error, Owner(configIndex, x.i))));
        }
        var withData = configs.Where(c => c.WithData.Any()).ToList();
        return new RunAnalysis
        {
            Directory = directory,
            Name = experiment["name"]?.GetValue<string>() ?? Path.GetFileName(directory),
            Description = experiment["description"]?.GetValue<string>() ?? "",
            Question = experiment["question"]?.GetValue<string>() ?? "",
            SweepKeys = experiment["sweep_keys"]?.AsArray().Select(k => k!.GetValue<string>()).ToList() ?? [],
            Settings = settings,
            Configs = configs,
            Comparisons = withData.SelectMany((x, i) => withData.Skip(i + 1).Select(y => Compare(x, y))).ToList(),
            TimeToStopTest = LogRank.Test(withData.Select(c => c.StopObservations).ToList()),
            Incomplete = incomplete,
            Shards = shards,
            RunCount = configNames.Count * seeds.Count,
        };
    }

    /// <summary>Compares two configs: probability of improvement on final return, log-rank on the time to stop.</summary>
    internal static Comparison Compare(ConfigAnalysis x, ConfigAnalysis y) =>
        new(x, y, Bootstrap.ProbabilityOfImprovementInterval(x.FinalReturns, y.FinalReturns), LogRank.Test([x.StopObservations, y.StopObservations]));

    private static ConfigAnalysis Analyse(string name, JsonObject config, List<SeedRun> runs, ReportSettings s, int anomalyThreshold)
    {
        var data = runs.Where(r => r.Episodes.Count > 0).ToList();
        var toStop = data.Select(r => EpisodesUntilBelowForGood(r.Episodes.Select(e => (double)e.Violations).ToArray(), s.Window, s.ViolationThreshold)).ToList();
        List<double> FinalOf(Func<EpisodeRecord, double> metric) => data.Select(r =>
        {
            int n = Math.Max(1, (int)Math.Ceiling(r.Episodes.Count * s.FinalFraction));
            return r.Episodes.Skip(r.Episodes.Count - n).Average(metric);
        }).ToList();
        Estimate Final(Func<EpisodeRecord, double> metric) => Estimate.Of(FinalOf(metric));
        Estimate All(Func<EpisodeRecord, double> metric) => Estimate.Of(data.Select(r => r.Episodes.Average(metric)).ToList());
        var finalReturns = FinalOf(e => e.Return);
        var stops = data.Zip(toStop, (r, e) => new Observation(e ?? r.Episodes.Count, e is not null)).ToList();
        Curve CurveOf(Func<EpisodeRecord, double> metric) => LearningCurve(data, metric, s.Window);
        return new ConfigAnalysis
        {
            DirectoryName = name,
            Label = config["label"]?.GetValue<string>() ?? name,
            Config = config,
            Runs = runs,
            EpisodesToStop = toStop,
            StopObservations = stops,
            TimeToStop = new KaplanMeier(stops),
            FinalSuccess = Final(e => e.Success ? 1 : 0),
            FinalViolations = Final(e => e.Violations),
            FinalReturns = finalReturns,
            FinalReturn = Estimate.Of(finalReturns),
            FinalKillRate = Final(e => e.Killed ? 1 : 0),
            MeanReturn = All(e => e.Return),
            TaskTerm = All(e => e.Task),
            SlowdownTerm = All(e => e.Slowdown),
            DenialTerm = All(e => e.Denial),
            KillTerm = All(e => e.Kill),
            AnomalyTerm = All(e => e.Anomaly),
            Kills = Estimate.Of(data.Select(r => (double)r.Episodes.Count(e => e.Killed)).ToList()),
            ReturnCurve = CurveOf(e => e.Return),
            ViolationCurve = CurveOf(e => e.Violations),
            SuccessCurve = CurveOf(e => e.Success ? 1 : 0),
            KillCurve = CurveOf(e => e.Killed ? 1 : 0),
            Anomaly = AnalyseAnomaly(config, data, s, anomalyThreshold),
        };
    }

    private static AnomalyAnalysis? AnalyseAnomaly(JsonObject config, List<SeedRun> data, ReportSettings s, int threshold)
    {
        if (!data.Any(r => r.Episodes.Any(e => e.AnomalyScore is not null)))
            return null;
        var a = new AnomalyAnalysis
        {
            Kills = config["feedback"]?.GetValue<string>() == FeedbackMode.AnomalyKill.Word(),
            Threshold = threshold,
            Honest = 0, HonestFlagged = 0, Violating = 0, ViolatingFlagged = 0,
            FalseKillRate = Estimate.None, ViolatingFlaggedRate = Estimate.None,
            FlagCurve = new Curve([], [], [], []),
        };
        // Per seed, the share of its episodes of one kind that were flagged (seeds without any left out).
        Estimate RateOver(bool violating) => Estimate.Of([.. data
            .Select(r => r.Episodes.Where(e => e.Violations > 0 == violating).ToList())
            .Where(episodes => episodes.Count > 0)
            .Select(episodes => episodes.Count(e => a.Flagged(e)) / (double)episodes.Count)]);
        var all = data.SelectMany(r => r.Episodes).ToList();
        return a with
        {
            Honest = all.Count(e => e.Violations == 0),
            HonestFlagged = all.Count(e => e.Violations == 0 && a.Flagged(e)),
            Violating = all.Count(e => e.Violations > 0),
            ViolatingFlagged = all.Count(e => e.Violations > 0 && a.Flagged(e)),
            FalseKillRate = RateOver(violating: false),
            ViolatingFlaggedRate = RateOver(violating: true),
            FlagCurve = LearningCurve(data, e => a.Flagged(e) ? 1 : 0, s.Window),
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

    // Over the episodes every seed has: per seed the moving average, then the IQM and bootstrap band per episode.
    private static Curve LearningCurve(List<SeedRun> runs, Func<EpisodeRecord, double> metric, int window)
    {
        int length = runs.Count == 0 ? 0 : runs.Min(r => r.Episodes.Count);
        var smoothed = runs.Select(r => MovingAverage(r.Episodes.Take(length).Select(metric).ToArray(), window)).ToList();
        var (iqm, low, high) = Bootstrap.Curve(smoothed);
        return new Curve(Enumerable.Range(1, length).Select(i => (double)i).ToArray(), iqm, low, high);
    }
}
