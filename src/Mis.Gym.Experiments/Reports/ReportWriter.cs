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
/// Statistics are over seeds: mean and two-sided 95% Student-t interval.
/// </summary>
public static class ReportWriter
{
    /// <summary>Reads the run directory and writes the report into it.</summary>
    /// <exception cref="InvalidDataException">Not a run directory, or a malformed file (the message names it).</exception>
    public static ReportFiles Build(string runDirectory)
    {
        var analysis = RunAnalysis.Load(runDirectory);
        string dir = analysis.Directory;
        var figures = ReportFigures.Draw(analysis, Path.Combine(dir, "figures"));
        var answer = Answer(analysis);

        string summary = Path.Combine(dir, "summary.json");
        RunFiles.WriteJsonAtomic(summary, Summary(analysis, answer));
        string markdown = Path.Combine(dir, "report.md");
        File.WriteAllText(markdown, Markdown(analysis, answer, figures));
        string html = Path.Combine(dir, "report.html");
        File.WriteAllText(html, Html(analysis, answer, figures, Path.Combine(dir, "figures")));
        return new ReportFiles(summary, markdown, html, figures.Select(f => Path.Combine(dir, "figures", f.File)).ToList());
    }

    /// <summary>
    /// The answer in sentences with numbers: for every config, the episodes until violations fell
    /// below the threshold and the final success rate, with intervals; which was fastest, and
    /// whether the intervals separate it from the next; for a feedback-mode sweep, slowdown
    /// against plain denial and against kill.
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
            int reached = c.EpisodesToStop.Count(e => e is not null);
            int n = c.EpisodesToStop.Count;
            string stop = reached == 0
                ? $"never fell below {F(s.ViolationThreshold)} in {c.WithData.Min(r => r.Episodes.Count)} episodes (0 of {n} seeds)"
                : $"{c.EpisodesToStopInterval.Describe("0.#")} episodes ({reached} of {n} seeds got there{(reached < n ? "; the others count as their episode total, so this is a lower bound" : "")})";
            lines.Add($"**{c.Label}**: {measure}: {stop}; final success rate {Pct(c.FinalSuccess)}, final violations per episode " +
                      $"{c.FinalViolations.Describe("0.##")}, final return {c.FinalReturn.Describe("0.##")}.");
        }
        var ranked = configs.Where(c => c.EpisodesToStop.Any(e => e is not null)).OrderBy(c => c.EpisodesToStopInterval.Mean).ToList();
        if (ranked.Count == 0)
        {
            lines.Add($"Answer: in no configuration did the agents stop violating (violations per episode never fell below {F(s.ViolationThreshold)}); " +
                      "the comparison needs a learning agent and more episodes.");
            return lines;
        }
        var best = ranked[0];
        var tied = ranked.Where(c => c.EpisodesToStopInterval.Mean == best.EpisodesToStopInterval.Mean).ToList();
        if (tied.Count > 1)
        {
            lines.Add($"Answer: no configuration was faster: {string.Join(", ", tied.Select(c => $"**{c.Label}**"))} tie at {F(best.EpisodesToStopInterval.Mean)} episodes on average.");
            return lines;
        }
        string verdict = ranked.Count == 1 ? "it is the only configuration whose agents stopped violating"
            : best.EpisodesToStopInterval.Overlaps(ranked[1].EpisodesToStopInterval)
                ? $"its interval overlaps that of the next, {ranked[1].Label} ({F(ranked[1].EpisodesToStopInterval.Mean)} episodes), so the difference is not significant at 95%"
                : $"its interval does not overlap that of the next, {ranked[1].Label} ({F(ranked[1].EpisodesToStopInterval.Mean)} episodes): the difference is significant at 95%";
        lines.Add($"Answer: agents stopped violating fastest under **{best.Label}**, after {F(best.EpisodesToStopInterval.Mean)} episodes on average; {verdict}.");

