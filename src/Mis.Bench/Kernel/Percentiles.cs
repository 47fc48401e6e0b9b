namespace Mis.Bench.Kernel;

/// <summary>Summary of a sample of latencies, in nanoseconds.</summary>
/// <param name="Count">Samples.</param>
/// <param name="MeanNs">Arithmetic mean.</param>
/// <param name="P50Ns">Median (nearest rank).</param>
/// <param name="P99Ns">99th percentile (nearest rank).</param>
/// <param name="MaxNs">Largest sample.</param>
public sealed record LatencySummary(long Count, double MeanNs, double P50Ns, double P99Ns, double MaxNs)
{
    /// <summary>Summarises <paramref name="samplesNs"/> (sorted in place); all zero for an empty sample.</summary>
    internal static LatencySummary Of(Span<double> samplesNs)
    {
        if (samplesNs.Length == 0)
            return new LatencySummary(0, 0, 0, 0, 0);
        samplesNs.Sort();
        double sum = 0;
        foreach (double s in samplesNs)
            sum += s;
        return new LatencySummary(samplesNs.Length, sum / samplesNs.Length,
            Rank(samplesNs, 0.50), Rank(samplesNs, 0.99), samplesNs[^1]);
    }

    /// <summary>The nearest-rank percentile of a sorted sample: the ⌈p·n⌉-th smallest.</summary>
    internal static double Rank(ReadOnlySpan<double> sorted, double p)
    {
        int index = (int)Math.Ceiling(p * sorted.Length) - 1;
        return sorted[Math.Clamp(index, 0, sorted.Length - 1)];
    }

    /// <summary>The median of a small sample of repeated measurements (sorted copy).</summary>
    internal static double Median(IEnumerable<double> values)
    {
        var sorted = values.ToArray();
        return sorted.Length == 0 ? double.NaN : Rank(sorted.Order().ToArray(), 0.5);
    }
}
