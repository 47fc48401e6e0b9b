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
