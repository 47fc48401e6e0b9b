namespace Mis.Anomaly.Calibration;

/// <summary>
/// Maps a model's raw score to 0–1000 so that the configured false-alarm rate α (default 1%) on
/// held-out normal traces (the trainer's cross-fitted scores: each normal trace scored by a model
/// fitted without it) sits at 800: a score is above 800 exactly when the raw score is above
/// the held-out normal traces' (1−α)-quantile (<see cref="AlarmLine"/>), so at most a fraction
/// α of them score above 800.
/// </summary>
/// <remarks>
/// The map is monotone and piecewise linear through knots:
/// <list type="bullet">
/// <item>below 800, through the held-out quantiles q(p) at p = 0, 0.05, 0.10, … and 1−α (there
/// <see cref="AlarmLine"/>), with
/// score(q(p)) = 800·p/(1−α): below 800 a score reads as "this fraction of normal traces, scaled";</item>
/// <item>above 800, one segment from (q(1−α), 800) to (q(1−α) + 2·spread, 1000), then 1000 beyond,
/// where spread = q(1−α) − q(0.5) (or, when that is 0, the held-out range; or 10⁻³ when all
/// held-out scores are equal), so the top of the scale is as many "normal spreads" away for every
/// model.</item>
/// </list>
/// q(p) is the empirical inverse CDF, the ⌈p·n⌉-th smallest of n held-out scores. Several quantiles can
/// share one raw value (many normal traces score exactly 0 under STIDE); such a value maps to the
/// lowest score of its knots, and the map jumps just above it, so it stays monotone and the rule
/// "above 800 exactly when above q(1−α)" holds whatever the ties.
/// </remarks>
public sealed record ScoreCalibration
{
    /// <summary>The score at which the false-alarm rate is set.</summary>
    internal const int AlarmScore = 800;

    /// <summary>The configured false-alarm rate α on held-out normal traces.</summary>
    public required double FalseAlarmRate { get; init; }

    /// <summary>Held-out normal traces the quantiles come from.</summary>
    public required int HeldOut { get; init; }

    /// <summary>Raw scores of the knots, non-decreasing.</summary>
    public required double[] Raw { get; init; }

    /// <summary>Calibrated scores of the knots, non-decreasing, from 0 to 1000.</summary>
    public required double[] Score { get; init; }

    /// <summary>The raw score that maps to 800: the held-out (1−α)-quantile.</summary>
    public required double AlarmRaw { get; init; }

    /// <summary>
    /// The map of single windows, when the model's trace score is not its highest window's
    /// (<see cref="Models.TraceScores.Trace"/>): fitted the same way on the held-out traces' highest
    /// window scores, so a live thread, whose windows the online monitor scores, crosses 800 as
    /// rarely as a whole trace does offline. Null (absent in older model files) when the trace
    /// score is the highest window's and this map serves both.
    /// </summary>
    public ScoreCalibration? Window { get; init; }

    /// <summary>The map to apply to one window's raw score.</summary>
    internal ScoreCalibration ForWindows => Window ?? this;

    /// <summary>Builds the map from held-out normal raw scores.</summary>
    /// <exception cref="ArgumentException">No held-out score, a non-finite one, or α outside (0, 0.5].</exception>
    internal static ScoreCalibration Fit(IReadOnlyCollection<double> heldOutNormal, double falseAlarmRate = 0.01)
    {
        if (heldOutNormal.Count == 0)
            throw new ArgumentException("calibration needs at least one held-out normal trace", nameof(heldOutNormal));
        if (heldOutNormal.Any(x => !double.IsFinite(x)))
            throw new ArgumentException("a held-out raw score is not finite", nameof(heldOutNormal));
        if (!(falseAlarmRate > 0 && falseAlarmRate <= 0.5))
            throw new ArgumentException($"false-alarm rate must be in (0, 0.5], got {falseAlarmRate}", nameof(falseAlarmRate));

        var sorted = heldOutNormal.Order().ToArray();
        double top = 1 - falseAlarmRate;
        var levels = Enumerable.Range(0, 20).Select(i => i * 0.05).Where(p => p < top - 1e-9).Append(top);
        var raw = new List<double>();
        var score = new List<double>();
        foreach (var p in levels)
        {
            raw.Add(p == top ? AlarmLine(sorted, falseAlarmRate) : Quantile(sorted, p));
            score.Add(AlarmScore * p / top);
        }
        double alarmRaw = raw[^1];
        double spread = alarmRaw - Quantile(sorted, 0.5);
        if (spread <= 0)
            spread = sorted[^1] - sorted[0];
        if (spread <= 0)
            spread = 1e-3;
        raw.Add(alarmRaw + 2 * spread);
        score.Add(1000);
        return new ScoreCalibration
        {
            FalseAlarmRate = falseAlarmRate, HeldOut = sorted.Length, Raw = [.. raw], Score = [.. score], AlarmRaw = alarmRaw,
        };
    }

