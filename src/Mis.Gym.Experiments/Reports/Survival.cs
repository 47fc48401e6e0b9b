using MathNet.Numerics.Distributions;
using MathNet.Numerics.LinearAlgebra;

namespace Mis.Gym.Reports;

/// <summary>One subject of a time-to-event analysis: the time it was last seen and whether the event happened then.</summary>
/// <param name="Time">The event's time, or the last time it was seen without the event (censored).</param>
/// <param name="Event">True when the event happened at <paramref name="Time"/>; false when the observation ended first.</param>
public readonly record struct Observation(double Time, bool Event);

/// <summary>One step of a Kaplan–Meier curve: the survival just after <paramref name="Time"/>, with its 95% band.</summary>
public readonly record struct SurvivalStep(double Time, int AtRisk, int Events, double Survival, double Low, double High);

/// <summary>
/// A Kaplan–Meier estimate of "still not happened" over time, for data where some subjects never
/// had the event before their observation ended (censored). For MIS: the share of seeds still
/// violating after t episodes, a seed that never stopped counting as censored at its last episode,
/// not as if it had stopped then.
/// <para>The 95% band is R's default (<c>survfit</c>, <c>conf.type = "log"</c>): Greenwood's variance
/// of log S, <c>S·exp(±1.96·se)</c>, capped at 1.</para>
/// </summary>
public sealed class KaplanMeier
{
    private static readonly double Z = Normal.InvCDF(0, 1, 0.975);

    /// <summary>The curve: one step per distinct event time (survival is 1 before the first).</summary>
    public IReadOnlyList<SurvivalStep> Steps { get; }

    /// <summary>Subjects in all.</summary>
    public int Count { get; }

    /// <summary>Subjects whose event happened.</summary>
    public int Events { get; }

    /// <summary>The median time (first time the curve is at or below one half; the midpoint to the next event time where it is exactly one half), or null when the curve never gets there.</summary>
    public double? Median { get; }

    /// <summary>The median's 95% interval: from where the lower band to where the upper band reaches one half (Brookmeyer–Crowley); null ends are not reached within the data.</summary>
    public (double? Low, double? High) MedianInterval { get; }

    /// <summary>Estimates the curve from <paramref name="observations"/>.</summary>
    public KaplanMeier(IReadOnlyList<Observation> observations)
    {
        Count = observations.Count;
        Events = observations.Count(o => o.Event);
        var steps = new List<SurvivalStep>();
        double survival = 1, greenwood = 0;
        foreach (double t in observations.Where(o => o.Event).Select(o => o.Time).Distinct().Order())
        {
            int atRisk = observations.Count(o => o.Time >= t);
            int events = observations.Count(o => o.Event && o.Time == t);
            survival *= 1 - (double)events / atRisk;
            if (survival > 0)
            {
                greenwood += events / ((double)atRisk * (atRisk - events));
                double spread = Z * Math.Sqrt(greenwood);
                steps.Add(new SurvivalStep(t, atRisk, events, survival, survival * Math.Exp(-spread), Math.Min(1, survival * Math.Exp(spread))));
            }
            else
            {
                steps.Add(new SurvivalStep(t, atRisk, events, 0, 0, 0));
            }
        }
        Steps = steps;
        Median = TimeAtHalf(s => s.Survival);
        MedianInterval = (TimeAtHalf(s => s.Low), TimeAtHalf(s => s.High));
    }

    /// <summary>The survival just after time <paramref name="t"/> (1 before the first event).</summary>
    public double SurvivalAt(double t)
    {
        double survival = 1;
        foreach (var step in Steps.TakeWhile(s => s.Time <= t))
            survival = step.Survival;
        return survival;
    }

    private double? TimeAtHalf(Func<SurvivalStep, double> curve)
    {
        const double tolerance = 1e-9;
        for (int i = 0; i < Steps.Count; i++)
        {
            double y = curve(Steps[i]);
            if (y > 0.5 + tolerance)
                continue;
            // Exactly one half over a flat stretch: any time in it is a median; take its middle, as R does.
            if (Math.Abs(y - 0.5) <= tolerance && i + 1 < Steps.Count)
                return (Steps[i].Time + Steps[i + 1].Time) / 2;
            return Steps[i].Time;
        }
        return null;
    }
}

/// <summary>The log-rank test's result: Mantel–Haenszel chi-square with <paramref name="DegreesOfFreedom"/> and its p-value.</summary>
public readonly record struct LogRankResult(double ChiSquare, int DegreesOfFreedom, double P, IReadOnlyList<double> Observed, IReadOnlyList<double> Expected);

/// <summary>
/// The log-rank test of whether two or more groups' time-to-event curves differ (as R's
/// <c>survdiff</c>, rho = 0): at every event time the events are shared out by who was at risk,
/// and observed minus expected events, summed over time, are weighed against their
/// hypergeometric covariance.
/// </summary>
internal static class LogRank
{
    /// <summary>Tests <paramref name="groups"/> (at least two, each non-empty); null when there is nothing to test (no events at all).</summary>
    public static LogRankResult? Test(IReadOnlyList<IReadOnlyList<Observation>> groups)
    {
        int k = groups.Count;
        if (k < 2 || groups.Any(g => g.Count == 0))
            return null;
        var all = groups.SelectMany(g => g).ToList();
        var times = all.Where(o => o.Event).Select(o => o.Time).Distinct().Order().ToList();
        if (times.Count == 0)
            return null;
        var observed = new double[k];
        var expected = new double[k];
        var covariance = Matrix<double>.Build.Dense(k, k);
        var atRisk = new double[k];
        foreach (double t in times)
        {
            double n = 0, d = 0;
            for (int g = 0; g < k; g++)
            {
                atRisk[g] = groups[g].Count(o => o.Time >= t);
                double events = groups[g].Count(o => o.Event && o.Time == t);
                observed[g] += events;
                n += atRisk[g];
                d += events;
            }
            for (int g = 0; g < k; g++)
                expected[g] += d * atRisk[g] / n;
            if (n < 2)
                continue;
            double scale = d * (n - d) / (n - 1);
            for (int g = 0; g < k; g++)
                for (int h = 0; h < k; h++)
                    covariance[g, h] += scale * atRisk[g] / n * ((g == h ? 1 : 0) - atRisk[h] / n);
        }
        // The k differences sum to zero: test the first k − 1 against their covariance.
        var difference = Vector<double>.Build.Dense(k - 1, g => observed[g] - expected[g]);
        var reduced = covariance.SubMatrix(0, k - 1, 0, k - 1);
        // A group never at risk beside another at an event time has no variance: nothing to compare.
        if (Enumerable.Range(0, k - 1).Any(g => reduced[g, g] <= 1e-12))
            return null;
        double chiSquare = difference * reduced.Inverse() * difference;
        return new LogRankResult(chiSquare, k - 1, 1 - ChiSquared.CDF(k - 1, chiSquare), observed, expected);
    }
}
