using Stopwatch = System.Diagnostics.Stopwatch;
using Mis.Anomaly.Calibration;
using Mis.Anomaly.Models;
using Mis.Anomaly.Traces;

namespace Mis.Anomaly;

/// <summary>Everything <c>mis anomaly train</c> decides, in one record with documented defaults.</summary>
public sealed record TrainOptions
{
    /// <summary>
    /// ngram, lm, pca, lstm or ensemble. Default ensemble: on public data no single model held
    /// both the AUROC and the configured false-alarm share at every split (README, mis anomaly).
    /// </summary>
    public string Algo { get; init; } = Algorithms.Ensemble;

    /// <summary>Seed of the folds and of the model (PCA's SVD, the LSTM's weights and batches).</summary>
    public int Seed { get; init; } = 1;

    /// <summary>
    /// Cross-fitting folds for the calibration: each normal trace is scored by a model fitted without
    /// its fold (whole runs when there are at least as many runs as folds), so every trace is a held-out
    /// score and none is lost to training. Default 5; fewer traces than folds make it leave-one-out.
    /// </summary>
    public int Folds { get; init; } = 5;

    /// <summary>False-alarm rate on unseen normal traces that sits at score 800. Default 0.01.</summary>
    public double FalseAlarmRate { get; init; } = 0.01;

    /// <summary>STIDE's hyperparameters.</summary>
    public NgramOptions Ngram { get; init; } = new();

    /// <summary>The ensemble's members (each trained with these options).</summary>
    public EnsembleOptions Ensemble { get; init; } = new();

    /// <summary>The language model's hyperparameters.</summary>
    public LanguageModelOptions LanguageModel { get; init; } = new();

    /// <summary>PCA's hyperparameters (its seed is <see cref="Seed"/>).</summary>
    public PcaOptions Pca { get; init; } = new();

    /// <summary>The LSTM's hyperparameters (its seed is <see cref="Seed"/>).</summary>
    public LstmOptions Lstm { get; init; } = new();

    internal void Validate()
    {
        if (!Algorithms.All.Contains(Algo))
            throw new ArgumentException($"unknown algorithm '{Algo}' (expected one of {string.Join(", ", Algorithms.All)})");
        if (Folds < 2)
            throw new ArgumentException($"cross-fitting needs at least 2 folds, got {Folds}");
    }
}

/// <summary>One step of training, for a progress bar.</summary>
/// <param name="Stage">What is happening.</param>
/// <param name="Fraction">How far, 0..1.</param>
public readonly record struct TrainProgress(string Stage, double Fraction);

/// <summary>
/// Trains a detector by cross-fitting: the normal traces are split (seeded) into folds; per fold a
/// model is fitted on the other folds and scores that fold, so every normal trace gets a score from
/// a model that never saw it; the calibration is fitted on those out-of-fold scores, and the model
/// kept is fitted on every trace. A single held-out split would calibrate on a fifth of the traces
/// and train on the rest; here the calibration sees all of them and the model too, and the
/// out-of-fold scores, from models fitted on less, err on the side of fewer false alarms.
/// </summary>
public static class AnomalyTrainer
{
    /// <summary>Trains on <paramref name="normal"/>; same traces, options and seed give the same model.</summary>
    /// <exception cref="ArgumentException">Bad options, or fewer than 2 traces.</exception>
    public static AnomalyDetector Train(IReadOnlyList<Trace> normal, TrainOptions options, string source = "", IProgress<TrainProgress>? progress = null)
    {
        options.Validate();
        var clock = Stopwatch.StartNew();
        var folds = Folds(normal, options.Folds, options.Seed);
        var all = folds.SelectMany(f => f).ToList();
        int fits = (options.Algo == Algorithms.Ensemble ? options.Ensemble.Members.Length : 1) * (folds.Length + 1), done = 0;
        var fitProgress = new Progress<double>(f => progress?.Report(new TrainProgress("fit", (done + f) / fits)));
        var crossFitted = CrossFit(all, folds, options, () => { done++; progress?.Report(new TrainProgress("fit", (double)done / fits)); }, fitProgress);
        foreach (var m in crossFitted.PerFold)
            (m as IDisposable)?.Dispose();
        progress?.Report(new TrainProgress("calibrate", 1));
        var summary = new TrainingSummary(options.Seed, all.Count, all.Sum(t => (long)t.Syscalls.Length), all.Count,
            Math.Round(clock.Elapsed.TotalSeconds, 3), source, folds.Length);
        return new AnomalyDetector(crossFitted.Final, crossFitted.Calibration, summary);
    }

