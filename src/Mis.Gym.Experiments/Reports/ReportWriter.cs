using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Mis.Gym.Experiments;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Reports;

/// <summary>The files a report consists of.</summary>
/// <param name="Summary">summary.json.</param>
/// <param name="Markdown">report.md (figures linked from figures/).</param>
/// <param name="Html">report.html (self-contained: figures embedded as base64 PNG).</param>
/// <param name="Figures">The figure files.</param>
public sealed record ReportFiles(string Summary, string Markdown, string Html, IReadOnlyList<string> Figures);

/// <summary>
/// Builds a run directory's report from its files alone (<c>mis report RUN_DIR</c> does only this):
/// <c>summary.json</c>, <c>report.md</c>, a self-contained <c>report.html</c> and <c>figures/*.png</c>.
/// Statistics are over seeds: interquartile means with bootstrap intervals, the time to stop violating as censored data (<see cref="KaplanMeier"/>).
/// </summary>
public static class ReportWriter
{
    /// <summary>Reads the run directory and writes the report into it.</summary>
    /// <remarks>
    /// <c>summary.json</c> depends on the run files alone: no time, no path of the run directory,
    /// keys in a fixed order, seeded bootstrap. So shards merged by <c>mis report</c> give the bytes
    /// a one-machine run of the same sweep gives; the time the report was made is in report.md
    /// and report.html only.
    /// </remarks>
    /// <param name="runDirectory">The run directory.</param>
    /// <param name="generated">When the report is made (default: now), for report.md and report.html.</param>
    /// <exception cref="InvalidDataException">Not a run directory, or a malformed file (the message names it).</exception>
    public static ReportFiles Build(string runDirectory, DateTimeOffset? generated = null) => Build(RunAnalysis.Load(runDirectory), generated);

    /// <summary>Writes the report of an analysis already loaded (<see cref="RunAnalysis.Load"/>) into its run directory.</summary>
    /// <param name="analysis">The run directory, read.</param>
    /// <param name="generated">When the report is made (default: now), for report.md and report.html.</param>
    public static ReportFiles Build(RunAnalysis analysis, DateTimeOffset? generated = null)
    {
        string when = (generated ?? DateTimeOffset.UtcNow).ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture);
        string dir = analysis.Directory;
        var figures = ReportFigures.Draw(analysis, Path.Combine(dir, "figures"));
        var answer = Answer(analysis);

