using Mis.Gym.Experiments;
using Mis.Gym.Scenarios;
using ScottPlot;

namespace Mis.Gym.Reports;

/// <summary>A figure of the report: its file name under <c>figures/</c>, a title and a caption.</summary>
public sealed record Figure(string File, string Title, string Caption);

/// <summary>Draws the report's figures with ScottPlot into <c>RUN_DIR/figures/*.png</c>.</summary>
public static class ReportFigures
{
    private const int Width = 900;
    private const int Height = 480;

    /// <summary>Draws every figure; returns them in report order.</summary>
    internal static IReadOnlyList<Figure> Draw(RunAnalysis analysis, string figuresDirectory)
    {
        Directory.CreateDirectory(figuresDirectory);
        var figures = new List<Figure>();
        var palette = new ScottPlot.Palettes.Category10();
        int window = analysis.Settings.Window;

        figures.Add(CurveFigure(analysis, figuresDirectory, palette, "learning-return.png", "Learning curve: return",
            "return per episode", c => c.ReturnCurve,
            $"Episode return, moving average over {window} episodes, IQM over seeds with 95% bootstrap band."));
        figures.Add(CurveFigure(analysis, figuresDirectory, palette, "learning-violations.png", "Learning curve: violations per episode",
            "violations per episode", c => c.ViolationCurve,
            $"Violations per episode (denied operations; in feedback mode none, the recorded ones), moving average over {window} episodes, " +
            $"IQM over seeds with 95% bootstrap band. The dashed line is the threshold {analysis.Settings.ViolationThreshold:0.###}.",
            analysis.Settings.ViolationThreshold));
        figures.Add(CurveFigure(analysis, figuresDirectory, palette, "learning-success.png", "Learning curve: success rate",
            "success rate", c => c.SuccessCurve,
            $"Share of episodes ending in an accepted submission, moving average over {window} episodes, IQM over seeds with 95% bootstrap band."));
        figures.Add(CurveFigure(analysis, figuresDirectory, palette, "kills.png", "Kills: kill rate per episode",
            "killed episodes (share)", c => c.KillCurve,
            $"Share of episodes in which the workload was killed at DEFCON 1, moving average over {window} episodes, IQM over seeds with 95% bootstrap band."));
        figures.Add(RewardTerms(analysis, figuresDirectory, palette));
        figures.Add(TimeToStop(analysis, figuresDirectory, palette));
        figures.Add(PerformanceProfile(analysis, figuresDirectory, palette));
        if (analysis.Configs.Any(c => c.Anomaly is not null))
        {
            figures.Add(CurveFigure(analysis, figuresDirectory, palette, "anomaly-kills.png", "Anomaly scorer: kill rate per episode",
                "episodes killed by the scorer (share)", c => c.Anomaly?.FlagCurve ?? new Curve([], [], [], []),
                $"Share of episodes the anomaly scorer killed (anomaly-kill) or would have killed (a config it only scored: its score above the threshold), " +
                $"moving average over {window} episodes, IQM over seeds with 95% bootstrap band."));
        }
        foreach (var config in analysis.Configs)
        {
            var run = config.WithData.FirstOrDefault();
            if (run is null)
                continue;
            string trajectory = Path.Combine(run.Directory, RunFiles.Trajectory);
            var defcon = RunFiles.ReadDefcon(trajectory);
            figures.Add(DefconSteps(config, run, defcon, figuresDirectory));
            figures.Add(DefconHeatmap(config, run, defcon, figuresDirectory));
            if (config.Anomaly is not null)
                figures.Add(AnomalySteps(config, run, RunFiles.ReadAnomalyScores(trajectory), figuresDirectory));
        }
        return figures;
    }

    private static Figure CurveFigure(RunAnalysis analysis, string dir, IPalette palette, string file, string title, string yLabel,
        Func<ConfigAnalysis, Curve> select, string caption, double? threshold = null)
    {
        var plot = new Plot();
        for (int i = 0; i < analysis.Configs.Count; i++)
        {
            var curve = select(analysis.Configs[i]);
            if (curve.Episode.Length == 0)
                continue;
            var color = palette.GetColor(i);
            if (analysis.Configs[i].WithData.Count() > 1)
            {
                var band = plot.Add.FillY(curve.Episode, curve.Low, curve.High);
                band.FillColor = color.WithAlpha(0.2);
                band.LineWidth = 0;
            }
            var line = plot.Add.ScatterLine(curve.Episode, curve.Iqm);
            line.Color = color;
            line.LineWidth = 2;
            line.LegendText = analysis.Configs[i].Label;
        }
        if (threshold is { } t)
        {
            var h = plot.Add.HorizontalLine(t);
            h.LinePattern = LinePattern.Dashed;
            h.Color = Colors.Gray;
        }
        plot.Title(title);
        plot.XLabel("episode");
        plot.YLabel(yLabel);
        plot.ShowLegend(Alignment.UpperRight);
        plot.SavePng(Path.Combine(dir, file), Width, Height);
        return new Figure(file, title, caption);
    }

