using System.Globalization;

namespace Mis.Gym.Reports;

/// <summary>A mean over seeds with its two-sided 95% Student-t confidence interval.</summary>
/// <param name="Mean">The sample mean.</param>
/// <param name="HalfWidth">Half the interval's width (0 for a single sample: no spread to estimate).</param>
/// <param name="Count">The number of samples.</param>
public readonly record struct Interval(double Mean, double HalfWidth, int Count)
{
    /// <summary>The interval's lower end.</summary>
    internal double Low => Mean - HalfWidth;

    /// <summary>The interval's upper end.</summary>
    internal double High => Mean + HalfWidth;

    /// <summary>Whether the two intervals share a point.</summary>
    internal bool Overlaps(Interval other) => Low <= other.High && other.Low <= High;

    /// <summary>The mean and 95% t-interval of <paramref name="samples"/> (NaN mean when there are none).</summary>
    internal static Interval Of(IReadOnlyList<double> samples)
    {
        int n = samples.Count;
        if (n == 0)
            return new Interval(double.NaN, double.NaN, 0);
        double mean = samples.Average();
        if (n == 1)
            return new Interval(mean, 0, 1);
        double variance = samples.Sum(x => (x - mean) * (x - mean)) / (n - 1);
        return new Interval(mean, TCritical95(n - 1) * Math.Sqrt(variance / n), n);
    }

    /// <summary>
    /// The 97.5% quantile of Student's t with <paramref name="df"/> degrees of freedom (the
    /// two-sided 95% critical value): exact table values to 30, then the next tabulated lower
    /// df (conservative), 1.96 in the limit.
    /// </summary>
    internal static double TCritical95(int df)
    {
        ReadOnlySpan<double> table =
        [
            12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
            2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
            2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
        ];
        ArgumentOutOfRangeException.ThrowIfLessThan(df, 1);
        return df <= 30 ? table[df - 1] : df < 40 ? 2.042 : df < 60 ? 2.021 : df < 120 ? 2.000 : df < 1000 ? 1.980 : 1.960;
    }

    /// <summary><c>mean ± half (95% CI lo–hi, n = N)</c>, with <paramref name="format"/> for the numbers.</summary>
    internal string Describe(string format = "0.##") => Count switch
    {
        0 => "n/a",
        1 => $"{F(Mean, format)} (one seed: no interval)",
        _ => $"{F(Mean, format)} ± {F(HalfWidth, format)} (95% CI {F(Low, format)} to {F(High, format)}, n = {Count})",
    };

    private static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
}