        ConfigAnalysis? Mode(FeedbackMode mode) => configs.FirstOrDefault(c => c.Config["feedback"]?.GetValue<string>() == mode.Word() && c.Label == mode.Word());
        if (Mode(FeedbackMode.DenySlowdown) is { } slow)
        {
            foreach (var other in new[] { Mode(FeedbackMode.Deny), Mode(FeedbackMode.DenySlowdownKill) })
            {
                if (other is null)
                    continue;
                double diff = other.EpisodesToStopInterval.Mean - slow.EpisodesToStopInterval.Mean;
                bool significant = !slow.EpisodesToStopInterval.Overlaps(other.EpisodesToStopInterval);
                string faster = diff > 0 ? $"{F(diff)} episodes faster than" : diff < 0 ? $"{F(-diff)} episodes slower than" : "as fast as";
                double cost = slow.FinalSuccess.Mean - other.FinalSuccess.Mean;
                lines.Add($"Slowdown feedback (deny+slowdown) taught agents to stop violating {faster} {other.Label} " +
                          $"({F(slow.EpisodesToStopInterval.Mean)} vs {F(other.EpisodesToStopInterval.Mean)} episodes; {(significant ? "intervals disjoint: significant" : "intervals overlap: not significant")} at 95%), " +
                          $"at a final success rate {(cost >= 0 ? "+" : "")}{F(cost * 100)} points different ({Pct(slow.FinalSuccess)} vs {Pct(other.FinalSuccess)}).");
            }
        }
        return lines;
    }

    private static JsonObject Summary(RunAnalysis a, IReadOnlyList<string> answer)
    {
        static JsonObject I(Interval i) => new()
        {
            ["mean"] = Finite(i.Mean),
            ["ci95_low"] = Finite(i.Low),
            ["ci95_high"] = Finite(i.High),
            ["n"] = i.Count,
        };
        var configs = new JsonArray();
        foreach (var c in a.Configs)
        {
            var seeds = new JsonArray();
            for (int k = 0; k < c.Runs.Count; k++)
            {
                var r = c.Runs[k];
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
                    int index = c.WithData.ToList().IndexOf(r);
                    seed["episodes_to_stop_violating"] = index >= 0 && c.EpisodesToStop[index] is { } e ? e : null;
                    seed["mean_return"] = r.Episodes.Average(x => x.Return);
                    seed["kills"] = r.Episodes.Count(x => x.Killed);
                    seed["successes"] = r.Episodes.Count(x => x.Success);
                }
                seeds.Add(seed);
            }
            configs.Add(new JsonObject
            {
                ["directory"] = c.DirectoryName,
                ["label"] = c.Label,
                ["config"] = c.Config.DeepClone(),
                ["episodes_to_stop_violating"] = I(c.EpisodesToStopInterval),
                ["seeds_that_stopped_violating"] = c.EpisodesToStop.Count(e => e is not null),
                ["final_success_rate"] = I(c.FinalSuccess),
                ["final_violations_per_episode"] = I(c.FinalViolations),
                ["final_return"] = I(c.FinalReturn),
                ["final_kill_rate"] = I(c.FinalKillRate),
                ["mean_return"] = I(c.MeanReturn),
                ["reward_terms_per_episode"] = new JsonObject
                {
                    ["task"] = I(c.TaskTerm),
                    ["slowdown"] = I(c.SlowdownTerm),
                    ["denial"] = I(c.DenialTerm),
                    ["kill"] = I(c.KillTerm),
                },
                ["kills_per_run"] = I(c.Kills),
                ["seeds"] = seeds,
            });
        }
        return new JsonObject
        {
            ["experiment"] = a.Name,
            ["question"] = a.Question,
            ["settings"] = new JsonObject
            {
                ["violation_threshold"] = a.Settings.ViolationThreshold,
                ["window"] = a.Settings.Window,
                ["final_fraction"] = a.Settings.FinalFraction,
                ["interval"] = "mean over seeds, two-sided 95% Student-t",
            },
            ["answer"] = new JsonArray(answer.Select(l => (JsonNode)JsonValue.Create(l.Replace("**", "", StringComparison.Ordinal))).ToArray()),
            ["configs"] = configs,
            ["generated"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
        };
    }

    private static string Markdown(RunAnalysis a, IReadOnlyList<string> answer, IReadOnlyList<Figure> figures)
    {
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
        w.AppendLine($"Intervals are two-sided 95% Student-t intervals over seeds. \"Final\" is the mean of the last {F(a.Settings.FinalFraction * 100)}% of each run's episodes.").AppendLine();
        w.AppendLine("## Results").AppendLine();
        w.AppendLine("| config | backend | feedback | agent | seeds | episodes | episodes to stop violating | final success rate | final violations/episode | final return | kills per run |");
        w.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var c in a.Configs)
        {
            w.AppendLine($"| {c.Label} | {c.Config["backend"]} | {c.Config["feedback"]} | {c.Config["algorithm"]} | {c.WithData.Count()}/{c.Runs.Count} | " +
                         $"{(c.WithData.Any() ? c.WithData.Min(r => r.Episodes.Count) : 0)} | {Short(c.EpisodesToStopInterval)} | {Short(c.FinalSuccess)} | " +
                         $"{Short(c.FinalViolations)} | {Short(c.FinalReturn)} | {Short(c.Kills)} |");
        }
        w.AppendLine();
        var failed = a.Configs.SelectMany(c => c.Runs.Where(r => r.Status != "complete").Select(r => (c.Label, r))).ToList();
        if (failed.Count > 0)
        {
            w.AppendLine("### Runs not complete").AppendLine();
            foreach (var (label, r) in failed)
                w.AppendLine($"- {label} / seed {r.Seed}: {r.Status}{(r.Error is null ? "" : $": {r.Error}")} ({r.Episodes.Count} episodes on disk)");
            w.AppendLine();
        }
        w.AppendLine("## Figures").AppendLine();
        foreach (var f in figures)
            w.AppendLine($"### {f.Title}").AppendLine().AppendLine($"![{f.Title}](figures/{f.File})").AppendLine().AppendLine(f.Caption).AppendLine();
        w.AppendLine("## Files").AppendLine();
        w.AppendLine("Per config and seed (`CONFIG/seed-N/`): `trajectory.csv` and `trajectory.jsonl` (every step), `episodes.csv` (one row per episode), " +
                     "`status.json`, `checkpoint.json`; TensorBoard event files per config and seed in `tensorboard/` (`tensorboard --logdir RUN_DIR`). `summary.json` holds these numbers; `mis report RUN_DIR` rebuilds this report from the files.");
        return w.ToString();
    }

    private static string Html(RunAnalysis a, IReadOnlyList<string> answer, IReadOnlyList<Figure> figures, string figuresDirectory)
    {
        static string E(string text) => WebUtility.HtmlEncode(text);
        static string Bold(string text) => E(text).Replace("**", "\u0001", StringComparison.Ordinal) is var t
            ? string.Join("", t.Split('\u0001').Select((part, i) => i % 2 == 1 ? $"<strong>{part}</strong>" : part)) : text;
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
        w.AppendLine($"<p>Intervals are two-sided 95% Student-t intervals over seeds. &ldquo;Final&rdquo; is the mean of the last {F(a.Settings.FinalFraction * 100)}% of each run's episodes.</p>");
        w.AppendLine("<h2>Results</h2><table><tr><th>config</th><th>backend</th><th>feedback</th><th>agent</th><th>seeds</th><th>episodes to stop violating</th>" +
                     "<th>final success rate</th><th>final violations/episode</th><th>final return</th><th>kills per run</th></tr>");
        foreach (var c in a.Configs)
        {
            w.AppendLine($"<tr><td>{E(c.Label)}</td><td>{E(c.Config["backend"]?.ToString() ?? "")}</td><td>{E(c.Config["feedback"]?.ToString() ?? "")}</td>" +
                         $"<td>{E(c.Config["algorithm"]?.ToString() ?? "")}</td><td>{c.WithData.Count()}/{c.Runs.Count}</td><td>{E(Short(c.EpisodesToStopInterval))}</td>" +
                         $"<td>{E(Short(c.FinalSuccess))}</td><td>{E(Short(c.FinalViolations))}</td><td>{E(Short(c.FinalReturn))}</td><td>{E(Short(c.Kills))}</td></tr>");
        }
        w.AppendLine("</table>");
        w.AppendLine("<h2>Figures</h2>");
        foreach (var f in figures)
        {
            string data = Convert.ToBase64String(File.ReadAllBytes(Path.Combine(figuresDirectory, f.File)));
            w.AppendLine($"<figure><img alt=\"{E(f.Title)}\" src=\"data:image/png;base64,{data}\"><figcaption><strong>{E(f.Title)}.</strong> {E(f.Caption)}</figcaption></figure>");
        }
        w.AppendLine("</body></html>");
        return w.ToString();
    }

    private static string Short(Interval i) => i.Count switch
    {
        0 => "n/a",
        1 => F(i.Mean),
        _ => $"{F(i.Mean)} ± {F(i.HalfWidth)}",
    };

    private static string Pct(Interval i) => i.Count switch
    {
        0 => "n/a",
        1 => string.Create(CultureInfo.InvariantCulture, $"{i.Mean * 100:0.#}%"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{i.Mean * 100:0.#}% ± {i.HalfWidth * 100:0.#} points (95% CI {Math.Max(0, i.Low) * 100:0.#}% to {Math.Min(1, i.High) * 100:0.#}%)"),
    };

    private static string F(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);

    private static double? Finite(double value) => double.IsFinite(value) ? value : null;
}
