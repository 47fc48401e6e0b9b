using MathNet.Numerics.Statistics;

namespace Mis.Gym.Reports;

/// <summary>
/// The aggregate statistics of Agarwal et al. 2021 ("Deep RL at the edge of the statistical
/// precipice", the <c>rliable</c> library) for one task: the interquartile mean, percentile
/// bootstrap intervals over seeds, the probability of improvement between two configurations and
/// performance profiles. One task makes rliable's stratified bootstrap (runs resampled within
/// each task) a plain resampling of seeds with replacement.
/// <para>Every resampling starts from the same seed, so a report rebuilt from the same files has the
/// same intervals to the last digit.</para>
/// </summary>
internal static class Bootstrap
{
    /// <summary>Resamples for a scalar's interval (rliable's <c>get_interval_estimates</c> uses 50,000; 10,000 moves a 95% end by well under 1% of the spread).</summary>
    internal const int Resamples = 10_000;

    /// <summary>Resamples per point of a curve or profile (as rliable's performance profiles: 2,000).</summary>
    internal const int CurveResamples = 2_000;

    private const int RandomSeed = 0;

    /// <summary>
    /// The interquartile mean: the mean of the values left after cutting <c>floor(n/4)</c> from each
    /// end of the sorted values (scipy's <c>trim_mean(x, 0.25)</c>, as rliable computes it). Below 4
    /// values nothing is cut. Robust to one outlying seed, less noisy than the median.
    /// </summary>
    internal static double Iqm(IReadOnlyList<double> values)
    {
        if (values.Count == 0)
            return double.NaN;
        var sorted = values.ToArray();
        Array.Sort(sorted);
        return IqmOfSorted(sorted);
    }

    private static double IqmOfSorted(ReadOnlySpan<double> sorted)
    {
        int cut = sorted.Length / 4;
        double sum = 0;
        for (int i = cut; i < sorted.Length - cut; i++)
            sum += sorted[i];
        return sum / (sorted.Length - 2 * cut);
    }

    /// <summary>
    /// The 95% percentile-bootstrap interval of <paramref name="statistic"/> over
    /// <paramref name="samples"/>: the 2.5% and 97.5% quantiles (linear interpolation, numpy's
    /// default) of the statistic over <paramref name="resamples"/> resamples with replacement.
    /// </summary>
    internal static (double Low, double High) Interval(IReadOnlyList<double> samples, Func<IReadOnlyList<double>, double> statistic, int resamples)
    {
        var random = new Random(RandomSeed);
        var resample = new double[samples.Count];
        var statistics = new double[resamples];
        for (int r = 0; r < resamples; r++)
        {
            for (int i = 0; i < resample.Length; i++)
                resample[i] = samples[random.Next(samples.Count)];
            statistics[r] = statistic(resample);
        }
        return Percentiles(statistics);
    }

    /// <summary>
    /// The IQM over seeds at every point of <paramref name="seedCurves"/> (one curve per seed) with a
    /// 95% band, resampling whole seeds so that the band at every point comes from the same
    /// resampled seeds.
    /// </summary>
    internal static (double[] Iqm, double[] Low, double[] High) Curve(IReadOnlyList<double[]> seedCurves, int resamples = CurveResamples)
    {
        int seeds = seedCurves.Count;
        int length = seeds == 0 ? 0 : seedCurves.Min(c => c.Length);
        var iqm = new double[length];
        var low = new double[length];
        var high = new double[length];
        var column = new double[seeds];
        for (int x = 0; x < length; x++)
        {
            for (int s = 0; s < seeds; s++)
                column[s] = seedCurves[s][x];
            iqm[x] = Iqm(column);
        }
        if (seeds < 2)
            return (iqm, (double[])iqm.Clone(), (double[])iqm.Clone());
        var random = new Random(RandomSeed);
        var atPoint = new double[length][];
        for (int x = 0; x < length; x++)
            atPoint[x] = new double[resamples];
        var picks = new int[seeds];
        for (int r = 0; r < resamples; r++)
        {
            for (int s = 0; s < seeds; s++)
                picks[s] = random.Next(seeds);
            for (int x = 0; x < length; x++)
            {
                for (int s = 0; s < seeds; s++)
                    column[s] = seedCurves[picks[s]][x];
                Array.Sort(column);
                atPoint[x][r] = IqmOfSorted(column);
            }
        }
        for (int x = 0; x < length; x++)
            (low[x], high[x]) = Percentiles(atPoint[x]);
        return (iqm, low, high);
    }

