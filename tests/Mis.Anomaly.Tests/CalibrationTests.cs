using Mis.Anomaly.Calibration;

namespace Mis.Anomaly.Tests;

/// <summary>The raw → 0..1000 map: monotone, bounded, and 800 at the configured false-alarm rate.</summary>
public sealed class CalibrationTests
{
    private static double[] Gamma(Random rng, int n) =>
        [.. Enumerable.Range(0, n).Select(_ => -Math.Log(rng.NextDouble()) - Math.Log(rng.NextDouble()))];

    [Theory]
    [InlineData(0.01)]
    [InlineData(0.05)]
    [InlineData(0.10)]
    public void Held_out_false_alarm_rate_at_800_matches_the_configured_one(double alpha)
    {
        var rng = new Random(7);
        var heldOut = Gamma(rng, 4000);
        var c = ScoreCalibration.Fit(heldOut, alpha);

        // On the held-out set itself: never more than alpha (the quantile rule), and not far below.
        double onHeldOut = heldOut.Count(x => c.Apply(x) > 800) / (double)heldOut.Length;
        Assert.InRange(onHeldOut, alpha - 1.0 / heldOut.Length - 1e-12, alpha);

        // On fresh normal data from the same distribution: within sampling tolerance (4 sigma of the quantile estimate).
        var fresh = Gamma(rng, 40_000);
        double onFresh = fresh.Count(x => c.Apply(x) > 800) / (double)fresh.Length;
        double tolerance = 4 * Math.Sqrt(alpha * (1 - alpha) / heldOut.Length) + 4 * Math.Sqrt(alpha * (1 - alpha) / fresh.Length);
        Assert.InRange(onFresh, alpha - tolerance, alpha + tolerance);
    }

    [Theory]
    [InlineData(4000, 0.01, 0.01)]
    [InlineData(99, 0.01, 0.01)]
    [InlineData(98, 0.01, 1.0 / 99)]
    [InlineData(9, 0.01, 0.1)]
    [InlineData(9, 0.1, 0.1)]
    [InlineData(8, 0.1, 1.0 / 9)]
    public void Too_few_held_out_traces_promise_one_in_n_plus_1_not_the_asked_rate(int heldOut, double alpha, double bound)
    {
        var c = ScoreCalibration.Fit(Gamma(new Random(5), heldOut), alpha);
        Assert.Equal(bound, c.FalseAlarmBound, 12);
        // Fresh normal data above 800 stays within the bound (sampling tolerance of 4 sigma).
        var fresh = Gamma(new Random(6), 200_000);
        double onFresh = fresh.Count(x => c.Apply(x) > 800) / (double)fresh.Length;
        Assert.True(onFresh <= bound + 4 * Math.Sqrt(bound / heldOut), $"{onFresh:P2} above 800, bound {bound:P2}");
    }

    [Theory]
    [InlineData(5)]
    [InlineData(10)]
    [InlineData(20)]
    [InlineData(50)]
    public void With_too_few_for_the_rank_the_line_is_an_exponential_tails_predictive_quantile(int heldOut)
    {
        // Exponential normal scores: the tail the line assumes. Over many calibrations, a fresh
        // trace passes the line α of the time on average (P(X > line) = e^(−line) exactly), where
        // the largest score alone lets through 1/(n+1), 9% with ten.
        const double alpha = 0.01;
        var rng = new Random(11);
        double sum = 0;
        const int calibrations = 2000;
        for (int i = 0; i < calibrations; i++)
        {
            double[] scores = [.. Enumerable.Range(0, heldOut).Select(_ => -Math.Log(1 - rng.NextDouble()))];
            var c = ScoreCalibration.Fit(scores, alpha);
            Assert.True(c.AlarmRaw >= scores.Max());
            sum += Math.Exp(-c.AlarmRaw);
        }
        Assert.InRange(sum / calibrations, 0.7 * alpha, 1.3 * alpha);
    }

