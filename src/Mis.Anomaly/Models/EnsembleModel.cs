using System.Text.Json;
using System.Text.Json.Nodes;

namespace Mis.Anomaly.Models;

/// <summary>Hyperparameters of <see cref="EnsembleModel"/>.</summary>
public sealed record EnsembleOptions
{
    /// <summary>The member algorithms; they must score the same windows. Default ngram, lm and pca.</summary>
    public string[] Members { get; init; } = [Algorithms.Ngram, Algorithms.LanguageModel, Algorithms.Pca];

    internal void Validate()
    {
        if (Members.Length < 2)
            throw new ArgumentException($"an ensemble needs at least 2 members, got {Members.Length}");
        if (Members.FirstOrDefault(m => m == Algorithms.Ensemble || !Algorithms.All.Contains(m)) is { } bad)
            throw new ArgumentException($"ensemble member '{bad}': expected some of {string.Join(", ", Algorithms.All.Where(a => a != Algorithms.Ensemble))}");
        if (Members.Distinct().Count() != Members.Length)
            throw new ArgumentException($"ensemble members repeat: {string.Join(", ", Members)}");
    }
}

/// <summary>
/// Several detectors as one: each member is trained and calibrated on its own (its 0–1000 scale
/// puts its own false-alarm rate on unseen normal traces at 800), and a window's raw score is the
/// mean of the members' calibrated scores of it, so no member's raw units dominate and a window
/// every member finds unusual scores above one only one of them does. The ensemble is then
/// calibrated like any model.
/// </summary>
public sealed class EnsembleModel : AnomalyModel, IDisposable
{
    private readonly AnomalyDetector[] _members;

    private EnsembleModel(EnsembleOptions options, AnomalyDetector[] members)
    {
        Options = options;
        _members = members;
        var windows = members.Select(m => m.Model.Windows).Distinct().ToList();
        if (windows.Count != 1)
            throw new ArgumentException($"ensemble members score different windows ({string.Join(", ", members.Select(m => $"{m.Name} {m.WindowSize}/{m.Stride}"))}); give them one --window and --stride");
        Windows = windows[0];
    }

    /// <summary>The hyperparameters.</summary>
    internal EnsembleOptions Options { get; }

    /// <summary>The trained members.</summary>
    internal IReadOnlyList<AnomalyDetector> Members => _members;

    internal override string Algo => Algorithms.Ensemble;

    /// <inheritdoc />
    public override WindowSpec Windows { get; }

    internal override JsonObject Hyperparameters => (JsonObject)JsonSerializer.SerializeToNode(Options, AnomalyJson.Default.EnsembleOptions)!;

    /// <summary>
    /// Fits each member on <paramref name="fit"/> and calibrates it on <paramref name="heldOut"/>,
    /// the traces the ensemble itself is calibrated on next (a split of its own per member would
    /// leave a small data set's members a trace or two to calibrate on).
    /// </summary>
    internal static EnsembleModel Fit(List<Traces.Trace> fit, List<Traces.Trace> heldOut, EnsembleOptions options, TrainOptions memberOptions)
    {
        options.Validate();
        var members = new List<AnomalyDetector>();
        try
        {
            foreach (string algo in options.Members)
                members.Add(AnomalyTrainer.FitAndCalibrate(fit, heldOut, memberOptions with { Algo = algo }));
            return new EnsembleModel(options, [.. members]);
        }
        catch
        {
            foreach (var m in members)
                m.Dispose();
            throw;
        }
    }

    internal override double ScoreWindow(ReadOnlySpan<int> window)
    {
        double sum = 0;
        foreach (var m in _members)
            sum += m.Calibration.Continuous(m.Model.ScoreWindow(window));
        return sum / _members.Length;
    }

    /// <summary>Every member scores every window of every trace (batched where it batches), then the means' maxima.</summary>
    public override double[] ScoreTraces(IReadOnlyList<int[]> traces, IProgress<long>? syscallsDone = null)
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
        var mean = new double[windows.Count];
        foreach (var m in _members)
        {
            var raw = m.Model.ScoreTraces(windows);
            for (int w = 0; w < raw.Length; w++)
                mean[w] += m.Calibration.Continuous(raw[w]) / _members.Length;
        }
        var scores = new double[traces.Count];
        for (int w = 0; w < mean.Length; w++)
            scores[owner[w]] = Math.Max(scores[owner[w]], mean[w]);
        for (int i = 0; i < traces.Count; i++)
            syscallsDone?.Report(traces[i].Length);
        return scores;
    }

    internal override double ScoreTrace(ReadOnlySpan<int> trace) => ScoreTraces([trace.ToArray()])[0];

    /// <summary>Per member: its hyperparameters and calibration (JSON), then its payload, length-prefixed; no times, so the same training writes the same bytes.</summary>
    internal override void SavePayload(Stream stream)
    {
        using var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        w.Write(_members.Length);
        foreach (var m in _members)
        {
            w.Write(m.Model.Hyperparameters.ToJsonString());
            w.Write(JsonSerializer.Serialize(m.Calibration, AnomalyJson.Default.ScoreCalibration));
            using var payload = new MemoryStream();
            m.Model.SavePayload(payload);
            w.Write((int)payload.Length);
            w.Write(payload.GetBuffer(), 0, (int)payload.Length);
        }
    }

    internal static EnsembleModel Load(JsonObject hyperparameters, Stream payload, string path)
    {
        var options = hyperparameters.Deserialize(AnomalyJson.Default.EnsembleOptions)
            ?? throw new InvalidDataException("ensemble hyperparameters missing");
        options.Validate();
        using var r = new BinaryReader(payload);
        int count = r.ReadInt32();
        if (count != options.Members.Length)
            throw new InvalidDataException($"the ensemble names {options.Members.Length} members and holds {count}");
        var members = new List<AnomalyDetector>();
        try
        {
            foreach (string algo in options.Members)
            {
                var memberHyperparameters = JsonNode.Parse(r.ReadString()) as JsonObject ?? throw new InvalidDataException($"ensemble member {algo}: no hyperparameters");
                var calibration = JsonSerializer.Deserialize(r.ReadString(), AnomalyJson.Default.ScoreCalibration)
                    ?? throw new InvalidDataException($"ensemble member {algo}: no calibration");
                using var memberPayload = new MemoryStream(r.ReadBytes(r.ReadInt32()));
                var model = ModelFile.LoadModel(algo, memberHyperparameters, memberPayload, $"{path} (ensemble member {algo})");
                members.Add(new AnomalyDetector(model, calibration, new TrainingSummary(0, 0, 0, 0, 0, "ensemble member")));
            }
            return new EnsembleModel(options, [.. members]);
        }
        catch
        {
            foreach (var m in members)
                m.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var m in _members)
            m.Dispose();
    }
}
