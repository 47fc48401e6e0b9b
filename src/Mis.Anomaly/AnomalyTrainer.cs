using Stopwatch = System.Diagnostics.Stopwatch;
using Mis.Anomaly.Calibration;
using Mis.Anomaly.Models;
using Mis.Anomaly.Traces;

namespace Mis.Anomaly;

/// <summary>Everything <c>mis anomaly train</c> decides, in one record with documented defaults.</summary>
public sealed record TrainOptions
{
    /// <summary>ngram, lm, pca, lstm or ensemble.</summary>
    public string Algo { get; init; } = Algorithms.Ngram;

    /// <summary>Seed of the train/held-out split and of the model (PCA's SVD, the LSTM's weights and batches).</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Share of the normal traces held out to calibrate on (never trained on). Default 0.2.</summary>
    public double HoldoutFraction { get; init; } = 0.2;

    /// <summary>False-alarm rate on held-out normal traces that sits at score 800. Default 0.01.</summary>
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
        if (!(HoldoutFraction > 0 && HoldoutFraction < 1))
            throw new ArgumentException($"holdout fraction must be in (0, 1), got {HoldoutFraction}");
    }
}

/// <summary>One step of training, for a progress bar.</summary>
/// <param name="Stage">What is happening.</param>
/// <param name="Fraction">How far, 0..1.</param>
public readonly record struct TrainProgress(string Stage, double Fraction);

/// <summary>
/// Trains a detector: splits the normal traces (seeded) into a training part and a held-out part,
/// fits the model on the first, scores the second and calibrates on those scores.
/// </summary>
public static class AnomalyTrainer
{
    /// <summary>Trains on <paramref name="normal"/>; same traces, options and seed give the same model.</summary>
    /// <exception cref="ArgumentException">Bad options, or too few traces to hold some out.</exception>
    public static AnomalyDetector Train(IReadOnlyList<Trace> normal, TrainOptions options, string source = "", IProgress<TrainProgress>? progress = null)
    {
        options.Validate();
        var clock = Stopwatch.StartNew();
        var (fit, heldOut) = Split(normal, options.HoldoutFraction, options.Seed);
        return FitAndCalibrate(fit, heldOut, options, source, clock, progress);
    }

    /// <summary>Fits on <paramref name="fit"/> and calibrates on <paramref name="heldOut"/> (an ensemble's members share its split).</summary>
    internal static AnomalyDetector FitAndCalibrate(List<Trace> fit, List<Trace> heldOut, TrainOptions options, string source = "",
        Stopwatch? clock = null, IProgress<TrainProgress>? progress = null)
    {
        clock ??= Stopwatch.StartNew();
        var fitSyscalls = fit.Select(t => t.Syscalls).ToList();
        progress?.Report(new TrainProgress("fit", 0));
        AnomalyModel model = options.Algo switch
        {
            Algorithms.Ngram => NgramModel.Fit(fitSyscalls, options.Ngram),
            Algorithms.LanguageModel => Models.LanguageModel.Fit(fitSyscalls, options.LanguageModel),
            Algorithms.Pca => PcaModel.Fit(fitSyscalls, options.Pca with { Seed = options.Seed }),
            Algorithms.Ensemble => EnsembleModel.Fit(fit, heldOut, options.Ensemble, options),
            _ => LstmModel.Fit(fitSyscalls, options.Lstm with { Seed = options.Seed },
                new Progress<double>(f => progress?.Report(new TrainProgress("fit", f)))),
        };
        progress?.Report(new TrainProgress("calibrate", 0));
        var raw = model.ScoreTraces([.. heldOut.Select(t => t.Syscalls)]);
        var calibration = ScoreCalibration.Fit(raw, options.FalseAlarmRate);
        if (model.ScoresWholeTraces)
            calibration = calibration with
            {
                Window = ScoreCalibration.Fit(model.HighestWindows([.. heldOut.Select(t => t.Syscalls)]), options.FalseAlarmRate),
            };
        progress?.Report(new TrainProgress("calibrate", 1));
        var summary = new TrainingSummary(options.Seed, fit.Count, fitSyscalls.Sum(t => (long)t.Length), heldOut.Count,
            Math.Round(clock.Elapsed.TotalSeconds, 3), source);
        return new AnomalyDetector(model, calibration, summary);
    }

    /// <summary>
    /// Seeded split. Traces of one run (one directory) are correlated, so with enough runs whole runs
    /// are held out, and the held-out scores say how an unseen run looks; with fewer than five runs,
    /// single traces are.
    /// </summary>
    internal static (List<Trace> Fit, List<Trace> HeldOut) Split(IReadOnlyList<Trace> traces, double fraction, int seed)
    {
        if (traces.Count < 2)
            throw new ArgumentException($"training needs at least 2 normal traces (one to fit, one to calibrate on), got {traces.Count}");
        var rng = new Random(seed);
        var groups = traces.GroupBy(t => t.Group).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => g.ToList()).ToArray();
        if (groups.Length < 5)
            groups = [.. traces.Select(t => new List<Trace> { t })];
        rng.Shuffle(groups);
        int want = Math.Max(1, (int)Math.Round(fraction * traces.Count));
        var heldOut = new List<Trace>();
        var fit = new List<Trace>();
        foreach (var g in groups)
            (heldOut.Count < want ? heldOut : fit).AddRange(g);
        if (fit.Count == 0)
            throw new ArgumentException($"holding out {fraction:P0} of {traces.Count} traces leaves none to train on");
        return (fit, heldOut);
    }
}