        string summary = Path.Combine(dir, "summary.json");
        RunFiles.WriteJsonAtomic(summary, Summary(analysis, answer));
        string markdown = Path.Combine(dir, "report.md");
        File.WriteAllText(markdown, Markdown(analysis, answer, figures, when));
        string html = Path.Combine(dir, "report.html");
        File.WriteAllText(html, Html(analysis, answer, figures, Path.Combine(dir, "figures"), when));
        return new ReportFiles(summary, markdown, html, figures.Select(f => Path.Combine(dir, "figures", f.File)).ToList());
    }

    /// <summary>
    /// The answer in sentences with numbers: for every config, the time until violations fell
    /// below the threshold (Kaplan–Meier median with its interval, seeds that never stopped
    /// censored) and the final success rate, violations and return (IQM with bootstrap interval);
    /// which config stopped fastest and whether the log-rank test separates it from the next; for
    /// a feedback-mode sweep, slowdown against plain denial and against kill, with the probability
    /// that slowdown ends with the higher return.
    /// </summary>
    public static IReadOnlyList<string> Answer(RunAnalysis analysis)
    {
        var s = analysis.Settings;
        var configs = analysis.Configs.Where(c => c.WithData.Any()).ToList();
        if (configs.Count == 0)
            return ["No episode has finished yet: nothing to report."];
        var lines = new List<string>();
        string measure = $"episodes until the {s.Window}-episode moving average of violations per episode fell below {F(s.ViolationThreshold)} for good";
        foreach (var c in configs)
        {
            var km = c.TimeToStop;
            string stop = km.Events == 0
                ? $"no seed got there in {c.WithData.Min(r => r.Episodes.Count)} episodes (0 of {km.Count} seeds)"
                : MedianTime(km);
            lines.Add($"**{c.Label}**: {measure}: {stop}; final success rate {Pct(c.FinalSuccess)}, final violations per episode " +
                      $"{c.FinalViolations.Describe()}, final return {c.FinalReturn.Describe()}.");
        }
        if (configs.Any(c => c.Kills.Mean > 0 || c.SlowdownTerm.Mean > 0))
            lines.Add("DEFCON feedback met: " + string.Join("; ", configs.Select(FeedbackMet)) + ".");
        lines.AddRange(AnomalyLines(configs, s));
        var ranked = configs.Where(c => c.TimeToStop.Median is not null).OrderBy(c => c.TimeToStop.Median).ToList();
        if (ranked.Count == 0)
        {
            lines.Add($"Answer: in no configuration did half the seeds stop violating (violations per episode staying below {F(s.ViolationThreshold)}); " +
                      "the comparison needs a learning agent and more episodes.");
            return lines;
        }
        var best = ranked[0];
        double bestMedian = best.TimeToStop.Median!.Value;
        var tied = ranked.Where(c => c.TimeToStop.Median == bestMedian).ToList();
        if (tied.Count > 1)
            lines.Add($"Answer: no configuration was faster: {string.Join(", ", tied.Select(c => $"**{c.Label}**"))} tie at a median of {F(bestMedian)} episodes.");
        else
        {
            string verdict = ranked.Count == 1
                ? "it is the only configuration in which at least half the seeds stopped violating"
                : $"against the next, {ranked[1].Label} (median {F(ranked[1].TimeToStop.Median!.Value)} episodes), {LogRankWords(Find(analysis, best, ranked[1])?.TimeToStop)}";
            lines.Add($"Answer: agents stopped violating fastest under **{best.Label}**, after a median of {F(bestMedian)} episodes; {verdict}.");
        }
        if (configs.Count > 2 && analysis.TimeToStopTest is { } all)
            lines.Add($"Across all {configs.Count} configurations, the log-rank test of the times to stop: {LogRankWords(all)}.");

        ConfigAnalysis? Mode(FeedbackMode mode) => configs.FirstOrDefault(c => c.Config["feedback"]?.GetValue<string>() == mode.Word() && c.Label == mode.Word());
        if (Mode(FeedbackMode.DenySlowdown) is { } slow)
        {
            foreach (var other in new[] { Mode(FeedbackMode.Deny), Mode(FeedbackMode.DenySlowdownKill) })
            {
                if (other is null || Find(analysis, slow, other) is not { } comparison)
                    continue;
                var (p, low, high) = comparison.X == slow ? comparison.ReturnImprovement : Flip(comparison.ReturnImprovement);
                string speed = (slow.TimeToStop.Median, other.TimeToStop.Median) switch
                {
                    ({ } a, { } b) when a < b => $"{F(b - a)} episodes faster in median than",
                    ({ } a, { } b) when a > b => $"{F(a - b)} episodes slower in median than",
                    ({ }, { }) => "as fast in median as",
                    ({ }, null) => "faster than (its median was not reached)",
                    (null, { }) => "slower than (slowdown's median was not reached)",
                    _ => "no faster than (neither median was reached)",
                };
                lines.Add($"Slowdown feedback (deny+slowdown) taught agents to stop violating {speed} {other.Label} " +
                          $"({MedianOrNot(slow.TimeToStop)} vs {MedianOrNot(other.TimeToStop)}; {LogRankWords(comparison.TimeToStop)}); " +
                          $"the probability that a deny+slowdown seed ends with a higher final return than a {other.Label} seed is {F(p)} (95% CI {F(low)} to {F(high)}; 0.5 is a tie), " +
                          $"final success rate {Pct(slow.FinalSuccess)} vs {Pct(other.FinalSuccess)}.");
            }
        }
        return lines;
    }

    // What the anomaly scorer did in each config it scored, and, where it killed, the answer to
    // whether it stopped the violating shortcut without killing honest episodes.
    private static IEnumerable<string> AnomalyLines(List<ConfigAnalysis> configs, ReportSettings s)
    {
        foreach (var c in configs.Where(c => c.Anomaly is not null))
        {
            var a = c.Anomaly!;
            var (kill, falseKill) = a.Kills ? ("killed", "false-kill rate") : ("would have killed (it only scored)", "false-alarm rate");
            yield return $"Anomaly scorer under **{c.Label}**: it {kill} {a.ViolatingFlagged} of {a.Violating} violating episodes " +
                         $"(per seed {PctShort(a.ViolatingFlaggedRate)}) and {a.HonestFlagged} of {a.Honest} honest ones ({falseKill} {Pct(a.FalseKillRate)}).";
        }
        foreach (var c in configs.Where(c => c.Anomaly is { Kills: true }))
        {
            var a = c.Anomaly!;
            string stopped = c.TimeToStop.Median is { } m
                ? $"it stopped the violating shortcut: violations per episode fell below {F(s.ViolationThreshold)} for good after a median of {F(m)} episodes"
                : $"it did not stop the violating shortcut: violations per episode did not fall below {F(s.ViolationThreshold)} for good in half the seeds";
            string honest = a.HonestFlagged == 0
                ? $"and killed none of the {a.Honest} honest episodes"
                : $"and killed {a.HonestFlagged} of the {a.Honest} honest episodes (false-kill rate {Pct(a.FalseKillRate)})";
            yield return $"Answer (anomaly scorer, **{c.Label}**): {stopped} (final violations per episode {c.FinalViolations.Describe()}), {honest}.";
        }
    }

    // What the DEFCON response did to a config's episodes: kills and the reward slowdown cost.
    private static string FeedbackMet(ConfigAnalysis c)
    {
        int episodes = c.WithData.Sum(r => r.Episodes.Count);
        int kills = c.WithData.Sum(r => r.Episodes.Count(e => e.Killed));
        if (kills == 0 && c.SlowdownTerm.Mean == 0)
            return $"under **{c.Label}** no episode was killed or slowed";
        return $"under **{c.Label}** the workload was killed in {kills} of {episodes} episodes (per run {c.Kills.Short()}) " +
               $"and slowdown cost {c.SlowdownTerm.Short("0.###")} reward per episode";
    }

    private static Comparison? Find(RunAnalysis a, ConfigAnalysis x, ConfigAnalysis y) =>
        a.Comparisons.FirstOrDefault(c => (c.X == x && c.Y == y) || (c.X == y && c.Y == x));

    private static (double, double, double) Flip((double Point, double Low, double High) p) => (1 - p.Point, 1 - p.High, 1 - p.Low);

    private static string MedianTime(KaplanMeier km)
    {
        string seeds = $"{km.Events} of {km.Count} seeds stopped{(km.Events < km.Count ? ", the others censored at their last episode" : "")}";
        return km.Median is { } m
            ? $"median {F(m)} episodes (Kaplan–Meier, 95% CI {(km.MedianInterval.Low is { } lo ? F(lo) : "not reached")} to {(km.MedianInterval.High is { } hi ? F(hi) : "not reached")}; {seeds})"
            : $"median not reached ({seeds}: fewer than half)";
    }

    private static string MedianOrNot(KaplanMeier km) => km.Median is { } m ? $"median {F(m)}" : "median not reached";

    private static string LogRankWords(LogRankResult? test) => test is { } t
        ? $"log-rank χ² = {F(t.ChiSquare)} on {t.DegreesOfFreedom} df, p = {P(t.P)}: {(t.P < 0.05 ? "different at the 5% level" : "not different at the 5% level")}"
        : "no log-rank test (no seed stopped)";

    private static JsonObject Summary(RunAnalysis a, IReadOnlyList<string> answer)
    {
        static JsonObject E(Estimate e) => new()
        {
            ["iqm"] = Finite(e.Iqm),
            ["ci95_low"] = Finite(e.Low),
            ["ci95_high"] = Finite(e.High),
            ["mean"] = Finite(e.Mean),
            ["n"] = e.Count,
        };
        static JsonObject? Test(LogRankResult? t) => t is { } r
            ? new JsonObject { ["chi_square"] = Finite(r.ChiSquare), ["df"] = r.DegreesOfFreedom, ["p"] = Finite(r.P) }
            : null;
        var configs = new JsonArray();
        foreach (var c in a.Configs)
        {
            var seeds = new JsonArray();
            var withData = c.WithData.ToList();
            foreach (var r in c.Runs)
            {
                var seed = new JsonObject
                {
                    ["seed"] = r.Seed,
                    ["status"] = r.Status,
                    ["episodes"] = r.Episodes.Count,
                };
                if (r.Error is not null)
                    seed["error"] = r.Error;
                if (r.Episodes.Count > 0)
                {
                    int index = withData.IndexOf(r);
                    seed["episodes_to_stop_violating"] = c.EpisodesToStop[index];
                    seed["final_return"] = c.FinalReturns[index];
                    seed["mean_return"] = r.Episodes.Average(x => x.Return);
                    seed["kills"] = r.Episodes.Count(x => x.Killed);
                    seed["successes"] = r.Episodes.Count(x => x.Success);
                }
                seeds.Add(seed);
            }
            var km = c.TimeToStop;
            configs.Add(new JsonObject
            {
                ["directory"] = c.DirectoryName,
                ["label"] = c.Label,
                ["config"] = c.Config.DeepClone(),
                ["time_to_stop_violating"] = new JsonObject
                {
                    ["median"] = km.Median,
                    ["median_ci95_low"] = km.MedianInterval.Low,
                    ["median_ci95_high"] = km.MedianInterval.High,
                    ["seeds"] = km.Count,
                    ["stopped"] = km.Events,
                    ["censored"] = km.Count - km.Events,
                    ["kaplan_meier"] = new JsonArray(km.Steps.Select(step => (JsonNode)new JsonObject
                    {
                        ["episode"] = step.Time,
                        ["at_risk"] = step.AtRisk,
                        ["stopped"] = step.Events,
                        ["still_violating"] = step.Survival,
                        ["ci95_low"] = step.Low,
                        ["ci95_high"] = step.High,
                    }).ToArray()),
                },
                ["final_success_rate"] = E(c.FinalSuccess),
                ["final_violations_per_episode"] = E(c.FinalViolations),
                ["final_return"] = E(c.FinalReturn),
                ["final_kill_rate"] = E(c.FinalKillRate),
                ["mean_return"] = E(c.MeanReturn),
                ["reward_terms_per_episode"] = new JsonObject
                {
                    ["task"] = E(c.TaskTerm),
                    ["slowdown"] = E(c.SlowdownTerm),
                    ["denial"] = E(c.DenialTerm),
                    ["kill"] = E(c.KillTerm),
                    ["anomaly"] = E(c.AnomalyTerm),
                },
                ["kills_per_run"] = E(c.Kills),
                ["anomaly"] = c.Anomaly is not { } an ? null : new JsonObject
                {
                    ["kills"] = an.Kills,
                    ["threshold"] = an.Threshold,
                    ["honest_episodes"] = an.Honest,
                    ["honest_flagged"] = an.HonestFlagged,
                    ["violating_episodes"] = an.Violating,
                    ["violating_flagged"] = an.ViolatingFlagged,
                    ["false_kill_rate"] = E(an.FalseKillRate),
                    ["violating_flagged_rate"] = E(an.ViolatingFlaggedRate),
                },
                ["seeds"] = seeds,
            });
        }
        var comparisons = new JsonArray(a.Comparisons.Select(c => (JsonNode)new JsonObject
        {
            ["x"] = c.X.Label,
            ["y"] = c.Y.Label,
            ["probability_x_final_return_higher"] = new JsonObject
            {
                ["point"] = Finite(c.ReturnImprovement.Point),
                ["ci95_low"] = Finite(c.ReturnImprovement.Low),
                ["ci95_high"] = Finite(c.ReturnImprovement.High),
            },
            ["time_to_stop_logrank"] = Test(c.TimeToStop),
        }).ToArray());
        return new JsonObject
        {
            ["experiment"] = a.Name,
            ["question"] = a.Question,
            ["settings"] = new JsonObject
            {
                ["violation_threshold"] = a.Settings.ViolationThreshold,
                ["window"] = a.Settings.Window,
                ["final_fraction"] = a.Settings.FinalFraction,
                ["interval"] = IntervalMethod,
                ["time_to_stop"] = TimeToStopMethod,
            },
            ["answer"] = new JsonArray(answer.Select(l => (JsonNode)JsonValue.Create(l.Replace("**", "", StringComparison.Ordinal))).ToArray()),
            ["configs"] = configs,
            ["comparisons"] = comparisons,
            ["time_to_stop_logrank_all"] = Test(a.TimeToStopTest),
            ["complete"] = a.IsComplete,
            ["runs_not_complete"] = new JsonArray(a.Incomplete.Select(r =>
            {
                var run = new JsonObject { ["config"] = r.Config, ["seed"] = r.Seed, ["status"] = r.Status, ["episodes"] = r.Episodes };
                if (r.Error is not null)
                    run["error"] = r.Error;
                if (r.Shard is not null)
                    run["shard"] = r.Shard;
                return (JsonNode)run;
            }).ToArray()),
        };
    }

    private const string IntervalMethod =
        "interquartile mean (IQM) over seeds with a 95% percentile bootstrap interval (10,000 resamples of seeds, seeded; rliable's method for one task)";

    private const string TimeToStopMethod =
        "Kaplan-Meier over seeds, a seed that never stopped censored at its last episode; median with its 95% interval (log transform, Brookmeyer-Crowley); log-rank tests";

    private const string StatisticsNote =
        "Per config, numbers over seeds are the interquartile mean (IQM: the mean of the middle half of the seeds) with a 95% percentile bootstrap interval in brackets " +
        "(Agarwal et al. 2021, as rliable computes it for one task); an interval stays inside what the metric can take. The time to stop violating is censored data: " +
        "a seed that never stopped counts as still violating at its last episode (Kaplan-Meier), and two configs' times are compared with the log-rank test. " +
        "P(X > Y) is the probability that a seed of X ends with a higher final return than a seed of Y (ties count one half).";

    // The results and comparison tables, once for Markdown and HTML.
    private static (string[] Header, List<string[]> Rows) ResultsTable(RunAnalysis a)
    {
        string[] header = ["config", "backend", "feedback", "agent", "seeds", "episodes", "median episodes to stop violating [95% CI]", "seeds stopped",
                           "final success rate", "final violations/episode", "final return", "kills per run"];
        var rows = a.Configs.Select(c => new[]
        {
            c.Label, c.Config["backend"]?.ToString() ?? "", c.Config["feedback"]?.ToString() ?? "", c.Config["algorithm"]?.ToString() ?? "",
            $"{c.WithData.Count()}/{c.Runs.Count}", (c.WithData.Any() ? c.WithData.Min(r => r.Episodes.Count) : 0).ToString(CultureInfo.InvariantCulture),
            MedianCell(c.TimeToStop), $"{c.TimeToStop.Events}/{c.TimeToStop.Count}",
            PctShort(c.FinalSuccess), c.FinalViolations.Short(), c.FinalReturn.Short(), c.Kills.Short(),
        }).ToList();
        return (header, rows);
    }

    private static (string[] Header, List<string[]> Rows) ComparisonTable(RunAnalysis a)
    {
        string[] header = ["X", "Y", "P(X's final return > Y's) [95% CI]", "time to stop: log-rank χ² (p)"];
        var rows = a.Comparisons.Select(c => new[]
        {
            c.X.Label, c.Y.Label, $"{F(c.ReturnImprovement.Point)} [{F(c.ReturnImprovement.Low)}, {F(c.ReturnImprovement.High)}]",
            c.TimeToStop is { } t ? $"{F(t.ChiSquare)} (p = {P(t.P)})" : "n/a (no seed stopped)",
        }).ToList();
        return (header, rows);
    }

    private static string MedianCell(KaplanMeier km) => km.Median is { } m
        ? $"{F(m)} [{(km.MedianInterval.Low is { } lo ? F(lo) : "–")}, {(km.MedianInterval.High is { } hi ? F(hi) : "not reached")}]"
        : km.Count == 0 ? "n/a" : "not reached";

    private static string Markdown(RunAnalysis a, IReadOnlyList<string> answer, IReadOnlyList<Figure> figures, string generated)
    {
        static void Table(StringBuilder w, (string[] Header, List<string[]> Rows) table)
        {
            w.AppendLine($"| {string.Join(" | ", table.Header)} |");
            w.AppendLine($"|{string.Concat(table.Header.Select(_ => "---|"))}");
            foreach (var row in table.Rows)
                w.AppendLine($"| {string.Join(" | ", row)} |");
            w.AppendLine();
        }
        var w = new StringBuilder();
        w.AppendLine($"# Experiment report: {a.Name}").AppendLine();
        if (a.Description.Length > 0)
            w.AppendLine(a.Description).AppendLine();
        if (a.Question.Length > 0)
            w.AppendLine($"**Question.** {a.Question}").AppendLine();
        w.AppendLine("## Answer").AppendLine();
        foreach (var line in answer)
            w.AppendLine($"- {line}");
        w.AppendLine();
        w.AppendLine($"{StatisticsNote} \"Final\" is the mean of the last {F(a.Settings.FinalFraction * 100)}% of each run's episodes.").AppendLine();
        w.AppendLine("## Results").AppendLine();
        Table(w, ResultsTable(a));
        if (a.Comparisons.Count > 0)
        {
            w.AppendLine("### Comparisons").AppendLine();
            Table(w, ComparisonTable(a));
        }
        if (!a.IsComplete)
        {
            w.AppendLine("### Runs not complete").AppendLine();
            w.AppendLine($"{a.Incomplete.Count} of {a.RunCount} runs are not complete; the numbers above are over what is on disk.").AppendLine();
            foreach (var line in IncompleteLines(a))
                w.AppendLine($"- {line}");
            w.AppendLine();
        }
        w.AppendLine("## Figures").AppendLine();
        foreach (var f in figures)
            w.AppendLine($"### {f.Title}").AppendLine().AppendLine($"![{f.Title}](figures/{f.File})").AppendLine().AppendLine(f.Caption).AppendLine();
        w.AppendLine("## Files").AppendLine();
        w.AppendLine("Per config and seed (`CONFIG/seed-N/`): `trajectory.csv` and `trajectory.jsonl` (every step), `episodes.csv` (one row per episode), " +
                     "`status.json`, `checkpoint.json`; TensorBoard event files per config and seed in `tensorboard/` (`tensorboard --logdir RUN_DIR`). `summary.json` holds these numbers; `mis report RUN_DIR` rebuilds this report from the files.");
        w.AppendLine().AppendLine($"Generated {generated}.");
        return w.ToString();
    }

    private static string Html(RunAnalysis a, IReadOnlyList<string> answer, IReadOnlyList<Figure> figures, string figuresDirectory, string generated)
    {
        static string E(string text) => WebUtility.HtmlEncode(text);
        static string Bold(string text) => E(text).Replace("**", "\u0001", StringComparison.Ordinal) is var t
            ? string.Join("", t.Split('\u0001').Select((part, i) => i % 2 == 1 ? $"<strong>{part}</strong>" : part)) : text;
        static void Table(StringBuilder w, (string[] Header, List<string[]> Rows) table)
        {
            w.Append("<table><tr>").Append(string.Concat(table.Header.Select(h => $"<th>{E(h)}</th>"))).AppendLine("</tr>");
            foreach (var row in table.Rows)
                w.Append("<tr>").Append(string.Concat(row.Select(cell => $"<td>{E(cell)}</td>"))).AppendLine("</tr>");
            w.AppendLine("</table>");
        }
        var w = new StringBuilder();
        w.AppendLine("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">");
        w.AppendLine($"<title>Experiment report: {E(a.Name)}</title>");
        w.AppendLine("<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}" +
                     "table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left}" +
                     "th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}figure{margin:1.5em 0}figcaption{color:#555;font-size:.9em}</style>");
        w.AppendLine("</head><body>");
        w.AppendLine($"<h1>Experiment report: {E(a.Name)}</h1>");
        if (a.Description.Length > 0)
            w.AppendLine($"<p>{E(a.Description)}</p>");
        if (a.Question.Length > 0)
            w.AppendLine($"<p><strong>Question.</strong> {E(a.Question)}</p>");
        w.AppendLine("<h2>Answer</h2><ul>");
        foreach (var line in answer)
            w.AppendLine($"<li>{Bold(line)}</li>");
        w.AppendLine("</ul>");
        w.AppendLine($"<p>{E(StatisticsNote)} &ldquo;Final&rdquo; is the mean of the last {F(a.Settings.FinalFraction * 100)}% of each run's episodes.</p>");
        w.AppendLine("<h2>Results</h2>");
        Table(w, ResultsTable(a));
        if (a.Comparisons.Count > 0)
        {
            w.AppendLine("<h3>Comparisons</h3>");
            Table(w, ComparisonTable(a));
        }
        if (!a.IsComplete)
        {
            w.AppendLine($"<h3>Runs not complete</h3><p>{a.Incomplete.Count} of {a.RunCount} runs are not complete; the numbers above are over what is on disk.</p><ul>");
            foreach (var line in IncompleteLines(a))
                w.AppendLine($"<li>{E(line)}</li>");
            w.AppendLine("</ul>");
        }
        w.AppendLine("<h2>Figures</h2>");
        foreach (var f in figures)
        {
            string data = Convert.ToBase64String(File.ReadAllBytes(Path.Combine(figuresDirectory, f.File)));
            w.AppendLine($"<figure><img alt=\"{E(f.Title)}\" src=\"data:image/png;base64,{data}\"><figcaption><strong>{E(f.Title)}.</strong> {E(f.Caption)}</figcaption></figure>");
        }
        w.AppendLine($"<p><small>Generated {E(generated)}.</small></p>");
        w.AppendLine("</body></html>");
        return w.ToString();
    }

    /// <summary>
    /// One line per run that is not complete (with its shard when known), then one per shard whose
    /// state file says it did not finish: what <c>mis report</c> prints and report.md lists.
    /// </summary>
    public static IReadOnlyList<string> IncompleteLines(RunAnalysis a)
    {
        var lines = a.Incomplete.Select(r =>
            $"{r.Config} / seed {r.Seed}: {r.Status}{(r.Error is null ? "" : $": {r.Error}")} ({r.Episodes} episodes on disk)" +
            (r.Shard is null ? "" : $", shard {r.Shard}")).ToList();
        foreach (var shard in a.Shards.Where(s => s.Status != "finished"))
            lines.Add($"shard {shard.Shard}: {shard.Status} on {shard.Host}, last update {shard.Updated}" +
                      (shard.Status == "running" ? " (if it is not running any more, it was killed: rerun it with the same --shard to resume)" : " (rerun it with the same --shard to resume)"));
        var shardCounts = a.Shards.Select(s => s.Shard.Count).Distinct().ToList();
        if (shardCounts.Count == 1)
        {
            var missing = Enumerable.Range(0, shardCounts[0]).Where(i => a.Shards.All(s => s.Shard.Index != i)).ToList();
            if (missing.Count > 0)
                lines.Add($"shard(s) {string.Join(", ", missing.Select(i => $"{i}/{shardCounts[0]}"))}: never started");
        }
        return lines;
    }

    private static string PctShort(Estimate e) => e.Count switch
    {
        0 => "n/a",
        1 => string.Create(CultureInfo.InvariantCulture, $"{e.Iqm * 100:0.#}%"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{e.Iqm * 100:0.#}% [{e.Low * 100:0.#}, {e.High * 100:0.#}]"),
    };

    private static string Pct(Estimate e) => e.Count switch
    {
        0 => "n/a",
        1 => string.Create(CultureInfo.InvariantCulture, $"{e.Iqm * 100:0.#}% (one seed)"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{e.Iqm * 100:0.#}% (95% CI {e.Low * 100:0.#}% to {e.High * 100:0.#}%, n = {e.Count})"),
    };

    private static string P(double p) => p < 0.001 ? p.ToString("0.0e0", CultureInfo.InvariantCulture) : p.ToString("0.###", CultureInfo.InvariantCulture);

    private static string F(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);

    private static double? Finite(double value) => double.IsFinite(value) ? value : null;
}
