using System.Text.Json;
using System.Text.Json.Nodes;

namespace Mis.Anomaly.Models;

/// <summary>Hyperparameters of <see cref="EnsembleModel"/>.</summary>
public sealed record EnsembleOptions
{
    /// <summary>The member algorithms; they must score the same windows. Default ngram, lm and pca.</summary>
    public string[] Members { get; init; } = [Algorithms.Ngram, Algorithms.LanguageModel, Algorithms.Pca];

    /// <summary>
    /// How the members' calibrated scores combine: <c>mean</c>, or <c>max</c> (the most alarmed
    /// member decides). Default <c>mean</c>.
    /// </summary>
    public string Combine { get; init; } = EnsembleModel.Mean;

    /// <summary>
    /// What a whole trace scores (<see cref="TraceScores"/>): <c>trace</c>, the combination of each
    /// member's calibrated scores of the trace, its whole-trace score and, for a member that has one,
    /// its highest window's (so a thin change all along a trace and a short burst inside a long one
    /// both count); or <c>window</c>, the highest window's combination, the members scoring windows.
    /// Default <c>trace</c>; model files without it score <c>window</c>.
    /// </summary>
    public string TraceScore { get; init; } = TraceScores.Trace;

    internal void Validate()
    {
        TraceScores.Validate(TraceScore);
        if (Combine is not (EnsembleModel.Mean or EnsembleModel.Max))
            throw new ArgumentException($"ensemble combine \"{Combine}\": expected \"{EnsembleModel.Mean}\" or \"{EnsembleModel.Max}\"");
        if (Members.Length < 2)
            throw new ArgumentException($"an ensemble needs at least 2 members, got {Members.Length}");
        if (Members.FirstOrDefault(m => m == Algorithms.Ensemble || !Algorithms.All.Contains(m)) is { } bad)
            throw new ArgumentException($"ensemble member '{bad}': expected some of {string.Join(", ", Algorithms.All.Where(a => a != Algorithms.Ensemble))}");
        if (Members.Distinct().Count() != Members.Length)
            throw new ArgumentException($"ensemble members repeat: {string.Join(", ", Members)}");
    }

    /// <summary>
    /// The options a member is trained with: <paramref name="options"/> for <paramref name="algo"/>;
    /// a <c>window</c> ensemble's members score traces by their highest window too.
    /// </summary>
    internal TrainOptions MemberOptions(TrainOptions options, string algo) => TraceScore == TraceScores.Window
        ? options with
        {
            Algo = algo,
            Ngram = options.Ngram with { TraceScore = TraceScores.Window },
            LanguageModel = options.LanguageModel with { TraceScore = TraceScores.Window },
        }
        : options with { Algo = algo };
}

/// <summary>
/// Several detectors as one: each member is trained and calibrated on its own (its 0–1000 scale
/// puts its own false-alarm rate on unseen normal traces at 800, below it the share of normal
/// traces it scores above: a rank), and the raw score is the mean (or maximum) of the members'
/// calibrated scores, so no member's raw units dominate and a trace every member finds unusual
/// scores above one only one of them does. A trace's members' scores are their whole-trace and
/// highest-window scores (<see cref="EnsembleOptions.TraceScore"/>), a window's their window
/// scores. The ensemble is then calibrated like any model.
/// </summary>
public sealed class EnsembleModel : AnomalyModel, IDisposable
{
    /// <summary><see cref="EnsembleOptions.Combine"/>: the members' mean.</summary>
    public const string Mean = "mean";

    /// <summary><see cref="EnsembleOptions.Combine"/>: the most alarmed member's score.</summary>
    public const string Max = "max";

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

    internal override bool ScoresWholeTraces => Options.TraceScore == TraceScores.Trace;

    /// <summary>An ensemble of trained, calibrated members (<see cref="AnomalyTrainer"/> cross-fits them on the ensemble's folds); it owns them.</summary>
    internal static EnsembleModel Of(EnsembleOptions options, AnomalyDetector[] members)
    {
        options.Validate();
        try
        {
            return new EnsembleModel(options, members);
        }
        catch
        {
            foreach (var m in members)
                m.Dispose();
            throw;
        }
    }

    /// <summary>The combination of the members' calibrated scores (<see cref="EnsembleOptions.Combine"/>).</summary>
    internal double Combined(ReadOnlySpan<double> calibrated)
    {
        double sum = 0, max = 0;
        foreach (double c in calibrated)
        {
            sum += c;
            max = Math.Max(max, c);
        }
        return Options.Combine == Max ? max : sum / calibrated.Length;
    }

    internal override double ScoreWindow(ReadOnlySpan<int> window)
    {
        Span<double> calibrated = stackalloc double[_members.Length];
        for (int i = 0; i < _members.Length; i++)
            calibrated[i] = _members[i].Calibration.ForWindows.Continuous(_members[i].Model.ScoreWindow(window));
        return Combined(calibrated);
    }

    /// <summary>Every member scores all the windows (batched where it batches), then each window's calibrated scores combine.</summary>
    internal override double[] ScoreWindows(IReadOnlyList<int[]> windows) =>
        CombineViews(_members.Select(m => m.Model.ScoreWindows(windows).Select(m.Calibration.ForWindows.Continuous).ToArray()).ToList(), windows.Count);

    /// <summary>
    /// Every member scores every trace (batched where it batches) and the calibrated scores combine;
    /// or, with <c>trace_score = "window"</c>, every window of every trace, then the combinations' maxima.
    /// </summary>
    public override double[] ScoreTraces(IReadOnlyList<int[]> traces, IProgress<long>? syscallsDone = null)
    {
        var scores = ScoresWholeTraces ? CombineTraceScores(traces) : HighestWindows(traces);
        for (int i = 0; i < traces.Count; i++)
            syscallsDone?.Report(traces[i].Length);
        return scores;
    }

    // Each member's calibrated score of each trace and, for a member that scores whole traces,
    // its highest window's on its window calibration, combined.
    private double[] CombineTraceScores(IReadOnlyList<int[]> traces)
    {
        var views = new List<double[]>();
        foreach (var m in _members)
        {
            views.Add([.. m.Model.ScoreTraces(traces).Select(m.Calibration.Continuous)]);
            if (m.Model.ScoresWholeTraces)
                views.Add([.. m.Model.HighestWindows(traces).Select(m.Calibration.ForWindows.Continuous)]);
        }
        return CombineViews(views, traces.Count);
    }

    // views[v][i]: view v's calibrated score of item i; one combined score per item.
    private double[] CombineViews(List<double[]> views, int items)
    {
        var combined = new double[items];
        var row = new double[views.Count];
        for (int i = 0; i < items; i++)
        {
            for (int v = 0; v < row.Length; v++)
                row[v] = views[v][i];
            combined[i] = Combined(row);
        }
        return combined;
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
        var options = TraceScores.WithSavedDefault(hyperparameters).Deserialize(AnomalyJson.Default.EnsembleOptions)
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
                members.Add(new AnomalyDetector(model, calibration, TrainingSummary.Member));
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
