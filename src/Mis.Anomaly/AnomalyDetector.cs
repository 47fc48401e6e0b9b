using Mis.Anomaly.Calibration;
using Mis.Anomaly.Models;
using Mis.Enforcer.Run;

namespace Mis.Anomaly;

/// <summary>
/// A trained model with its calibration: what a model file holds, what <c>mis anomaly score</c>
/// applies to traces, and what the enforcer applies to live windows (<see cref="IOnlineScorer"/>).
/// </summary>
public sealed class AnomalyDetector(AnomalyModel model, ScoreCalibration calibration, TrainingSummary training)
    : IOnlineScorer, IDisposable
{
    /// <summary>The model.</summary>
    public AnomalyModel Model { get; } = model;

    /// <summary>The raw → 0..1000 map.</summary>
    public ScoreCalibration Calibration { get; } = calibration;

    /// <summary>What it was trained on.</summary>
    public TrainingSummary Training { get; } = training;

    /// <summary>When it was trained.</summary>
    internal DateTimeOffset Created { get; init; } = DateTimeOffset.UtcNow;

    /// <inheritdoc/>
    public string Name => Model.Algo;

    /// <inheritdoc/>
    public int WindowSize => Model.Windows.Size;

    /// <inheritdoc/>
    public int Stride => Model.Windows.Stride;

    /// <inheritdoc/>
    public OnlineScore Score(ReadOnlySpan<int> window)
    {
        double raw = Model.ScoreWindow(window);
        return new OnlineScore(Calibration.ForWindows.Apply(raw), raw);
    }

    /// <inheritdoc/>
    public IReadOnlyList<OnlineScore> ScoreBatch(IReadOnlyList<int[]> windows) =>
        [.. Model.ScoreWindows(windows).Select(raw => new OnlineScore(Calibration.ForWindows.Apply(raw), raw))];

    /// <summary>Scores whole traces: (calibrated 0..1000, raw) each.</summary>
    public (int Score, double Raw)[] ScoreTraces(IReadOnlyList<int[]> traces, IProgress<long>? syscallsDone = null) =>
        [.. Model.ScoreTraces(traces, syscallsDone).Select(raw => (Calibration.Apply(raw), raw))];

    /// <summary>The header written to the model file.</summary>
    internal ModelHeader Header => new()
    {
        Algo = Model.Algo,
        Created = Created,
        WindowSize = WindowSize,
        Stride = Stride,
        Hyperparameters = Model.Hyperparameters,
        Calibration = Calibration,
        Training = Training,
    };

    /// <inheritdoc />
    public void Dispose() => (Model as IDisposable)?.Dispose();
}
