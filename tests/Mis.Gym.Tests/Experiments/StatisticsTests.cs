using Mis.Gym.Reports;

namespace Mis.Gym.Tests.Experiments;

/// <summary>
/// The report's statistics against values computed by hand and published ones: the interquartile
/// mean and bootstrap intervals (Agarwal et al. 2021), the probability of improvement, performance
/// profiles, and Kaplan–Meier with the log-rank test on Gehan's (1965) leukaemia remission data, the
/// textbook example whose R output (<c>survfit</c>, <c>survdiff</c>) is printed in most survival texts.
/// </summary>
public sealed class StatisticsTests
{
    [Theory]
    [InlineData(new double[] { 1, 2, 3, 4, 5, 6, 7, 8 }, 4.5)]      // cut 2 from each end: mean of 3..6
    [InlineData(new double[] { 10, 0, 1, 2 }, 1.5)]                 // cut 1 from each end: mean of 1, 2
    [InlineData(new double[] { 100, 1, 2, 3, 4 }, 3)]               // cut 1 from each end: the outlier goes
    [InlineData(new double[] { 0, 0, 3 }, 1)]                       // under 4 values nothing is cut
    [InlineData(new double[] { 7 }, 7)]
    public void The_interquartile_mean_cuts_a_quarter_from_each_end(double[] values, double expected)
    {
        Assert.Equal(expected, Bootstrap.Iqm(values), 12);
    }

    [Fact]
    public void A_count_never_gets_a_negative_interval_end()
    {
        // The quickstart's old line: violations per episode 0.22, Student-t 95% CI -0.26 to 0.7.
        var e = Estimate.Of([0, 0, 0.66]);
        Assert.Equal(0.22, e.Iqm, 12);
        Assert.Equal(0.22, e.Mean, 12);
        Assert.True(e.Low >= 0 && e.High <= 0.66, $"{e.Low} to {e.High}");
        Assert.True(e.Low <= e.Iqm && e.Iqm <= e.High);
        // A rate stays within 100%.
        var rate = Estimate.Of([1, 1, 0.9, 1, 0.8]);
        Assert.True(rate.High <= 1 && rate.Low >= 0.8);
    }

    [Fact]
    public void Bootstrap_intervals_are_the_same_on_every_rebuild_and_degenerate_without_spread()
    {
        double[] values = [3, 9, 4, 7, 5, 6, 12, 1, 8, 2];
        Assert.Equal(Estimate.Of(values), Estimate.Of(values));
        var flat = Estimate.Of([2, 2, 2, 2]);
        Assert.Equal((2.0, 2.0, 2.0), (flat.Low, flat.Iqm, flat.High));
        Assert.Equal(0, Estimate.Of([]).Count);
        Assert.Equal((4.0, 4.0), (Estimate.Of([4]).Low, Estimate.Of([4]).High));
        // Ten values 1..12 spread: the 95% interval of their IQM is strictly inside their range and around the IQM.
        var e = Estimate.Of(values);
        Assert.Equal(5.5, e.Iqm, 12);
        Assert.InRange(e.Low, 1.0, 5.5);
        Assert.InRange(e.High, 5.5, 12.0);
        Assert.True(e.High - e.Low > 1, "ten spread seeds leave a real interval");
    }

    [Fact]
    public void The_probability_of_improvement_counts_pairs_with_ties_as_half()
    {
        // Pairs (x > y): 1 beats 0; 2 beats 0 and ties 2, 2; 3 beats all three: (1 + 1 + 0.5 + 0.5 + 3) / 9.
        Assert.Equal(6.0 / 9, Bootstrap.ProbabilityOfImprovement([1, 2, 3], [0, 2, 2]), 12);
        Assert.Equal(0.5, Bootstrap.ProbabilityOfImprovement([1, 2, 3], [1, 2, 3]), 12);
        Assert.Equal(1, Bootstrap.ProbabilityOfImprovement([5, 6], [1, 2, 3]), 12);
        var (point, low, high) = Bootstrap.ProbabilityOfImprovementInterval([1, 2, 3, 4, 5], [2, 3, 4, 5, 6]);
        Assert.Equal(0.32, point, 12); // x = 1..5 against y = 2..6: (0 + 0.5 + 1.5 + 2.5 + 3.5) / 25
        Assert.True(low >= 0 && high <= 1 && low <= point && point <= high);
    }

    [Fact]
    public void A_performance_profile_is_the_share_of_seeds_above_each_threshold()
    {
        var (fraction, low, high) = Bootstrap.Profile([1, 2, 3], [0, 1, 2, 3]);
        Assert.Equal([1, 2.0 / 3, 1.0 / 3, 0], fraction);
        for (int k = 0; k < fraction.Length; k++)
            Assert.True(low[k] <= fraction[k] + 1e-12 && fraction[k] <= high[k] + 1e-12 && low[k] >= 0 && high[k] <= 1);
        Assert.Equal(0, low[3]);
        Assert.Equal(1, high[0]);
    }

