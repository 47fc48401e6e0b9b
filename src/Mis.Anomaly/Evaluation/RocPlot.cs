namespace Mis.Anomaly.Evaluation;

/// <summary>Draws ROC curves to a PNG with ScottPlot.</summary>
public static class RocPlot
{
    /// <summary>One curve per result, the chance diagonal, AUROC in the legend.</summary>
    public static void Save(string path, IReadOnlyList<EvalResult> results, string title = "Syscall anomaly detection: ROC")
    {
        var plot = new ScottPlot.Plot();
        var chance = plot.Add.Line(0, 0, 1, 1);
        chance.LinePattern = ScottPlot.LinePattern.Dashed;
        chance.Color = ScottPlot.Colors.Gray;
        chance.LegendText = "chance";
        foreach (var r in results)
        {
            var (fpr, tpr) = RocMetrics.Curve(r.NormalRaw, r.AttackRaw);
            var curve = plot.Add.Scatter(fpr, tpr);
            curve.MarkerSize = 0;
            curve.LineWidth = 2;
            curve.LegendText = $"{r.Algo} (AUROC {r.Auroc:0.000})";
        }
        plot.Title(title);
        plot.XLabel("false-alarm rate (normal traces)");
        plot.YLabel("detection rate (attack traces)");
        plot.Axes.SetLimits(0, 1, 0, 1.02);
        plot.ShowLegend(ScottPlot.Alignment.LowerRight);
        if (Path.GetDirectoryName(Path.GetFullPath(path)) is { } dir)
            Directory.CreateDirectory(dir);
        plot.SavePng(path, 640, 480);
    }
}