    private static Figure RewardTerms(RunAnalysis analysis, string dir, IPalette palette)
    {
        const string file = "reward-terms.png";
        var plot = new Plot();
        // The anomaly-kill term only where a scorer killed: other experiments keep their four bars.
        bool anomaly = analysis.Configs.Any(c => c.AnomalyTerm.Mean > 0);
        string[] terms = anomaly ? ["task", "-slowdown", "-denial", "-kill", "-anomaly"] : ["task", "-slowdown", "-denial", "-kill"];
        var bars = new List<Bar>();
        var whiskers = new List<(double X, double Low, double High)>();
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        int groups = analysis.Configs.Count;
        for (int g = 0; g < groups; g++)
        {
            var c = analysis.Configs[g];
            Estimate[] estimates = [c.TaskTerm, c.SlowdownTerm, c.DenialTerm, c.KillTerm, c.AnomalyTerm];
            for (int t = 0; t < terms.Length; t++)
            {
                // Penalties are drawn below zero: the sign flips and so do the interval's ends.
                double sign = t == 0 ? 1 : -1;
                var e = estimates[t];
                double position = g * (terms.Length + 1) + t;
                bars.Add(new Bar
                {
                    Position = position,
                    Value = double.IsFinite(e.Iqm) ? sign * e.Iqm : 0,
                    FillColor = palette.GetColor(t),
                });
                if (e.Count > 1 && double.IsFinite(e.Low) && double.IsFinite(e.High))
                    whiskers.Add((position, sign * e.Low, sign * e.High));
            }
            ticks.AddMajor(g * (terms.Length + 1) + (terms.Length - 1) / 2.0, c.Label);
        }
        plot.Add.Bars(bars);
        foreach (var (x, low, high) in whiskers)
        {
            var whisker = plot.Add.Line(x, low, x, high);
            whisker.Color = Colors.Black;
            whisker.LineWidth = 1.5f;
        }
        for (int t = 0; t < terms.Length; t++)
        {
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = terms[t], FillColor = palette.GetColor(t) });
        }
        plot.Axes.Bottom.TickGenerator = ticks;
        plot.Title("Reward decomposition: per episode, IQM over seeds");
        plot.YLabel("reward per episode");
        plot.ShowLegend(Alignment.UpperRight);
        plot.SavePng(Path.Combine(dir, file), Width, Height);
        return new Figure(file, "Reward decomposition",
            $"Per-episode reward terms over all episodes (task minus the slowdown, denial{(anomaly ? ", kill and anomaly-kill" : " and kill")} penalties): IQM over seeds with 95% bootstrap intervals as whiskers.");
    }

    private static Figure TimeToStop(RunAnalysis analysis, string dir, IPalette palette)
    {
        const string file = "time-to-stop.png";
        var plot = new Plot();
        for (int i = 0; i < analysis.Configs.Count; i++)
        {
            var config = analysis.Configs[i];
            var km = config.TimeToStop;
            if (km.Count == 0)
                continue;
            // A step curve from (0, 1) through every event time to the last episode any seed reached.
            double end = config.WithData.Max(r => r.Episodes.Count);
            double[] xs = [0, .. km.Steps.Select(s => s.Time), end];
            double[] ys = [1, .. km.Steps.Select(s => s.Survival), km.Steps.Count > 0 ? km.Steps[^1].Survival : 1];
            var color = palette.GetColor(i);
            if (km.Count > 1 && km.Steps.Count > 0)
            {
                double[] low = [1, .. km.Steps.Select(s => s.Low), km.Steps[^1].Low];
                double[] high = [1, .. km.Steps.Select(s => s.High), km.Steps[^1].High];
                var band = plot.Add.FillY(StepXs(xs), StepYs(low), StepYs(high));
                band.FillColor = color.WithAlpha(0.15);
                band.LineWidth = 0;
            }
            var line = plot.Add.Scatter(xs, ys);
            line.ConnectStyle = ConnectStyle.StepHorizontal;
            line.Color = color;
            line.LineWidth = 2;
            line.MarkerSize = 0;
            line.LegendText = $"{config.Label} ({km.Events}/{km.Count} stopped)";
            // Censored seeds: a tick on the curve where each was last seen still violating.
            var censored = config.StopObservations.Where(o => !o.Event).Select(o => o.Time).ToArray();
            if (censored.Length > 0)
            {
                var ticks = plot.Add.ScatterPoints(censored, censored.Select(km.SurvivalAt).ToArray());
                ticks.Color = color;
                ticks.MarkerShape = MarkerShape.VerticalBar;
                ticks.MarkerSize = 12;
            }
        }
        var half = plot.Add.HorizontalLine(0.5);
        half.LinePattern = LinePattern.Dashed;
        half.Color = Colors.Gray;
        plot.Axes.SetLimitsY(-0.02, 1.05);
        plot.Title("Time to stop violating (Kaplan–Meier)");
        plot.XLabel("episode");
        plot.YLabel("share of seeds still violating");
        plot.ShowLegend(Alignment.UpperRight);
        plot.SavePng(Path.Combine(dir, file), Width, Height);
        return new Figure(file, "Time to stop violating",
            $"Kaplan–Meier estimate of the share of seeds still violating (the {analysis.Settings.Window}-episode moving average of violations per episode not yet below " +
            $"{analysis.Settings.ViolationThreshold:0.###} for good) after each episode, with a 95% band; a tick marks a seed that never stopped (censored at its last episode). " +
            "The median time is where a curve crosses the dashed line.");

        // FillY has no step style: double every point so the band follows the curve's steps.
        static double[] StepXs(double[] xs) => xs.SelectMany((x, k) => k + 1 < xs.Length ? new[] { x, xs[k + 1] } : [x]).ToArray();
        static double[] StepYs(double[] ys) => ys.SelectMany((y, k) => k + 1 < ys.Length ? new[] { y, y } : [y]).ToArray();
    }

    private static Figure PerformanceProfile(RunAnalysis analysis, string dir, IPalette palette)
    {
        const string file = "performance-profile.png";
        var scores = analysis.Configs.SelectMany(c => c.FinalReturns).ToList();
        var plot = new Plot();
        if (scores.Count > 0)
        {
            double min = scores.Min(), max = scores.Max();
            double margin = Math.Max(1e-9, (max - min) * 0.05);
            var thresholds = Enumerable.Range(0, 201).Select(k => min - margin + (max - min + 2 * margin) * k / 200).ToArray();
            for (int i = 0; i < analysis.Configs.Count; i++)
            {
                var config = analysis.Configs[i];
                if (config.FinalReturns.Count == 0)
                    continue;
                var (fraction, low, high) = Bootstrap.Profile(config.FinalReturns, thresholds);
                var color = palette.GetColor(i);
                if (config.FinalReturns.Count > 1)
                {
                    var band = plot.Add.FillY(thresholds, low, high);
                    band.FillColor = color.WithAlpha(0.15);
                    band.LineWidth = 0;
                }
                var line = plot.Add.ScatterLine(thresholds, fraction);
                line.Color = color;
                line.LineWidth = 2;
                line.LegendText = config.Label;
            }
        }
        plot.Axes.SetLimitsY(-0.02, 1.05);
        plot.Title("Performance profile: final return");
        plot.XLabel("final return τ");
        plot.YLabel("share of seeds with final return > τ");
        plot.ShowLegend(Alignment.UpperRight);
        plot.SavePng(Path.Combine(dir, file), Width, Height);
        return new Figure(file, "Performance profile",
            $"For each return τ, the share of seeds whose final return (mean of the last {analysis.Settings.FinalFraction * 100:0.#}% of episodes) is above τ, " +
            "with a 95% bootstrap band (Agarwal et al. 2021). A curve that lies above another everywhere is better at every level of return.");
    }

    // The run's feedback mode, which decides what each level does (the level names in the legends).
    private static FeedbackMode FeedbackOf(ConfigAnalysis config)
    {
        string? word = config.Config["feedback"]?.GetValue<string>();
        if (word is null)
            return FeedbackMode.DenySlowdownKill; // an experiment's default
        return Array.IndexOf(FeedbackModes.Words, word) >= 0 ? FeedbackModes.Parse(word)
            : throw new InvalidDataException($"{config.DirectoryName}/{RunFiles.Config}: unknown feedback mode \"{word}\"");
    }

    private static Figure DefconSteps(ConfigAnalysis config, SeedRun run, List<(int Episode, int Step, int Defcon)> defcon, string dir)
    {
        string file = $"defcon-steps-{config.DirectoryName}.png";
        var mode = FeedbackOf(config);
        var byEpisode = defcon.GroupBy(d => d.Episode).ToDictionary(g => g.Key, g => g.OrderBy(d => d.Step).ToList());
        int episodes = run.Episodes.Count;
        // The first episode, the first to reach the run's most severe level (where the ladder ends:
        // a kill, under kill), the middle one and the last.
        int severest = defcon.Count == 0 ? 5 : defcon.Min(d => d.Defcon);
        int firstSeverest = defcon.Where(d => d.Defcon == severest).Select(d => d.Episode).DefaultIfEmpty(0).Min();
        var chosen = new[] { 0, firstSeverest, episodes / 2, episodes - 1 }.Where(e => e >= 0).Distinct().Order().ToList();

        var plot = new Plot();
        // The levels as coloured bands behind the lines, named in the legend, calmest first.
        foreach (int level in DefconPalette.Levels)
        {
            var band = plot.Add.VerticalSpan(level - 0.5, level + 0.5);
            band.FillStyle.Color = DefconPalette.ColorOf(level).WithAlpha(0.35);
            band.LineStyle.Width = 0;
            band.LegendText = DefconPalette.Label(level, mode);
        }
        // The episodes in dark, neutral colours told apart by pattern and marker, so no line takes a level's colour.
        Color[] lineColors = [Colors.Black, Color.FromHex("#1F3A93"), Color.FromHex("#555555"), Color.FromHex("#1F3A93")];
        LinePattern[] patterns = [LinePattern.Solid, LinePattern.Dashed, LinePattern.Solid, LinePattern.Dotted];
        MarkerShape[] markers = [MarkerShape.FilledCircle, MarkerShape.FilledSquare, MarkerShape.FilledTriangleUp, MarkerShape.FilledDiamond];
        for (int i = 0; i < chosen.Count; i++)
        {
            if (!byEpisode.TryGetValue(chosen[i], out var steps))
                continue;
            // Step 0 is the reset (DEFCON 5); step k the level after the k-th action.
            double[] xs = [0, .. steps.Select(s => (double)s.Step + 1)];
            double[] ys = [5, .. steps.Select(s => (double)s.Defcon)];
            var line = plot.Add.Scatter(xs, ys);
            line.ConnectStyle = ConnectStyle.StepHorizontal;
            line.Color = lineColors[i % lineColors.Length];
            line.LinePattern = patterns[i % patterns.Length];
            line.MarkerShape = markers[i % markers.Length];
            line.LineWidth = 2;
            line.MarkerSize = 6;
            bool killed = run.Episodes.Any(e => e.Episode == chosen[i] && e.Killed);
            line.LegendText = $"episode {chosen[i] + 1}{(killed ? " (killed)" : "")}";
        }
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (int level in DefconPalette.Levels)
            ticks.AddMajor(level, level.ToString(System.Globalization.CultureInfo.InvariantCulture));
        plot.Axes.Left.TickGenerator = ticks;
        plot.Axes.SetLimitsY(0.5, 5.5);
        plot.Title($"DEFCON over the steps of an episode: {config.Label}, seed {run.Seed}");
        plot.XLabel("step");
        plot.YLabel("DEFCON level");
        plot.ShowLegend(Edge.Right);
        plot.SavePng(Path.Combine(dir, file), Width + 260, Height);
        return new Figure(file, $"DEFCON over steps: {config.Label}",
            $"DEFCON level after each step of the first episode, the first to reach DEFCON {severest} (the run's most severe level), " +
            $"the middle one and the last of the training run (seed {run.Seed}); the bands are the levels, green calm to dark red alarm.");
    }

    private static Figure AnomalySteps(ConfigAnalysis config, SeedRun run, List<(int Episode, int Step, int? Score)> scores, string dir)
    {
        string file = $"anomaly-steps-{config.DirectoryName}.png";
        var anomaly = config.Anomaly!;
        // The first honest episode, the first violating one, the first the scorer flagged, and the last.
        int? First(Func<EpisodeRecord, bool> which) => run.Episodes.Where(which).Select(e => (int?)e.Episode).FirstOrDefault();
        var chosen = new (int? Episode, string What)[]
        {
            (First(e => e.Violations == 0), "first honest"),
            (First(e => e.Violations > 0), "first violating"),
            (First(e => anomaly.Flagged(e)), anomaly.Kills ? "first killed" : "first above threshold"),
            (run.Episodes.Count - 1, "last"),
        }.Where(c => c.Episode is not null).DistinctBy(c => c.Episode).ToList();
        var byEpisode = scores.Where(s => s.Score is not null).GroupBy(s => s.Episode).ToDictionary(g => g.Key, g => g.OrderBy(s => s.Step).ToList());
        var plot = new Plot();
        LinePattern[] patterns = [LinePattern.Solid, LinePattern.Dashed, LinePattern.Dotted, LinePattern.DenselyDashed];
        var palette = new ScottPlot.Palettes.Category10();
        for (int i = 0; i < chosen.Count; i++)
        {
            if (!byEpisode.TryGetValue(chosen[i].Episode!.Value, out var steps))
                continue;
            // Step 0 is the reset (nothing scored yet); step k the episode's score after the k-th action.
            double[] xs = [0, .. steps.Select(s => (double)s.Step + 1)];
            double[] ys = [0, .. steps.Select(s => (double)s.Score!.Value)];
            var line = plot.Add.Scatter(xs, ys);
            line.ConnectStyle = ConnectStyle.StepHorizontal;
            line.Color = palette.GetColor(i);
            line.LinePattern = patterns[i % patterns.Length];
            line.LineWidth = 2;
            line.MarkerSize = 6;
            var record = run.Episodes[chosen[i].Episode!.Value];
            line.LegendText = $"episode {record.Episode + 1}: {chosen[i].What}{(record.AnomalyKilled ? ", killed" : "")}";
        }
        var threshold = plot.Add.HorizontalLine(anomaly.Threshold);
        threshold.LinePattern = LinePattern.Dashed;
        threshold.Color = Colors.Gray;
        plot.Axes.SetLimitsY(-20, 1020);
        plot.Title($"Anomaly score over the steps of an episode: {config.Label}, seed {run.Seed}");
        plot.XLabel("step");
        plot.YLabel("episode's anomaly score (0–1000)");
        plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(Path.Combine(dir, file), Width, Height);
        return new Figure(file, $"Anomaly score over steps: {config.Label}",
            $"The episode's anomaly score (its highest window so far) after each step of the first honest episode, the first violating one, " +
            $"the first the scorer {(anomaly.Kills ? "killed" : "scored above the threshold")} and the last (seed {run.Seed}); the dashed line is the threshold {anomaly.Threshold}.");
    }

    private static Figure DefconHeatmap(ConfigAnalysis config, SeedRun run, List<(int Episode, int Step, int Defcon)> defcon, string dir)
    {
        string file = $"defcon-heatmap-{config.DirectoryName}.png";
        var mode = FeedbackOf(config);
        int episodes = run.Episodes.Count;
        int steps = Math.Max(1, run.Episodes.Max(e => e.Steps));
        // At most 300 rows: longer runs show every k-th episode.
        int every = Math.Max(1, (int)Math.Ceiling(episodes / 300.0));
        int rows = (episodes + every - 1) / every;
        var cells = new double[rows, steps];
        for (int r = 0; r < rows; r++)
            for (int s = 0; s < steps; s++)
                cells[r, s] = double.NaN;
        foreach (var (episode, step, level) in defcon)
        {
            if (episode % every == 0 && episode / every < rows && step < steps)
                cells[episode / every, step] = level;
        }
        var plot = new Plot();
        var heatmap = plot.Add.Heatmap(cells);
        heatmap.Colormap = DefconPalette.Colormap;
        heatmap.ManualRange = new ScottPlot.Range(DefconPalette.ScaleLow, DefconPalette.ScaleHigh);
        heatmap.FlipVertically = true; // row 0, the first episode, at the bottom
        // Cell centres at x = action number (1..steps) and y = episode number.
        heatmap.Position = new CoordinateRect(1, Math.Max(2, steps), 1, Math.Max(2, 1 + (rows - 1) * every));
        // The colour bar as a legend: one swatch per level, each named.
        var colorBar = plot.Add.ColorBar(heatmap);
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (int level in DefconPalette.Levels)
            ticks.AddMajor(level, DefconPalette.Label(level, mode));
        colorBar.Axis.TickGenerator = ticks;
        plot.Title($"DEFCON heat map: {config.Label}, seed {run.Seed}");
        plot.XLabel("step");
        plot.YLabel(every == 1 ? "episode" : $"episode (1 in {every} shown)");
        plot.SavePng(Path.Combine(dir, file), Width + 260, Height);
        return new Figure(file, $"DEFCON heat map: {config.Label}",
            $"DEFCON level after each action (x) of each episode (y, {(every == 1 ? "every episode" : $"1 episode in {every}")}) " +
            $"of the training run with seed {run.Seed}, green calm to dark red alarm; blank after the episode ended.");
    }
}
