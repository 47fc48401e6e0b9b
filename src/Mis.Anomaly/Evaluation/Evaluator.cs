using Mis.Anomaly.Calibration;
using Mis.Anomaly.Traces;

namespace Mis.Anomaly.Evaluation;

/// <summary>How well a detector separates normal from attack traces.</summary>
/// <param name="Algo">The model's algorithm.</param>
/// <param name="Normal">Normal traces scored.</param>
/// <param name="Attack">Attack traces scored.</param>
/// <param name="Auroc">Trace-level area under the ROC curve.</param>
/// <param name="DetectionAt1">Attack traces detected at a 1% false-alarm rate on these normal traces.</param>
/// <param name="DetectionAt5">… at 5%.</param>
/// <param name="DetectionAt10">… at 10%.</param>
/// <param name="FalseAlarmsAbove800">Share of the normal traces scoring above 800 (what the calibration promises: about its α).</param>
/// <param name="DetectionAbove800">Share of the attack traces scoring above 800.</param>
/// <param name="RunAuroc">AUROC with one score per run (the maximum over its threads, as the online kill sees it).</param>
/// <param name="NormalRaw">The normal traces' raw scores.</param>
/// <param name="AttackRaw">The attack traces' raw scores.</param>
public sealed record EvalResult(string Algo, int Normal, int Attack, double Auroc, double DetectionAt1, double DetectionAt5,
    double DetectionAt10, double FalseAlarmsAbove800, double DetectionAbove800, double RunAuroc,
    double[] NormalRaw, double[] AttackRaw);

/// <summary>Scores normal and attack traces with a detector and computes <see cref="EvalResult"/>.</summary>
public static class Evaluator
{
    /// <summary>Scores every trace and computes AUROC and detection rates; <paramref name="syscallsDone"/> reports progress.</summary>
    public static EvalResult Evaluate(AnomalyDetector detector, IReadOnlyList<Trace> normal, IReadOnlyList<Trace> attack,
        IProgress<long>? syscallsDone = null)
    {
        if (normal.Count == 0 || attack.Count == 0)
            throw new ArgumentException($"evaluation needs normal and attack traces (got {normal.Count} normal, {attack.Count} attack)");
        var n = detector.ScoreTraces([.. normal.Select(t => t.Syscalls)], syscallsDone);
        var a = detector.ScoreTraces([.. attack.Select(t => t.Syscalls)], syscallsDone);
        double[] nRaw = [.. n.Select(s => s.Raw)], aRaw = [.. a.Select(s => s.Raw)];
        return new EvalResult(detector.Name, normal.Count, attack.Count,
            RocMetrics.Auroc(nRaw, aRaw),
            RocMetrics.DetectionRate(nRaw, aRaw, 0.01), RocMetrics.DetectionRate(nRaw, aRaw, 0.05), RocMetrics.DetectionRate(nRaw, aRaw, 0.10),
            n.Count(s => s.Score > ScoreCalibration.AlarmScore) / (double)n.Length,
            a.Count(s => s.Score > ScoreCalibration.AlarmScore) / (double)a.Length,
            RocMetrics.Auroc(RunMax(normal, nRaw), RunMax(attack, aRaw)),
            nRaw, aRaw);
    }

    private static double[] RunMax(IReadOnlyList<Trace> traces, double[] raw) =>
        [.. traces.Select((t, i) => (t.Group, Raw: raw[i])).GroupBy(x => x.Group).Select(g => g.Max(x => x.Raw))];

    /// <summary>A fixed-width table of results, one row per model.</summary>
    public static string Table(IEnumerable<EvalResult> results)
    {
        var w = new StringWriter();
        w.WriteLine($"{"model",-6} {"normal",7} {"attack",7} {"AUROC",6} {"DR@1%",6} {"DR@5%",6} {"DR@10%",6} {"FA>800",7} {"DR>800",7} {"runAUROC",8}");
        foreach (var r in results)
            w.WriteLine($"{r.Algo,-6} {r.Normal,7} {r.Attack,7} {r.Auroc,6:0.000} {r.DetectionAt1,6:P0} {r.DetectionAt5,6:P0} {r.DetectionAt10,6:P0} {r.FalseAlarmsAbove800,7:P1} {r.DetectionAbove800,7:P0} {r.RunAuroc,8:0.000}");
        return w.ToString();
    }
}
