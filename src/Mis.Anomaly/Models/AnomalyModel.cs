using System.Text.Json.Nodes;

namespace Mis.Anomaly.Models;

/// <summary>The algorithms <c>mis anomaly train --algo</c> accepts.</summary>
public static class Algorithms
{
    /// <summary>STIDE-style n-gram database (<see cref="NgramModel"/>).</summary>
    public const string Ngram = "ngram";

    /// <summary>ML.NET randomized PCA on hashed n-gram frequencies (<see cref="PcaModel"/>).</summary>
    public const string Pca = "pca";

    /// <summary>TorchSharp LSTM next-syscall model (<see cref="LstmModel"/>).</summary>
    internal const string Lstm = "lstm";

    /// <summary>Kneser–Ney smoothed n-gram language model (<see cref="Models.LanguageModel"/>).</summary>
    public const string LanguageModel = "lm";

    /// <summary>The mean of several calibrated models (<see cref="EnsembleModel"/>).</summary>
    public const string Ensemble = "ensemble";

    /// <summary>All of them, cheapest first.</summary>
    public static readonly string[] All = [Ngram, LanguageModel, Pca, Lstm, Ensemble];
}

/// <summary>
/// A trained model of normal syscall behaviour. Its raw score of a window is higher the less the
/// window looks like the normal traces it was trained on; a trace's raw score is the maximum over
/// its windows (<see cref="WindowSpec"/>). Calibration to 0–1000 is kept apart, in
/// <see cref="AnomalyDetector"/>.
/// </summary>
public abstract class AnomalyModel
{
    /// <summary>The algorithm name (<see cref="Algorithms"/>).</summary>
    internal abstract string Algo { get; }

    /// <summary>The windows scored.</summary>
    public abstract WindowSpec Windows { get; }

    /// <summary>The resolved hyperparameters, as written to the model file.</summary>
    internal abstract JsonObject Hyperparameters { get; }

    /// <summary>
    /// True when <see cref="ScoreTrace"/> scores the whole trace rather than its highest window
    /// (<see cref="TraceScores"/>): the windows the online monitor scores then get a calibration of their own.
    /// </summary>
    internal virtual bool ScoresWholeTraces => false;

    /// <summary>The raw score of one window. Safe to call from several threads.</summary>
    internal abstract double ScoreWindow(ReadOnlySpan<int> window);

    /// <summary>The raw score of a trace: the maximum of its windows' raw scores (models that score whole traces override it).</summary>
    internal virtual double ScoreTrace(ReadOnlySpan<int> trace) => HighestWindow(trace);

    /// <summary>The highest of the trace's windows' raw scores (what the online monitor's running maximum reaches).</summary>
    internal double HighestWindow(ReadOnlySpan<int> trace)
    {
        double max = double.NegativeInfinity;
        foreach (int end in Windows.Ends(trace.Length))
            max = Math.Max(max, ScoreWindow(Windows.Window(trace, end)));
        return max;
    }

    /// <summary>
    /// Raw scores of single windows (the online monitor's batches). A window is a trace of at most
    /// one window's length, so a model whose trace score is its highest window batches them as
    /// traces; one that scores whole traces scores them one by one (models that batch windows override it).
    /// </summary>
    internal virtual double[] ScoreWindows(IReadOnlyList<int[]> windows) =>
        ScoresWholeTraces ? [.. windows.Select(w => ScoreWindow(w))] : ScoreTraces(windows);

    /// <summary>Each trace's highest window raw score, every window of every trace scored in one batch (<see cref="ScoreWindows"/>).</summary>
    internal double[] HighestWindows(IReadOnlyList<int[]> traces)
    {
        var windows = new List<int[]>();
        var owner = new List<int>();
        for (int i = 0; i < traces.Count; i++)
        {
            foreach (int end in Windows.Ends(traces[i].Length))
            {
                windows.Add(Windows.Window(traces[i], end).ToArray());
                owner.Add(i);
            }
        }
        var raw = ScoreWindows(windows);
        var highest = new double[traces.Count];
        Array.Fill(highest, double.NegativeInfinity);
        for (int w = 0; w < raw.Length; w++)
            highest[owner[w]] = Math.Max(highest[owner[w]], raw[w]);
        return highest;
    }

    /// <summary>Raw scores of many traces (models that batch override it).</summary>
    public virtual double[] ScoreTraces(IReadOnlyList<int[]> traces, IProgress<long>? syscallsDone = null)
    {
        var scores = new double[traces.Count];
        for (int i = 0; i < traces.Count; i++)
        {
            scores[i] = ScoreTrace(traces[i]);
            syscallsDone?.Report(traces[i].Length);
        }
        return scores;
    }

    /// <summary>Writes the learned parameters (the model file's payload).</summary>
    internal abstract void SavePayload(Stream stream);
}