    /// <summary>
    /// The probability of improvement P(X &gt; Y): the chance that a seed of configuration X scores
    /// higher than a seed of Y, ties counting one half (the Mann–Whitney U statistic over
    /// <c>|X|·|Y|</c>). 0.5 means neither is better.
    /// </summary>
    internal static double ProbabilityOfImprovement(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        if (x.Count == 0 || y.Count == 0)
            return double.NaN;
        double wins = 0;
        foreach (double a in x)
            foreach (double b in y)
                wins += a > b ? 1 : a == b ? 0.5 : 0;
        return wins / (x.Count * (double)y.Count);
    }

    /// <summary>
    /// <see cref="ProbabilityOfImprovement"/> with its 95% interval: X and Y resampled independently
    /// (rliable's independent stratified bootstrap: the seeds of two configurations are not paired).
    /// </summary>
    internal static (double Point, double Low, double High) ProbabilityOfImprovementInterval(IReadOnlyList<double> x, IReadOnlyList<double> y, int resamples = Resamples)
    {
        double point = ProbabilityOfImprovement(x, y);
        if (x.Count < 2 && y.Count < 2)
            return (point, point, point);
        var random = new Random(RandomSeed);
        var rx = new double[x.Count];
        var ry = new double[y.Count];
        var statistics = new double[resamples];
        for (int r = 0; r < resamples; r++)
        {
            for (int i = 0; i < rx.Length; i++)
                rx[i] = x[random.Next(x.Count)];
            for (int i = 0; i < ry.Length; i++)
                ry[i] = y[random.Next(y.Count)];
            statistics[r] = ProbabilityOfImprovement(rx, ry);
        }
        var (low, high) = Percentiles(statistics);
        return (point, low, high);
    }

    /// <summary>
    /// A performance profile: for each threshold τ, the fraction of seeds whose score is above τ
    /// (strictly, as rliable), with a 95% bootstrap band. Read it as a survival curve of scores: a
    /// profile that lies above another everywhere dominates it stochastically.
    /// </summary>
    internal static (double[] Fraction, double[] Low, double[] High) Profile(IReadOnlyList<double> scores, IReadOnlyList<double> thresholds, int resamples = CurveResamples)
    {
        // One indicator curve per seed: the profile is their mean over seeds.
        var perSeed = scores.Select(s => thresholds.Select(t => s > t ? 1.0 : 0.0).ToArray()).ToList();
        var fraction = new double[thresholds.Count];
        for (int k = 0; k < fraction.Length; k++)
            fraction[k] = perSeed.Count == 0 ? double.NaN : perSeed.Average(c => c[k]);
        if (perSeed.Count < 2)
            return (fraction, (double[])fraction.Clone(), (double[])fraction.Clone());
        var random = new Random(RandomSeed);
        var atPoint = new double[thresholds.Count][];
        for (int k = 0; k < atPoint.Length; k++)
            atPoint[k] = new double[resamples];
        var picks = new int[perSeed.Count];
        for (int r = 0; r < resamples; r++)
        {
            for (int s = 0; s < picks.Length; s++)
                picks[s] = random.Next(perSeed.Count);
            for (int k = 0; k < atPoint.Length; k++)
            {
                double sum = 0;
                foreach (int s in picks)
                    sum += perSeed[s][k];
                atPoint[k][r] = sum / picks.Length;
            }
        }
        var low = new double[thresholds.Count];
        var high = new double[thresholds.Count];
        for (int k = 0; k < atPoint.Length; k++)
            (low[k], high[k]) = Percentiles(atPoint[k]);
        return (fraction, low, high);
    }

    private static (double Low, double High) Percentiles(double[] statistics)
    {
        Array.Sort(statistics);
        return (SortedArrayStatistics.QuantileCustom(statistics, 0.025, QuantileDefinition.R7),
                SortedArrayStatistics.QuantileCustom(statistics, 0.975, QuantileDefinition.R7));
    }
}
