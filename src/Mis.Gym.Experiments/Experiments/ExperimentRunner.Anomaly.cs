using System.Text.Json.Nodes;
using Mis.Enforcer.Run;
using Mis.Gym.Envs;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Experiments;

/// <summary>What an experiment asks of the anomaly models when it trains its own (<see cref="AnomalyModels.Train"/>).</summary>
/// <param name="TracesRoot">The directory whose <c>traces/normal/</c> episodes (at any depth) are the normal behaviour.</param>
/// <param name="ModelPath">Where the model file goes.</param>
/// <param name="Algo">The model (<see cref="ExperimentAnomaly.Algorithms"/>).</param>
/// <param name="Seed">The training's seed.</param>
/// <param name="FalseAlarmRate">The calibration's false-alarm rate at 800.</param>
public sealed record AnomalyTraining(string TracesRoot, string ModelPath, string Algo, int Seed, double FalseAlarmRate);

/// <summary>
/// How an experiment trains and loads anomaly models: Mis.Anomaly's, handed in by the command line,
/// so that the experiments never load the models' libraries (ML.NET, TorchSharp) themselves.
/// </summary>
/// <param name="Train">Trains a model as asked and writes it; returns what it was trained on and how it scores (written to <c>anomaly/training.json</c>).</param>
/// <param name="Load">Loads a model file as a live scorer (safe to call from several threads).</param>
public sealed record AnomalyModels(Func<AnomalyTraining, JsonObject> Train, Func<string, IOnlineScorer> Load);

/// <summary>
/// The anomaly scorer in the loop (<c>[anomaly]</c>). With <c>model = "train"</c> the experiment
/// closes the circle in one run: first, per seed, <c>collect_episodes</c> learning-mode episodes of a
/// random agent that takes only the actions the policy allows, every thread's syscalls recorded
/// (<c>anomaly/collect/seed-N/</c>: the normal behaviour); then a model trained on them
/// (<c>anomaly/scorer.model</c>, <c>anomaly/training.json</c>); then the configs, each learning-mode
/// one scored live by it: <c>anomaly-kill</c> is killed by it, <c>none</c> only scored (what it
/// would have killed). The policy labels episodes (violations are recorded in learning mode), the
/// scorer never sees it.
/// </summary>
public sealed partial class ExperimentRunner
{
    /// <summary>The run directory's folder of the experiment's own anomaly model and its collected normal behaviour.</summary>
    public const string AnomalyDirectory = "anomaly";

    /// <summary>The model file an experiment trains itself, inside <see cref="AnomalyDirectory"/>.</summary>
    public const string AnomalyModelFile = "scorer.model";

    private ExperimentConfig? _collectionConfig;
    private IOnlineScorer? _scorer;

    /// <summary>Trains and loads anomaly models; needed when the experiment has <c>[anomaly]</c>.</summary>
    public AnomalyModels? AnomalyModels { get; init; }

    // The collection of normal behaviour, as a config of its own: the experiment's scenario and
    // backend, learning mode, traces recorded, an agent that keeps to the policy.
    private ExperimentConfig? Collection
    {
        get
        {
            if (_experiment.Anomaly is not { TrainsHere: true } anomaly)
                return null;
            var first = _experiment.Configs[0];
            return _collectionConfig ??= first with
            {
                Label = "normal behaviour",
                DirectoryName = Path.Combine(AnomalyDirectory, "collect"),
                Feedback = FeedbackMode.None,
                Algorithm = "random",
                Hyperparameters = new Dictionary<string, object>(),
                Episodes = anomaly.CollectEpisodes,
                SweepValues = [],
            };
        }
    }

    private string AnomalyModelPath => _experiment.Anomaly is { TrainsHere: false } a ? a.Model : Path.Combine(_outDirectory, AnomalyDirectory, AnomalyModelFile);

    private void CheckAnomalyModels()
    {
        if (_experiment.Anomaly is not { } anomaly)
            return;
        if (AnomalyModels is null)
            throw new InvalidOperationException("the experiment has an [anomaly] table: the runner needs the anomaly models (ExperimentRunner.AnomalyModels; `mis gym run` provides them)");
        if (anomaly.TrainsHere && !Shard.IsWhole && !File.Exists(AnomalyModelPath))
            throw new InvalidOperationException(
                $"[anomaly] model = \"train\" collects and trains before the configs run, which shards cannot share: run the experiment once without --shard, or train a model (`mis anomaly train --run DIR`) and name it in [anomaly] model");
        if (anomaly.TrainsHere && _experiment.Configs.Any(c => c.ScenarioPath != _experiment.Configs[0].ScenarioPath || c.Backend != _experiment.Configs[0].Backend))
            throw new InvalidOperationException("[anomaly] model = \"train\" collects the normal behaviour of one scenario on one backend; this experiment sweeps scenario or backend: train a model per scenario and name it");
    }

    private IEnumerable<(ExperimentConfig Config, int Seed)> CollectionRuns() =>
        Collection is { } collection && !File.Exists(AnomalyModelPath) ? _experiment.Seeds.Select(s => (collection, s)) : [];

    // What an env's syscalls feed: the collection records them; a learning-mode config of an
    // experiment with a scorer is scored (anomaly-kill: killed) and, if asked, recorded.
    private SyscallWatch? WatchFor(ExperimentConfig config)
    {
        if (ReferenceEquals(config, _collectionConfig))
            return new SyscallWatch { RecordTraces = true };
        if (_experiment.Anomaly is not { } anomaly || !config.Feedback.Learning())
            return null;
        return new SyscallWatch
        {
            RecordTraces = anomaly.RecordTraces,
            Scorer = Scorer(),
            Threshold = anomaly.Threshold,
            Kill = config.Feedback == FeedbackMode.AnomalyKill,
        };
    }

    // The model, trained on the collected normal behaviour the first time it is needed (so after
    // the collection, which runs first), and loaded once: one scorer serves every env.
    private IOnlineScorer Scorer()
    {
        if (_scorer is not null)
            return _scorer;
        var anomaly = _experiment.Anomaly!;
        string path = AnomalyModelPath;
        if (anomaly.TrainsHere && !File.Exists(path))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var summary = AnomalyModels!.Train(new AnomalyTraining(Path.Combine(_outDirectory, Collection!.DirectoryName), path, anomaly.Algo, anomaly.Seed, anomaly.FalseAlarmRate));
            RunFiles.WriteJsonAtomic(Path.Combine(_outDirectory, AnomalyDirectory, "training.json"), summary);
        }
        return _scorer = AnomalyModels!.Load(path);
    }

    private void DisposeScorer()
    {
        (_scorer as IDisposable)?.Dispose();
        _scorer = null;
    }

    // One episode's traces, under normal/ or violating/ by its recorded violations; a resumed run
    // redoes episodes after its checkpoint, so whatever an earlier attempt wrote for it goes first.
    private static void WriteTraces(string seedDirectory, in EpisodeRecord record, SyscallWatch watch)
    {
        foreach (bool violating in new[] { false, true })
        {
            string old = RunFiles.EpisodeTraces(seedDirectory, record.Episode, violating);
            if (Directory.Exists(old))
                Directory.Delete(old, recursive: true);
        }
        TraceRecorder.Write(watch.Traces(), RunFiles.EpisodeTraces(seedDirectory, record.Episode, record.Violations > 0));
    }
}