    /// <summary>
    /// The alarm line, an estimate of the held-out scores' (1−α)-quantile.
    /// <list type="bullet">
    /// <item>With n ≥ (1−α)/α held-out scores (99 at 1%), the rank: the ⌈(n+1)(1−α)⌉-th smallest
    /// (split conformal prediction's). A fresh normal trace from their distribution is above it with
    /// probability at most α, assuming nothing but exchangeability.</item>
    /// <item>With fewer, no rank can promise α (the largest score promises 1/(n+1)), so the line goes
    /// past the largest score to where an exponential tail above the median u puts it (peaks over a
    /// threshold, the generalized Pareto's shape 0): P(S &gt; x) = p·exp(−(x − u)/β) for x ≥ u, p the
    /// share of the scores above u. β is estimated by their mean excess β̂ over u from only m of them,
    /// so the line is the predictive quantile, u + β̂·m·((p/α)^(1/m) − 1): a fresh trace's chance of
    /// passing it, averaged over β̂ (m·β̂/β is Gamma(m) distributed), is α, where the plug-in
    /// u + β̂·ln(p/α) lets through about three times α with ten scores. That is an assumption about
    /// the tail, not a guarantee: a heavier tail (log-normal, Pareto: about 2α in simulation), or
    /// unseen normal traces unlike the held-out ones, put more than α above the line; a lighter one
    /// fewer.</item>
    /// </list>
    /// </summary>
    internal static double AlarmLine(double[] sorted, double falseAlarmRate)
    {
        int n = sorted.Length, rank = AlarmRank(n, falseAlarmRate);
        if (rank <= n)
            return sorted[Math.Max(rank, 1) - 1];
        double u = Quantile(sorted, 0.5);
        var above = sorted.Where(x => x > u).ToArray();
        int m = above.Length;
        double p = m / (double)n;
        double tail = p > falseAlarmRate ? u + (above.Average() - u) * m * (Math.Pow(p / falseAlarmRate, 1.0 / m) - 1) : u;
        return Math.Max(sorted[^1], tail);
    }

    private static int AlarmRank(int heldOut, double falseAlarmRate) => (int)Math.Ceiling((heldOut + 1) * (1 - falseAlarmRate) - 1e-9);

    /// <summary>
    /// The false-alarm rate this calibration promises without assuming anything about the scores'
    /// tail: its <see cref="FalseAlarmRate"/>, or, with too few held-out traces for it (see
    /// <see cref="AlarmLine"/>), 1/(n+1).
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public double FalseAlarmBound => AlarmRank(HeldOut, FalseAlarmRate) > HeldOut ? Math.Max(FalseAlarmRate, 1.0 / (HeldOut + 1)) : FalseAlarmRate;

    /// <summary>The empirical inverse CDF: the ⌈p·n⌉-th smallest value (the smallest for p = 0).</summary>
    internal static double Quantile(double[] sorted, double p)
    {
        int index = Math.Clamp((int)Math.Ceiling(p * sorted.Length - 1e-9) - 1, 0, sorted.Length - 1);
        return sorted[index];
    }

    /// <summary>The calibrated score, 0..1000, of a raw score; above 800 exactly when <paramref name="raw"/> &gt; <see cref="AlarmRaw"/>.</summary>
    internal int Apply(double raw)
    {
        double s = Interpolate(raw);
        int rounded = (int)Math.Round(s, MidpointRounding.AwayFromZero);
        // Rounding must not move a score across the alarm line in either direction.
        return raw > AlarmRaw ? Math.Clamp(rounded, AlarmScore + 1, 1000) : Math.Clamp(rounded, 0, AlarmScore);
    }

    /// <summary>
    /// The calibrated score before rounding and without the ceiling at 1000 (what an ensemble
    /// combines): above the top knot the last segment goes on, so two raw scores beyond the top of
    /// the scale still rank, in the same unit (spreads of normal scores past the alarm) for every member.
    /// </summary>
    internal double Continuous(double raw) => double.IsFinite(raw) && raw > Raw[^1]
        ? Score[^1] + (raw - Raw[^1]) * (Score[^1] - AlarmScore) / (Raw[^1] - AlarmRaw)
        : Interpolate(raw);

    private double Interpolate(double raw)
    {
        if (double.IsNaN(raw))
            return 1000; // a model that cannot score a window has seen something it never learned
        if (raw <= Raw[0])
            return Score[0];
        if (raw >= Raw[^1])
            return Score[^1];
        // First knot whose raw value is >= raw; a tied raw value maps to its lowest knot score.
        int hi = 0;
        while (Raw[hi] < raw)
            hi++;
        if (Raw[hi] == raw)
            return Score[hi];
        int lo = hi - 1; // Raw[lo] < raw < Raw[hi]; with ties at Raw[lo], the last (highest-scored) knot
        double t = (raw - Raw[lo]) / (Raw[hi] - Raw[lo]);
        return Score[lo] + t * (Score[hi] - Score[lo]);
    }
}
