using System.Text.Json.Nodes;

namespace Mis.Anomaly.Models;

/// <summary>
/// The windows a trace is scored over, shared by offline scoring and the enforcer's online monitor
/// (Mis.Enforcer.Run.AnomalyMonitor) so that both see the same windows: the first ends at syscall
/// <c>Size</c>, the next ones every <c>Stride</c> syscalls, and a last one ends at the trace's end
/// when no stride reached it. A trace shorter than <c>Size</c> is one window. A trace's raw score is
/// the maximum of its windows' scores: an attack that is a short burst inside a long, ordinary
/// thread is not averaged away, and a live thread's running maximum equals its final trace score.
/// </summary>
/// <param name="Size">Syscalls per window.</param>
/// <param name="Stride">Syscalls between the ends of two consecutive windows.</param>
public readonly record struct WindowSpec(int Size, int Stride)
{
    /// <summary>Exclusive end positions of the windows of a trace of <paramref name="length"/> syscalls.</summary>
    public IEnumerable<int> Ends(int length)
    {
        if (length <= Size)
        {
            if (length > 0)
                yield return length;
            yield break;
        }
        int end = Size;
        for (; end <= length; end += Stride)
            yield return end;
        if (end - Stride != length)
            yield return length;
    }

    /// <summary>The window ending at <paramref name="end"/>.</summary>
    public ReadOnlySpan<int> Window(ReadOnlySpan<int> trace, int end) => trace[Math.Max(0, end - Size)..end];

    /// <summary>Throws unless both numbers are positive.</summary>
    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(Size, 1, nameof(Size));
        ArgumentOutOfRangeException.ThrowIfLessThan(Stride, 1, nameof(Stride));
    }
}

/// <summary>
/// What a model's raw score of a whole trace is (the <c>trace_score</c> hyperparameter): the highest
/// of its windows' scores, or one score of the whole trace. The online monitor only ever sees
/// windows; a model scoring whole traces therefore carries a second calibration for them
/// (<see cref="Calibration.ScoreCalibration.Window"/>).
/// </summary>
public static class TraceScores
{
    /// <summary>The highest window score: a short burst inside a long, ordinary thread is not averaged away.</summary>
    public const string Window = "window";

    /// <summary>
    /// One score of the whole trace (every syscall counted once): steadier than the highest of many
    /// noisy windows, so a long but ordinary thread does not reach a high score by its one odd window.
    /// </summary>
    public const string Trace = "trace";

    /// <summary>Throws unless <paramref name="value"/> is <see cref="Window"/> or <see cref="Trace"/>.</summary>
    internal static void Validate(string value)
    {
        if (value is not (Window or Trace))
            throw new ArgumentException($"trace_score \"{value}\": expected \"{Window}\" or \"{Trace}\"");
    }

    /// <summary>
    /// Model files written before a model had <c>trace_score</c> scored traces by their highest
    /// window and were calibrated so: they must keep doing that, whatever today's default.
    /// </summary>
    internal static JsonObject WithSavedDefault(JsonObject hyperparameters)
    {
        if (!hyperparameters.ContainsKey("trace_score"))
            hyperparameters["trace_score"] = Window;
        return hyperparameters;
    }
}