    /// <summary>A model per fold (fitted without it), the model on every trace, and the calibration of the per-fold models' out-of-fold scores.</summary>
    private sealed record CrossFitted(AnomalyModel[] PerFold, AnomalyModel Final, ScoreCalibration Calibration);

    // An ensemble's members are cross-fitted on the same folds; fold k's ensemble is the members'
    // fold-k models on their out-of-fold calibrations, so its own out-of-fold scores are as unseen as theirs.
    private static CrossFitted CrossFit(List<Trace> all, List<Trace>[] folds, TrainOptions options, Action fitted, IProgress<double> fitProgress)
    {
        AnomalyModel[] perFold;
        AnomalyModel final;
        if (options.Algo == Algorithms.Ensemble)
        {
            options.Ensemble.Validate();
            var members = options.Ensemble.Members.Select(m => CrossFit(all, folds, options.Ensemble.MemberOptions(options, m), fitted, fitProgress)).ToList();
            EnsembleModel Of(Func<CrossFitted, AnomalyModel> model) => EnsembleModel.Of(options.Ensemble,
                [.. members.Select(m => new AnomalyDetector(model(m), m.Calibration, TrainingSummary.Member))]);
            perFold = [.. folds.Select((_, k) => Of(m => m.PerFold[k]))];
            final = Of(m => m.Final);
        }
        else
        {
            perFold = new AnomalyModel[folds.Length];
            for (int k = 0; k < folds.Length; k++)
            {
                perFold[k] = Fit([.. folds.Where((_, j) => j != k).SelectMany(f => f)], options, fitProgress);
                fitted();
            }
            final = Fit(all, options, fitProgress);
            fitted();
        }
        var traceScores = new List<double>();
        var windowScores = new List<double>();
        for (int k = 0; k < folds.Length; k++)
        {
            int[][] unseen = [.. folds[k].Select(t => t.Syscalls)];
            traceScores.AddRange(perFold[k].ScoreTraces(unseen));
            if (final.ScoresWholeTraces)
                windowScores.AddRange(perFold[k].HighestWindows(unseen));
        }
        var calibration = ScoreCalibration.Fit(traceScores, options.FalseAlarmRate);
        if (final.ScoresWholeTraces)
            calibration = calibration with { Window = ScoreCalibration.Fit(windowScores, options.FalseAlarmRate) };
        return new CrossFitted(perFold, final, calibration);
    }

    private static AnomalyModel Fit(List<Trace> traces, TrainOptions options, IProgress<double> progress)
    {
        var syscalls = traces.Select(t => t.Syscalls).ToList();
        return options.Algo switch
        {
            Algorithms.Ngram => NgramModel.Fit(syscalls, options.Ngram),
            Algorithms.LanguageModel => Models.LanguageModel.Fit(syscalls, options.LanguageModel),
            Algorithms.Pca => PcaModel.Fit(syscalls, options.Pca with { Seed = options.Seed }),
            _ => LstmModel.Fit(syscalls, options.Lstm with { Seed = options.Seed }, progress),
        };
    }

    /// <summary>
    /// Seeded folds. Traces of one run (one directory) are correlated, so with at least as many runs
    /// as folds whole runs go to a fold, and a fold's scores say how an unseen run looks; otherwise
    /// single traces do. Fewer traces than folds give one fold per trace (leave-one-out). Folds are
    /// filled largest run first into the emptiest, so their sizes differ by at most one run.
    /// </summary>
    internal static List<Trace>[] Folds(IReadOnlyList<Trace> traces, int folds, int seed)
    {
        if (traces.Count < 2)
            throw new ArgumentException($"training needs at least 2 normal traces (a model fitted without each scores it for the calibration), got {traces.Count}");
        var rng = new Random(seed);
        var units = traces.GroupBy(t => t.Group).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => g.ToList()).ToArray();
        if (units.Length < folds)
            units = [.. traces.Select(t => new List<Trace> { t })];
        rng.Shuffle(units);
        var result = Enumerable.Range(0, Math.Min(folds, units.Length)).Select(_ => new List<Trace>()).ToArray();
        foreach (var unit in units.OrderByDescending(u => u.Count)) // stable: equal sizes keep the shuffled order
            result.MinBy(f => f.Count)!.AddRange(unit);
        return result;
    }
}