    [Fact]
    public void A_single_score_above_a_tied_median_still_carries_the_line_past_it()
    {
        // STIDE on six traces, five without a mismatch: the one that has some is the whole tail.
        var c = ScoreCalibration.Fit([0.0, 0.0, 0.0, 0.0, 0.0, 0.1], 0.01);
        Assert.True(c.AlarmRaw > 0.1, $"line {c.AlarmRaw}");
        Assert.Equal(0, c.Apply(0));
    }

    [Fact]
    public void Map_is_monotone_bounded_and_reads_as_a_percentile_below_800()
    {
        var heldOut = Gamma(new Random(3), 1000);
        var c = ScoreCalibration.Fit(heldOut, 0.01);
        int previous = -1;
        for (double raw = -1; raw < 20; raw += 0.001)
        {
            int s = c.Apply(raw);
            Assert.InRange(s, 0, 1000);
            Assert.True(s >= previous, $"not monotone at raw {raw}: {previous} -> {s}");
            previous = s;
        }
        Assert.Equal(0, c.Apply(-1));
        Assert.Equal(1000, c.Apply(1e9));
        Assert.Equal(800, c.Apply(c.AlarmRaw));
        Assert.True(c.Apply(Math.BitIncrement(c.AlarmRaw)) > 800);
        // The median of normal traces reads about 800 * 0.5 / 0.99.
        Assert.InRange(c.Apply(ScoreCalibration.Quantile([.. heldOut.Order()], 0.5)), 400, 406);
    }

    [Fact]
    public void Ties_map_to_their_lowest_score_and_the_alarm_rule_still_holds()
    {
        // STIDE-like: most normal traces have no unseen n-gram at all.
        var heldOut = Enumerable.Repeat(0.0, 995).Concat([0.1, 0.2, 0.2, 0.3, 0.5]).ToArray();
        var c = ScoreCalibration.Fit(heldOut, 0.01);
        Assert.Equal(0.0, c.AlarmRaw);
        Assert.Equal(0, c.Apply(0));                     // an ordinary trace reads 0, not 800
        Assert.InRange(c.Apply(1e-9), 801, 1000);        // anything unseen is above the line
        Assert.Equal(5 / 1000.0, heldOut.Count(x => c.Apply(x) > 800) / 1000.0);
        Assert.True(c.Apply(0.1) <= c.Apply(0.2) && c.Apply(0.2) <= c.Apply(0.3));
    }

    [Fact]
    public void Constant_held_out_scores_still_give_a_usable_map()
    {
        var c = ScoreCalibration.Fit([2.0, 2.0, 2.0], 0.01);
        Assert.Equal(0, c.Apply(2.0));
        Assert.True(c.Apply(2.0001) > 800);
        Assert.Equal(1000, c.Apply(3));
    }

    [Fact]
    public void Bad_arguments_are_refused_with_why()
    {
        Assert.Contains("at least one", Assert.Throws<ArgumentException>(() => ScoreCalibration.Fit([], 0.01)).Message);
        Assert.Contains("(0, 0.5]", Assert.Throws<ArgumentException>(() => ScoreCalibration.Fit([1.0], 0)).Message);
        Assert.Contains("not finite", Assert.Throws<ArgumentException>(() => ScoreCalibration.Fit([1.0, double.NaN], 0.01)).Message);
    }

    [Fact]
    public void Quantile_is_the_empirical_inverse_cdf()
    {
        double[] sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        Assert.Equal(1, ScoreCalibration.Quantile(sorted, 0));
        Assert.Equal(5, ScoreCalibration.Quantile(sorted, 0.5));
        Assert.Equal(9, ScoreCalibration.Quantile(sorted, 0.9));
        Assert.Equal(10, ScoreCalibration.Quantile(sorted, 0.99));
        Assert.Equal(10, ScoreCalibration.Quantile(sorted, 1));
    }
}