    [Fact]
    public void A_curve_band_stays_within_what_the_seeds_reached()
    {
        double[][] seeds = [[0, 1, 2], [0, 3, 2], [0, 2, 5], [0, 0, 2]];
        var (iqm, low, high) = Bootstrap.Curve(seeds);
        Assert.Equal([0, 1.5, 2], iqm);
        Assert.Equal((0.0, 0.0), (low[0], high[0]));
        Assert.InRange(low[1], 0.0, 1.5);
        Assert.InRange(high[1], 1.5, 3.0);
        Assert.Equal(2, low[2]);
    }

    // Gehan (1965): weeks of remission of 21 leukaemia patients on 6-mercaptopurine (false: still in remission, censored) and 21 on placebo.
    private static readonly Observation[] SixMp =
    [
        .. new[] { 6, 6, 6, 7, 10, 13, 16, 22, 23 }.Select(t => new Observation(t, true)),
        .. new[] { 6, 9, 10, 11, 17, 19, 20, 25, 32, 32, 34, 35 }.Select(t => new Observation(t, false)),
    ];

    private static readonly Observation[] Placebo =
        [.. new[] { 1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23 }.Select(t => new Observation(t, true))];

    [Fact]
    public void Kaplan_Meier_matches_the_published_Gehan_table()
    {
        var km = new KaplanMeier(SixMp);
        // R: summary(survfit(Surv(time, cens) ~ treat, data = gehan)), the 6-MP group (conf.type "log").
        (double Time, int Risk, int Events, double S, double Low, double High)[] published =
        [
            (6, 21, 3, 0.857, 0.720, 1.000),
            (7, 17, 1, 0.807, 0.653, 0.996),
            (10, 15, 1, 0.753, 0.586, 0.968),
            (13, 12, 1, 0.690, 0.510, 0.935),
            (16, 11, 1, 0.627, 0.439, 0.896),
            (22, 7, 1, 0.538, 0.337, 0.858),
            (23, 6, 1, 0.448, 0.249, 0.807),
        ];
        Assert.Equal(published.Length, km.Steps.Count);
        for (int i = 0; i < published.Length; i++)
        {
            var (time, risk, events, s, low, high) = published[i];
            var step = km.Steps[i];
            Assert.Equal((time, risk, events), (step.Time, step.AtRisk, step.Events));
            Assert.Equal(s, step.Survival, 3);
            Assert.Equal(low, step.Low, 3);
            Assert.Equal(high, step.High, 3);
        }
        Assert.Equal(21, km.Count);
        Assert.Equal(9, km.Events);
        Assert.Equal(1, km.SurvivalAt(5.9));
        Assert.Equal(0.538, km.SurvivalAt(22.5), 3);
        // R: median 23, 0.95LCL 16, 0.95UCL NA.
        Assert.Equal(23, km.Median);
        Assert.Equal((16.0, (double?)null), km.MedianInterval);
    }

    [Fact]
    public void The_median_of_an_uncensored_group_and_its_interval_match_R()
    {
        var km = new KaplanMeier(Placebo);
        // R: median 8, 0.95LCL 4, 0.95UCL 12; the curve reaches 0 at the last time.
        Assert.Equal(8, km.Median);
        Assert.Equal((4.0, 12.0), km.MedianInterval);
        Assert.Equal(0, km.Steps[^1].Survival);
        // Exactly one half over a flat stretch: the median is its middle (R's rule).
        var half = new KaplanMeier([new(2, true), new(4, true), new(6, true), new(8, true)]);
        Assert.Equal(5, half.Median);
        // Nobody's event: no median, no steps.
        var none = new KaplanMeier([new(10, false), new(10, false)]);
        Assert.Null(none.Median);
        Assert.Empty(none.Steps);
    }

    [Fact]
    public void The_log_rank_test_matches_the_published_Gehan_result()
    {
        // R: survdiff(Surv(time, cens) ~ treat, data = gehan): Chisq = 16.8 on 1 df, p = 4.17e-05;
        // observed 9 and 21, expected 19.25 and 10.75.
        var test = LogRank.Test([SixMp, Placebo])!.Value;
        Assert.Equal(16.79, test.ChiSquare, 2);
        Assert.Equal(1, test.DegreesOfFreedom);
        Assert.Equal(4.17e-5, test.P, 6);
        Assert.Equal([9.0, 21.0], test.Observed);
        Assert.Equal(19.25, test.Expected[0], 2);
        Assert.Equal(10.75, test.Expected[1], 2);
        // The order of the groups does not change the statistic; three groups have two degrees of freedom.
        Assert.Equal(test.ChiSquare, LogRank.Test([Placebo, SixMp])!.Value.ChiSquare, 9);
        Assert.Equal(2, LogRank.Test([SixMp, Placebo, Placebo])!.Value.DegreesOfFreedom);
        // No event in any group: nothing to test.
        Assert.Null(LogRank.Test([[new(5, false)], [new(5, false)]]));
    }
}
