using System.Globalization;

namespace Mis.Gym.Reports;

/// <summary>
/// A metric over seeds as the report states it: the interquartile mean (IQM) of the per-seed
/// values with a 95% percentile-bootstrap interval (Agarwal et al. 2021). The interval's ends are
/// IQMs of resampled seeds, so they stay inside the range the values can take: a count never
/// gets a negative end, a rate never one above 100%.
/// </summary>
/// <param name="Iqm">The interquartile mean: the mean of the middle half of the sorted values.</param>
/// <param name="Low">The interval's lower end (equal to <paramref name="Iqm"/> for one seed).</param>
/// <param name="High">The interval's upper end.</param>
/// <param name="Mean">The plain mean, for readers who want it beside the IQM.</param>
/// <param name="Count">The number of seeds.</param>
public readonly record struct Estimate(double Iqm, double Low, double High, double Mean, int Count)
{
    /// <summary>No value: every number NaN, count 0.</summary>
    internal static Estimate None => new(double.NaN, double.NaN, double.NaN, double.NaN, 0);

    /// <summary>The IQM of <paramref name="samples"/> with its bootstrap interval (<see cref="Bootstrap.Resamples"/> resamples, seeded).</summary>
    internal static Estimate Of(IReadOnlyList<double> samples)
    {
        if (samples.Count == 0)
            return None;
        double iqm = Bootstrap.Iqm(samples);
        var (low, high) = samples.Count == 1 ? (iqm, iqm) : Bootstrap.Interval(samples, Bootstrap.Iqm, Bootstrap.Resamples);
        return new Estimate(iqm, low, high, samples.Average(), samples.Count);
    }

    /// <summary>Whether the two intervals share a point.</summary>
    internal bool Overlaps(Estimate other) => Low <= other.High && other.Low <= High;

    /// <summary><c>IQM (95% CI lo–hi, n = N)</c>, with <paramref name="format"/> for the numbers.</summary>
    internal string Describe(string format = "0.##") => Count switch
    {
        0 => "n/a",
        1 => $"{F(Iqm, format)} (one seed: no interval)",
        _ => $"{F(Iqm, format)} (95% CI {F(Low, format)} to {F(High, format)}, n = {Count})",
    };

    /// <summary><c>IQM [lo, hi]</c> for a table cell.</summary>
    internal string Short(string format = "0.##") => Count switch
    {
        0 => "n/a",
        1 => F(Iqm, format),
        _ => $"{F(Iqm, format)} [{F(Low, format)}, {F(High, format)}]",
    };

    private static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
}
