using Mis.Anomaly.Calibration;

namespace Mis.Anomaly.Evaluation;

/// <summary>Detection-quality numbers from the raw scores of normal and attack traces (higher = more anomalous).</summary>
public static class RocMetrics
{
    /// <summary>
    /// Area under the ROC curve: the probability that a random attack trace scores above a random
    /// normal one, ties counting half (the Mann–Whitney U statistic over n·m).
    /// </summary>
    internal static double Auroc(IReadOnlyList<double> normal, IReadOnlyList<double> attack)
    {
        if (normal.Count == 0 || attack.Count == 0)
            throw new ArgumentException("AUROC needs at least one normal and one attack score");
        var all = normal.Select(s => (Score: s, Attack: false)).Concat(attack.Select(s => (Score: s, Attack: true)))
            .OrderBy(x => x.Score).ToArray();
        double attackRankSum = 0;
        for (int i = 0; i < all.Length;)
        {
            int j = i;
            while (j < all.Length && all[j].Score == all[i].Score)
                j++;
            double averageRank = (i + 1 + j) / 2.0; // ranks i+1..j share their average
            for (int k = i; k < j; k++)
                if (all[k].Attack)
                    attackRankSum += averageRank;
            i = j;
        }
        double u = attackRankSum - attack.Count * (attack.Count + 1) / 2.0;
        return u / ((double)normal.Count * attack.Count);
    }

    /// <summary>
    /// Share of attack traces detected when the threshold is set so that a share
    /// <paramref name="falseAlarmRate"/> of these normal traces (at most) raise an alarm: the same
    /// rule as calibration (above the normal scores' (1−α)-quantile).
    /// </summary>
    internal static double DetectionRate(IReadOnlyList<double> normal, IReadOnlyList<double> attack, double falseAlarmRate)
    {
        double threshold = ScoreCalibration.Quantile([.. normal.Order()], 1 - falseAlarmRate);
        return attack.Count(a => a > threshold) / (double)attack.Count;
    }

    /// <summary>The ROC curve: (false-alarm rate, detection rate) at every distinct threshold, from (0,0) to (1,1).</summary>
    internal static (double[] Fpr, double[] Tpr) Curve(IReadOnlyList<double> normal, IReadOnlyList<double> attack)
    {
        var thresholds = normal.Concat(attack).Distinct().OrderDescending().ToArray();
        var fpr = new List<double> { 0 };
        var tpr = new List<double> { 0 };
        foreach (double t in thresholds)
        {
            fpr.Add(normal.Count(s => s >= t) / (double)normal.Count);
            tpr.Add(attack.Count(s => s >= t) / (double)attack.Count);
        }
        fpr.Add(1);
        tpr.Add(1);
        return ([.. fpr], [.. tpr]);
    }
}
