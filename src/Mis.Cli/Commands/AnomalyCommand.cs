using System.CommandLine;
using System.Globalization;
using System.Text;
using Mis.Anomaly;
using Mis.Anomaly.Corpus;
using Mis.Anomaly.Evaluation;
using Mis.Anomaly.Models;
using Mis.Anomaly.Traces;
using Mis.Bench.Anomaly;
using Mis.Bench.Suite;
using Mis.Cli.Terminal;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Run;

namespace Mis.Cli.Commands;

/// <summary><c>mis anomaly</c>: build the trace corpus, train, score, evaluate and benchmark anomaly models.</summary>
public static class AnomalyCommand
{
    private const int Failed = 1, BadInput = 2;

    internal static Command Create() => new("anomaly",
        "Syscall-trace anomaly detection: a labelled corpus from real workloads, n-gram (STIDE), PCA (ML.NET) and LSTM " +
        "(TorchSharp) models calibrated to scores 0–1000, evaluation and benchmarks. `mis run --learn --anomaly-model MODEL` scores live.")
    {
        Corpus(), Train(), Score(), Eval(), BenchCommand(),
    };

    private static Command Corpus()
    {
        var output = new Option<DirectoryInfo>("--out") { HelpName = "DIR", Description = "Corpus directory (normal/train, normal/test, attack).", Required = true };
        var runs = new Option<int?>("--runs") { HelpName = "N", Description = "Runs per workload (default: each workload's own, 4–8)." };
        var only = new Option<string[]>("--only") { HelpName = "NAME", Description = "Only these workloads (repeatable).", AllowMultipleArgumentsPerToken = true };
        var pack = new Option<bool>("--pack") { Description = "Write each run as one RUN.jsonl.gz (a line per thread, with label, command and tid) instead of a directory of trace files." };
        var max = new Option<int>("--max-syscalls") { HelpName = "N", Description = "Cut each trace to its first N syscalls (0 = keep all); for a small committed sample." };
        var cmd = new Command("corpus",
            "Rebuild the labelled trace corpus: runs every workload (shells, file tools, gcc, Python, .NET, dpkg/apt queries, loopback " +
            "HTTP clients; and harmless, bounded attack-like ones: credential reads, reverse shell and exfiltration to loopback, " +
            "privilege probing, a depth-limited fork bomb, a miner-like loop, download-and-exec from loopback) under `mis run --learn` " +
            "and writes one trace file per thread. Needs root.") { output, runs, only, max, pack };
        cmd.SetAction(r => Guard("corpus", () =>
        {
            using var progress = ConsoleProgress.OnStandardError("mis anomaly");
            progress.Stage("corpus", 1);
            var report = CorpusBuilder.Build(r.GetValue(output)!.FullName, RunUnderMis, new CorpusOptions
            {
                Runs = r.GetValue(runs),
                Only = r.GetValue(only) is { Length: > 0 } o ? o : null,
                MaxSyscallsPerTrace = r.GetValue(max),
                Pack = r.GetValue(pack),
                DotnetApp = ReadableByOthers(Path.Combine(AppContext.BaseDirectory, "mis.dll")),
            }, new Progress<(int Done, int Total, string Label)>(p => progress.Report((double)p.Done / Math.Max(1, p.Total), detail: p.Label)));
            progress.Report(1, detail: "done");
            progress.Done();
            Console.Write(TextTable.Render(["split", "runs", "traces", "syscalls"],
                report.Runs.GroupBy(x => x.Split).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => (IReadOnlyList<string>)
                    [g.Key, $"{g.Count()}", $"{g.Sum(x => x.Traces)}", $"{g.Sum(x => x.Syscalls)}"])));
            ulong lost = report.Runs.Aggregate(0UL, (s, x) => s + x.Dropped);
            if (lost > 0)
                Console.WriteLine($"warning: {lost} kernel events lost (gaps in some traces; see MANIFEST.md)");
            return 0;
        }));
        return cmd;
    }

    /// <summary>Runs one corpus command in learning mode under the real enforcer, as the unprivileged user.</summary>
    private static CorpusRunResult RunUnderMis(CorpusRun run)
    {
        using var timeout = new CancellationTokenSource(run.Timeout);
        var result = WorkloadRunner.Run(new RunRequest
        {
            Command = run.Command,
            Learn = true,
            TracesDirectory = run.TracesDirectory,
            WorkingDirectory = run.WorkingDirectory,
            Environment = run.Environment,
        }, timeout.Token);
        return new CorpusRunResult(result.ExitStatus, result.EventsDropped);
    }

    private static string? ReadableByOthers(string path)
    {
        if (OperatingSystem.IsWindows() || !File.Exists(path) || !File.GetUnixFileMode(path).HasFlag(UnixFileMode.OtherRead))
            return null;
        for (var dir = Path.GetDirectoryName(path); !string.IsNullOrEmpty(dir); dir = Path.GetDirectoryName(dir))
            if (!File.GetUnixFileMode(dir).HasFlag(UnixFileMode.OtherExecute))
                return null;
        return path;
    }

    private static Command Train()
    {
        var traces = new Option<string>("--traces") { HelpName = "DIR", Description = "Normal traces to learn from (a file or directory, read recursively)." };
        var run = new Option<string>("--run")
        {
            HelpName = "RUN_DIR",
            Description = "Learn from the traces an experiment recorded instead (mis gym run with [anomaly]): the episodes without a policy violation, traces/normal/ at any depth.",
        };
        var algo = new Option<string>("--algo") { HelpName = "ngram|lm|pca|lstm|ensemble", Description = "The model: ngram (STIDE), lm (Kneser–Ney n-gram language model), pca, lstm, or ensemble (--members' calibrated scores combined: the default).", DefaultValueFactory = _ => Algorithms.Ensemble };
        algo.AcceptOnlyFromAmong(Algorithms.All);
        var output = new Option<FileInfo>("--out") { HelpName = "MODEL", Description = "Model file to write.", Required = true };
        var seed = new Option<int>("--seed") { HelpName = "N", Description = "Seed of the folds and the model (same seed, same model).", DefaultValueFactory = _ => 1 };
        var far = new Option<double>("--false-alarm-rate") { HelpName = "RATE", Description = "False-alarm rate on unseen normal traces that maps to score 800.", DefaultValueFactory = _ => 0.01 };
        var folds = new Option<int>("--folds") { HelpName = "K", Description = "Cross-fitting folds: each normal trace is scored for the calibration by a model fitted without its fold (whole runs when there are K or more); the model kept is fitted on all of them.", DefaultValueFactory = _ => 5 };
        var epochs = new Option<int?>("--epochs") { HelpName = "N", Description = "LSTM: most passes over the training windows (default 40); training stops earlier once the loss on held-out validation windows has not improved for 3 passes, keeping the best pass." };
        var topK = new Option<int?>("--top-k") { HelpName = "K", Description = "LSTM: window score = mean NLL of its K most surprising syscalls (default 0: of all)." };
        var rank = new Option<int?>("--rank") { HelpName = "N", Description = "PCA: principal components kept (default 48)." };
        var ngram = new Option<int?>("--ngram") { HelpName = "N", Description = "n-gram length: STIDE's database (default 6), the language model's order (default 4, at most 5) or PCA's hashed features (default 3)." };
        var window = new Option<int?>("--window") { HelpName = "N", Description = "Syscalls per scored window (default 64)." };
        var stride = new Option<int?>("--stride") { HelpName = "N", Description = "Syscalls between scored windows (default 16; LSTM 32)." };
        var members = new Option<string[]>("--members")
        {
            HelpName = "ALGO",
            Description = "Ensemble: its member models, each cross-fitted on the ensemble's folds (default: ngram lm pca).",
            AllowMultipleArgumentsPerToken = true,
        };
        var traceScore = new Option<string?>("--trace-score")
        {
            HelpName = "trace|window",
            Description = "ngram, lm, ensemble: a whole trace's score, `trace` (of every syscall at once: the default) or `window` (its highest window's). " +
                          "Live threads are scored by windows either way, on a calibration of their own.",
        };
        traceScore.AcceptOnlyFromAmong(TraceScores.Trace, TraceScores.Window);
        var combine = new Option<string?>("--combine") { HelpName = "mean|max", Description = "Ensemble: how its members' calibrated scores combine (default mean)." };
        combine.AcceptOnlyFromAmong(EnsembleModel.Mean, EnsembleModel.Max);
        var cmd = new Command("train", "Train a model on normal traces and calibrate it on their cross-fitted scores (score 800 = the false-alarm rate).")
        {
            traces, run, algo, output, seed, far, folds, epochs, topK, rank, ngram, window, stride, members, traceScore, combine,
        };
        cmd.Validators.Add(r =>
        {
            if ((r.GetValue(traces) is null) == (r.GetValue(run) is null))
                r.AddError("give the normal traces with --traces DIR, or a run directory with --run RUN_DIR (one of them)");
        });
        cmd.SetAction(r => Guard("train", () =>
        {
            string source = r.GetValue(traces) ?? r.GetValue(run)!;
            var normal = r.GetValue(traces) is not null ? TraceReader.Read(source) : RunTraces.ReadNormal(source);
            var options = new TrainOptions
            {
                Algo = r.GetValue(algo)!, Seed = r.GetValue(seed), FalseAlarmRate = r.GetValue(far), Folds = r.GetValue(folds),
            };
            if (r.GetValue(members) is { Length: > 0 } chosen)
                options = options with { Ensemble = options.Ensemble with { Members = chosen } };
            if (r.GetValue(combine) is { } how)
                options = options with { Ensemble = options.Ensemble with { Combine = how } };
            if (r.GetValue(traceScore) is { } ts)
                options = options with
                {
                    Ngram = options.Ngram with { TraceScore = ts }, LanguageModel = options.LanguageModel with { TraceScore = ts },
                    Ensemble = options.Ensemble with { TraceScore = ts },
                };
            if (r.GetValue(epochs) is int e)
                options = options with { Lstm = options.Lstm with { Epochs = e } };
            if (r.GetValue(topK) is int top)
                options = options with { Lstm = options.Lstm with { TopK = top } };
            if (r.GetValue(ngram) is int ng)
                options = options with { Ngram = options.Ngram with { N = ng }, LanguageModel = options.LanguageModel with { N = ng }, Pca = options.Pca with { NgramLength = ng } };
            if (r.GetValue(rank) is int k)
                options = options with { Pca = options.Pca with { Rank = k } };
            if (r.GetValue(window) is int w)
                options = options with
                {
                    Ngram = options.Ngram with { WindowSize = w }, LanguageModel = options.LanguageModel with { WindowSize = w },
                    Pca = options.Pca with { WindowSize = w }, Lstm = options.Lstm with { WindowSize = w },
                };
            if (r.GetValue(stride) is int st)
                options = options with
                {
                    Ngram = options.Ngram with { Stride = st }, LanguageModel = options.LanguageModel with { Stride = st },
                    Pca = options.Pca with { Stride = st }, Lstm = options.Lstm with { Stride = st },
                };
            using var progress = ConsoleProgress.OnStandardError("mis anomaly");
            progress.Stage($"train {options.Algo}", 1);
            using var detector = AnomalyTrainer.Train(normal, options, source,
                new Progress<TrainProgress>(p => progress.Report(p.Stage == "fit" ? 0.9 * p.Fraction : 0.9 + 0.1 * p.Fraction, detail: p.Stage)));
            progress.Report(1, detail: "done");
            progress.Done();
            string path = r.GetValue(output)!.FullName;
            ModelFile.Save(detector, path);
            var t = detector.Training;
            Console.WriteLine($"{path}: {detector.Name}, window {detector.WindowSize}/{detector.Stride}, trained on {t.TrainTraces} traces " +
                $"({t.TrainSyscalls} syscalls), calibrated on their scores by models fitted without them ({t.Folds} folds): raw {detector.Calibration.AlarmRaw:G4} = 800 (" +
                (detector.Calibration.Window is { } windows ? $"a live window's raw {windows.AlarmRaw:G4}; " : "") +
                $"false-alarm rate {detector.Calibration.FalseAlarmRate:P1}); {t.Seconds:0.0} s");
            if (detector.Calibration.FalseAlarmBound > detector.Calibration.FalseAlarmRate)
                Console.Error.WriteLine($"mis anomaly train: warning: with {t.HeldOutTraces} normal traces the false-alarm rate at 800 rests on a fitted " +
                    $"tail; without that assumption they promise {detector.Calibration.FalseAlarmBound:P1} (1/(n+1)), not {detector.Calibration.FalseAlarmRate:P1}. " +
                    $"{Math.Ceiling((1 - detector.Calibration.FalseAlarmRate) / detector.Calibration.FalseAlarmRate)} or more promise it outright: give more normal traces");
            return 0;
        }));
        return cmd;
    }

    private static Command Score()
    {
        var model = ModelOption();
        var traces = TracesOption("Traces to score (a file or directory, read recursively).");
        var output = new Option<FileInfo>("--out") { HelpName = "scores.csv", Description = "CSV to write: file, score (0–1000), raw_score.", Required = true };
        var cmd = new Command("score", "Score traces with a model; writes file,score,raw_score per trace.") { model, traces, output };
        cmd.SetAction(r => Guard("score", () =>
        {
            using var detector = ModelFile.Load(r.GetValue(model)!.FullName);
            var list = TraceReader.Read(r.GetValue(traces)!);
            var scores = detector.ScoreTraces([.. list.Select(t => t.Syscalls)]);
            var csv = new StringBuilder("file,score,raw_score\n");
            for (int i = 0; i < list.Count; i++)
                csv.Append(Csv(list[i].Name)).Append(',').Append(scores[i].Score).Append(',')
                   .Append(scores[i].Raw.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
            string path = r.GetValue(output)!.FullName;
            File.WriteAllText(path, csv.ToString());
            Console.WriteLine($"{path}: {list.Count} traces, {scores.Count(s => s.Score > 800)} above 800");
            return 0;
        }));
        return cmd;
    }

    private static Command Eval()
    {
        var model = ModelOption();
        var normal = new Option<string>("--normal") { HelpName = "DIR", Description = "Normal traces not trained on.", Required = true };
        var attack = new Option<string>("--attack") { HelpName = "DIR", Description = "Attack traces.", Required = true };
        var plot = new Option<FileInfo?>("--plot") { HelpName = "FILE.png", Description = "ROC plot to write (default: MODEL.roc.png)." };
        var cmd = new Command("eval", "AUROC, detection rate at 1%/5%/10% false alarms, the calibration's false-alarm rate at 800, and a ROC plot.")
        {
            model, normal, attack, plot,
        };
        cmd.SetAction(r => Guard("eval", () =>
        {
            string modelPath = r.GetValue(model)!.FullName;
            using var detector = ModelFile.Load(modelPath);
            var result = Evaluator.Evaluate(detector, TraceReader.Read(r.GetValue(normal)!), TraceReader.Read(r.GetValue(attack)!));
            Console.Write(Evaluator.Table([result]));
            string png = r.GetValue(plot)?.FullName ?? modelPath + ".roc.png";
            RocPlot.Save(png, [result], $"ROC of {Path.GetFileName(modelPath)}");
            Console.WriteLine($"ROC plot: {png}");
            return 0;
        }));
        return cmd;
    }

    private static Command BenchCommand()
    {
        var corpus = new Option<DirectoryInfo?>("--corpus") { HelpName = "DIR", Description = "The project's corpus (normal/train, normal/test, attack; default: experiments/anomaly/corpus)." };
        var noCorpus = new Option<bool>("--no-corpus") { Description = "Bench only the --dataset sets, not the corpus." };
        var algo = new Option<string[]>("--algo") { HelpName = "ngram|lm|pca|lstm|ensemble", Description = "Models to bench (default: all).", AllowMultipleArgumentsPerToken = true };
        algo.AcceptOnlyFromAmong(Algorithms.All);
        var seconds = new Option<double>("--seconds") { HelpName = "S", Description = "Corpus: measuring time per model for each of trace and online scoring speed.", DefaultValueFactory = _ => 3 };
        var plot = new Option<FileInfo?>("--plot") { HelpName = "FILE.png", Description = "Also write the models' ROC curves on the corpus here." };
        var seed = new Option<int>("--seed") { HelpName = "N", Description = "Seed of a per-program set's half split, and of each model's folds and training.", DefaultValueFactory = _ => 1 };
        var output = new Option<FileInfo?>("--out") { HelpName = "FILE.csv|FILE.json", Description = "Also write every row here, for pandas: JSON (an array of objects) if it ends in .json, else CSV; fractions as 0..1, a speed not measured empty (null)." };
        var dataset = new Option<DirectoryInfo[]>("--dataset")
        {
            HelpName = "DIR",
            Description = "Another data set (repeatable): a corpus like the project's, or a public set laid out per program (PROGRAM/normal, " +
                          "PROGRAM/attack, e.g. ../shared/datasets/unm): per program, train on a seeded half of its normal traces, test on " +
                          "the other half and its attacks; a row per model and program and the mean over programs.",
            AllowMultipleArgumentsPerToken = true,
        };
        var cmd = new Command("bench",
            "Train every model on every data set (the corpus, then each --dataset) and report, in one table with a row per model and " +
            "data set (per program, and the mean over programs, for a per-program set): per-trace AUROC, detection at 1% and 5% false " +
            "alarms on unseen normal traces, the share of those above 800, training time, and scoring speed in syscalls per second " +
            "(offline traces; online windows on a corpus). Progress on standard error.")
        {
            corpus, noCorpus, dataset, algo, seed, seconds, output, plot,
        };
        cmd.SetAction(r => Guard("bench", () =>
        {
            var sets = new List<string>();
            if (!r.GetValue(noCorpus))
                sets.Add(r.GetValue(corpus)?.FullName ?? Path.Combine(RepoRoot.Find(), "experiments", "anomaly", "corpus"));
            sets.AddRange((r.GetValue(dataset) ?? []).Select(d => d.FullName));
            if (sets.Count == 0)
                throw new ArgumentException("nothing to bench: --no-corpus and no --dataset");
            var algos = r.GetValue(algo) is { Length: > 0 } a ? a : Algorithms.All;
            var rows = ScoringBench.RunAll(sets, algos, new TrainOptions { Seed = r.GetValue(seed) }, TimeSpan.FromSeconds(r.GetValue(seconds)), Console.Error.WriteLine);
            Console.Write(ScoringBench.Table(rows));
            if (r.GetValue(output) is { } file)
            {
                ScoringBench.Save(rows, file.FullName);
                Console.WriteLine($"{file.FullName}: {rows.Count} rows");
            }
            if (r.GetValue(plot) is { } png)
                RocPlot.Save(png.FullName, [.. rows.Where(x => x.Part == ScoringBench.TestSplit).Select(x => x.Eval)], "Syscall anomaly detection on the MIS corpus");
            return 0;
        }));
        return cmd;
    }

    private static Option<string> TracesOption(string description) =>
        new("--traces") { HelpName = "DIR", Description = description, Required = true };

    private static Option<FileInfo> ModelOption() =>
        new("--model") { HelpName = "MODEL", Description = "Model file written by `mis anomaly train`.", Required = true };

    private static string Csv(string s) => s.Contains(',') || s.Contains('"') ? $"\"{s.Replace("\"", "\"\"")}\"" : s;

    // Bad input (a trace file, a model file, an option) is exit 2 with file and line; anything else the run failed.
    private static int Guard(string command, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is TraceFormatException or InvalidDataException or FileNotFoundException or DirectoryNotFoundException or ArgumentException)
        {
            Console.Error.WriteLine($"mis anomaly {command}: {e.Message}");
            return BadInput;
        }
        catch (Exception e) when (e is KernelUnavailableException or InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"mis anomaly {command}: {e.Message}");
            return Failed;
        }
    }
}
