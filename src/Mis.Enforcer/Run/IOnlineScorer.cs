namespace Mis.Enforcer.Run;

/// <summary>
/// An anomaly model, calibrated to 0–1000, that scores windows of one thread's live syscall stream
/// (<c>mis run --learn --anomaly-model MODEL</c>). The enforcer keeps the windows (the last
/// <see cref="WindowSize"/> syscalls of each thread, one every <see cref="Stride"/> syscalls); the
/// model only scores them. This contract lives here so that the enforcer never depends on the
/// model's libraries (TorchSharp, ML.NET): <c>Mis.Anomaly</c> implements it.
/// </summary>
/// <remarks>Implementations must be safe to call from several threads at once.</remarks>
public interface IOnlineScorer
{
    /// <summary>The model's algorithm ("ngram", "lm", "pca", "lstm", "ensemble"), for events and the run summary.</summary>
    string Name { get; }

    /// <summary>Syscalls per scored window (a thread's first window is its first <c>WindowSize</c> syscalls).</summary>
    int WindowSize { get; }

    /// <summary>Syscalls between two scored windows of one thread.</summary>
    int Stride { get; }

    /// <summary>Scores one window: a thread's last <see cref="WindowSize"/> syscall numbers (fewer for a short thread).</summary>
    OnlineScore Score(ReadOnlySpan<int> window);

    /// <summary>
    /// Scores several windows at once (the monitor hands over whatever has queued up, so a model that
    /// batches, as the LSTM does, keeps up with a faster stream). The default scores them one by one.
    /// </summary>
    IReadOnlyList<OnlineScore> ScoreBatch(IReadOnlyList<int[]> windows)
    {
        var scores = new OnlineScore[windows.Count];
        for (int i = 0; i < scores.Length; i++)
            scores[i] = Score(windows[i]);
        return scores;
    }
}

/// <summary>The score of one window.</summary>
/// <param name="Score">Calibrated score, 0 (ordinary) to 1000; 800 is the configured false-alarm rate on held-out normal traces.</param>
/// <param name="Raw">The model's own statistic before calibration (higher is more anomalous).</param>
public readonly record struct OnlineScore(int Score, double Raw);
