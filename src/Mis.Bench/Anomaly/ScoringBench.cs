using Process = System.Diagnostics.Process;
using Stopwatch = System.Diagnostics.Stopwatch;
using Mis.Anomaly;
using Mis.Anomaly.Evaluation;
using Mis.Anomaly.Traces;
using Mis.Enforcer.Run;

namespace Mis.Bench.Anomaly;

/// <summary>One row of <c>mis anomaly bench</c>: one model on one data set (or one program of it, or the mean over its programs).</summary>
/// <param name="DataSet">The data set's name (its directory's).</param>
/// <param name="Part">What of it was tested: <see cref="ScoringBench.TestSplit"/> for a corpus, a program, or <see cref="ScoringBench.MeanPart"/> over the programs.</param>
/// <param name="Eval">Detection on its unseen normal and attack traces (for the mean: means over programs, trace counts summed).</param>
/// <param name="TrainSeconds">Training time (for the mean: the sum).</param>
/// <param name="TraceSyscallsPerSecond">Offline scoring (<c>mis anomaly score</c>): syscalls of whole traces scored per second.</param>
/// <param name="Online">Online scoring through the enforcer's monitor (<see cref="OnlineFigures"/>); null where not measured (per program).</param>
/// <param name="Threads">CPU threads the model's scoring may use.</param>
public sealed record BenchRow(string DataSet, string Part, EvalResult Eval, double TrainSeconds, double TraceSyscallsPerSecond,
    OnlineFigures? Online, int Threads)
{
    /// <summary>The model's algorithm.</summary>
    public string Model => Eval.Algo;

    /// <summary>Syscalls of stream per second whose windows the monitor scored; NaN where not measured.</summary>
    public double OnlineSyscallsPerSecond => Online?.SyscallsPerSecond ?? double.NaN;
}

/// <summary>
/// The enforcer's monitor (<see cref="AnomalyMonitor"/>) fed a syscall stream as fast as one thread
/// can call <see cref="AnomalyMonitor.Add"/>, as the event pump does: per-thread windows, one every
/// stride, scored in batches on the monitor's worker; windows the worker has no room for are skipped.
/// </summary>
/// <param name="Syscalls">Syscalls added.</param>
/// <param name="Scored">Windows scored.</param>
/// <param name="Skipped">Windows skipped because the model fell behind.</param>
/// <param name="Seconds">From the first syscall added to the last window scored.</param>
/// <param name="CpuSeconds">CPU time the process spent meanwhile, on every thread (pump, worker, the model's own).</param>
/// <param name="Stride">Syscalls per scored window of a thread.</param>
public sealed record OnlineFigures(long Syscalls, long Scored, long Skipped, double Seconds, double CpuSeconds, int Stride)
{
    /// <summary>Syscalls of stream per second whose windows were scored: what the monitor keeps up with.</summary>
    public double SyscallsPerSecond => Scored * (double)Stride / Seconds;

    /// <summary>The same per CPU second: what one core keeps up with.</summary>
    public double SyscallsPerCpuSecond => Scored * (double)Stride / CpuSeconds;
}

/// <summary>
/// Trains each model on each data set and reports detection quality, training time and scoring
/// speed, one row per model and data set (per program for a public data set, with the mean over
/// programs). Two layouts are understood: a corpus (<c>normal/train</c>, <c>normal/test</c>,
/// <c>attack</c>: the project's own) and a per-program public data set (<c>PROGRAM/normal</c>,
/// <c>PROGRAM/attack</c>: the UNM/MIT sets). Numbers are reported, never asserted: timing depends on
/// the machine.
/// </summary>
public static class ScoringBench
{
    /// <summary><see cref="BenchRow.Part"/> of a corpus: its test split.</summary>
    public const string TestSplit = "test split";

    /// <summary><see cref="BenchRow.Part"/> of the mean over a data set's programs.</summary>
    public const string MeanPart = "mean";

    /// <summary>True when <paramref name="dir"/> is laid out as a corpus (normal/train, normal/test, attack).</summary>
    public static bool IsCorpus(string dir) =>
        Directory.Exists(Path.Combine(dir, "normal", "train")) && Directory.Exists(Path.Combine(dir, "normal", "test"))
        && Directory.Exists(Path.Combine(dir, "attack"));

    /// <summary>
    /// Every model on every data set (each a corpus or a per-program set, told apart by
    /// <see cref="IsCorpus"/>), the rows in the order of the data sets, then of the models.
    /// </summary>
    public static List<BenchRow> RunAll(IReadOnlyList<string> dataSets, IReadOnlyList<string> algos, TrainOptions options, TimeSpan measure,
        Action<string>? log = null)
    {
        var rows = new List<BenchRow>();
        for (int i = 0; i < dataSets.Count; i++)
        {
            log?.Invoke($"bench: data set {i + 1}/{dataSets.Count}: {dataSets[i]}");
            rows.AddRange(IsCorpus(dataSets[i])
                ? Run(dataSets[i], algos, options, measure, log)
                : RunPerProgram(dataSets[i], algos, options, log));
        }
        return rows;
    }

    /// <summary>Trains each model on <paramref name="corpus"/>'s normal/train, evaluates it on its test split and measures how fast it scores.</summary>
    public static List<BenchRow> Run(string corpus, IReadOnlyList<string> algos, TrainOptions options, TimeSpan measure,
        Action<string>? log = null)
    {
        var train = TraceReader.Read(Path.Combine(corpus, "normal", "train"));
        var normal = TraceReader.Read(Path.Combine(corpus, "normal", "test"));
        var attack = TraceReader.Read(Path.Combine(corpus, "attack"));
        int[][] all = [.. normal.Concat(attack).Select(t => t.Syscalls)];
        long syscalls = all.Sum(t => (long)t.Length);
        var rows = new List<BenchRow>();
        for (int step = 0; step < algos.Count; step++)
        {
            string algo = algos[step];
            log?.Invoke($"bench: {Name(corpus)}: {algo} ({step + 1}/{algos.Count}): training on {train.Count} traces");
            var clock = Stopwatch.StartNew();
            using var detector = AnomalyTrainer.Train(train, options with { Algo = algo }, corpus);
            double trainSeconds = clock.Elapsed.TotalSeconds;
            var eval = Evaluator.Evaluate(detector, normal, attack);

            log?.Invoke($"bench: {Name(corpus)}: {algo}: measuring scoring speed for 2 × {measure.TotalSeconds:0.#} s");
            detector.Model.ScoreTraces(all); // warm-up (JIT, TorchSharp's first calls)
            long done = 0;
            clock.Restart();
            while (clock.Elapsed < measure)
            {
                detector.Model.ScoreTraces(all);
                done += syscalls;
            }
            double traceRate = done / clock.Elapsed.TotalSeconds;

            var online = Online(detector, all, measure);
            int threads = detector.Model is Mis.Anomaly.Models.LstmModel lstm ? lstm.Options.Threads : 1;
            rows.Add(new BenchRow(Name(corpus), TestSplit, eval, trainSeconds, traceRate, online, threads));
        }
        return rows;
    }

    /// <summary>
    /// Feeds <paramref name="traces"/> (each a thread of its own, again and again as new threads)
    /// through an <see cref="AnomalyMonitor"/> for about <paramref name="measure"/>, then lets it
    /// score what it queued.
    /// </summary>
    public static OnlineFigures Online(AnomalyDetector detector, int[][] traces, TimeSpan measure)
    {
        Warm(detector, traces);
        var monitor = new AnomalyMonitor(detector, new AnomalySettings(1000, KillOnAnomaly: false), 1, _ => { }, () => { });
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        long syscalls = 0;
        int tid = 0;
        while (clock.Elapsed < measure)
        {
            foreach (var trace in traces)
            {
                tid++;
                foreach (int syscall in trace)
                    monitor.Add(1, tid, "", syscall);
                syscalls += trace.Length;
            }
        }
        monitor.Stop();
        double seconds = clock.Elapsed.TotalSeconds;
        double cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
        var p = monitor.Progress();
        return new OnlineFigures(syscalls, p.WindowsScored, p.WindowsSkipped, seconds, cpuSeconds, detector.Stride);
    }

    // A short monitor run first: the JIT and TorchSharp's first calls are not the model's speed.
    private static void Warm(AnomalyDetector detector, int[][] traces)
    {
        var warm = new AnomalyMonitor(detector, new AnomalySettings(1000, KillOnAnomaly: false), 1, _ => { }, () => { });
        foreach (var (trace, tid) in traces.Take(20).Select((t, i) => (t, i)))
            foreach (int syscall in trace)
                warm.Add(1, tid, "", syscall);
        warm.Stop();
    }

    /// <summary>
    /// Detection on a public data set laid out per program (<c>PROGRAM/normal</c>,
    /// <c>PROGRAM/attack</c>: the UNM/MIT sets in <c>../shared/datasets/unm</c>), by the published
    /// protocol: for each program, a model trained on a seeded half of its normal traces scores the
    /// other half and every attack trace (per-trace AUROC, detection at 1 % false alarms on those
    /// unseen normal traces). Programs with fewer than 4 normal traces are skipped (named in the
    /// log). Per model, one row per program and the mean over programs (<see cref="MeanPart"/>);
    /// scoring speed is one pass over the test traces (JIT included: a rough figure).
    /// </summary>
    public static List<BenchRow> RunPerProgram(string dataset, IReadOnlyList<string> algos, TrainOptions options,
        Action<string>? log = null)
    {
        var programs = Directory.GetDirectories(dataset).Order(StringComparer.Ordinal)
            .Where(d => Directory.Exists(Path.Combine(d, "normal")) && Directory.Exists(Path.Combine(d, "attack"))).ToList();
        if (programs.Count == 0)
            throw new DirectoryNotFoundException($"{dataset}: neither a corpus (normal/train, normal/test, attack) nor a per-program data set (PROGRAM/normal, PROGRAM/attack)");
        var splits = new List<(string Program, Trace[] Train, Trace[] Test, List<Trace> Attack)>();
        foreach (string dir in programs)
        {
            string program = Path.GetFileName(dir);
            var normal = TraceReader.Read(Path.Combine(dir, "normal"));
            var attack = TraceReader.Read(Path.Combine(dir, "attack"));
            if (normal.Count < 4 || attack.Count == 0)
            {
                log?.Invoke($"bench: {program}: {normal.Count} normal and {attack.Count} attack traces, too few to split; skipped");
                continue;
            }
            var shuffled = normal.ToArray();
            new Random(options.Seed).Shuffle(shuffled);
            splits.Add((program, shuffled[..(shuffled.Length / 2)], shuffled[(shuffled.Length / 2)..], attack));
        }

        var rows = new List<BenchRow>();
        int step = 0;
        foreach (var algo in algos)
        {
            var perProgram = new List<(BenchRow Row, long Syscalls, double Seconds)>();
            foreach (var (program, train, test, attack) in splits)
            {
                log?.Invoke($"bench: {Name(dataset)}: {algo} on {program} ({++step}/{algos.Count * splits.Count}): " +
                            $"training on {train.Length} normal traces, testing on {test.Length} normal and {attack.Count} attack");
                var clock = Stopwatch.StartNew();
                using var detector = AnomalyTrainer.Train(train, options with { Algo = algo }, program);
                double trainSeconds = clock.Elapsed.TotalSeconds;
                clock.Restart();
                var eval = Evaluator.Evaluate(detector, test, attack);
                double seconds = clock.Elapsed.TotalSeconds;
                long syscalls = test.Concat(attack).Sum(t => (long)t.Syscalls.Length);
                perProgram.Add((new BenchRow(Name(dataset), program, eval, trainSeconds, syscalls / seconds, null, 1), syscalls, seconds));
            }
            if (perProgram.Count == 0)
                continue;
            rows.AddRange(perProgram.Select(p => p.Row));
            var e = perProgram.Select(p => p.Row.Eval).ToList();
            var mean = new EvalResult(algo, e.Sum(x => x.Normal), e.Sum(x => x.Attack),
                e.Average(x => x.Auroc), e.Average(x => x.DetectionAt1), e.Average(x => x.DetectionAt5),
                e.Average(x => x.DetectionAt10), e.Average(x => x.FalseAlarmsAbove800), e.Average(x => x.DetectionAbove800),
                e.Average(x => x.RunAuroc), [], []);
            rows.Add(new BenchRow(Name(dataset), MeanPart, mean, perProgram.Sum(p => p.Row.TrainSeconds),
                perProgram.Sum(p => p.Syscalls) / perProgram.Sum(p => p.Seconds), null, 1));
        }
        return rows;
    }

    private static string Name(string dir) => Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)));

    // ---- output: the console table, and CSV / JSON with the same columns for pandas --------------

    private static readonly string[] Columns =
    [
        "model", "data_set", "part", "normal", "attack", "auroc", "dr_at_1pct", "dr_at_5pct", "dr_at_10pct",
        "false_alarms_above_800", "detection_above_800", "train_seconds", "trace_syscalls_per_second", "online_syscalls_per_second",
        "online_syscalls_per_cpu_second", "online_windows_skipped", "threads",
    ];

    // The machine-readable values of a row, in Columns' order (fractions 0..1; NaN: not measured).
    private static object[] Values(BenchRow r) =>
    [
        r.Model, r.DataSet, r.Part, r.Eval.Normal, r.Eval.Attack, r.Eval.Auroc, r.Eval.DetectionAt1, r.Eval.DetectionAt5, r.Eval.DetectionAt10,
        r.Eval.FalseAlarmsAbove800, r.Eval.DetectionAbove800, r.TrainSeconds, r.TraceSyscallsPerSecond, r.OnlineSyscallsPerSecond,
        r.Online?.SyscallsPerCpuSecond ?? double.NaN, r.Online is { } o ? (double)o.Skipped : double.NaN, r.Threads,
    ];

    /// <summary>The table <c>mis anomaly bench</c> prints: every row, one table.</summary>
    public static string Table(IEnumerable<BenchRow> rows) => Suite.TextTable.Render(
        ["model", "data set", "part", "normal", "attack", "AUROC", "DR@1%", "DR@5%", "FA>800", "train s", "trace syscalls/s", "online syscalls/s",
         "online per CPU s", "windows skipped", "threads"],
        rows.Select(r => (IReadOnlyList<string>)
        [
            r.Model, r.DataSet, r.Part, $"{r.Eval.Normal}", $"{r.Eval.Attack}", $"{r.Eval.Auroc:0.000}", $"{r.Eval.DetectionAt1:P0}",
            $"{r.Eval.DetectionAt5:P0}", $"{r.Eval.FalseAlarmsAbove800:P1}", $"{r.TrainSeconds:0.00}", Rate(r.TraceSyscallsPerSecond),
            Rate(r.OnlineSyscallsPerSecond), Rate(r.Online?.SyscallsPerCpuSecond ?? double.NaN),
            r.Online is { } o ? $"{o.Skipped:N0} of {o.Scored + o.Skipped:N0}" : "-", $"{r.Threads}",
        ]));

    private static string Rate(double perSecond) => double.IsFinite(perSecond) ? $"{perSecond:N0}" : "-";

    /// <summary>
    /// Writes the rows to <paramref name="path"/>: JSON (an array of objects) when it ends in
    /// <c>.json</c>, else CSV with a header line (<c>pandas.read_csv</c> / <c>read_json</c> read
    /// either; a value not measured is empty in CSV, null in JSON).
    /// </summary>
    public static void Save(IReadOnlyList<BenchRow> rows, string path)
    {
        if (Path.GetDirectoryName(Path.GetFullPath(path)) is { } dir)
            Directory.CreateDirectory(dir);
        File.WriteAllText(path, path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? Json(rows) : Csv(rows));
    }

    /// <summary>The rows as CSV, a header line first.</summary>
    public static string Csv(IEnumerable<BenchRow> rows)
    {
        var w = new StringWriter { NewLine = "\n" };
        w.WriteLine(string.Join(',', Columns));
        foreach (var r in rows)
            w.WriteLine(string.Join(',', Values(r).Select(v => v switch
            {
                string s => s.Contains(',') || s.Contains('"') ? $"\"{s.Replace("\"", "\"\"")}\"" : s,
                double d => double.IsFinite(d) ? d.ToString("R", System.Globalization.CultureInfo.InvariantCulture) : "",
                _ => Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture),
            })));
        return w.ToString();
    }

    /// <summary>The rows as a JSON array of objects keyed as the CSV's columns.</summary>
    public static string Json(IEnumerable<BenchRow> rows)
    {
        var array = new System.Text.Json.Nodes.JsonArray();
        foreach (var r in rows)
        {
            var o = new System.Text.Json.Nodes.JsonObject();
            foreach (var (column, value) in Columns.Zip(Values(r)))
                o[column] = value switch
                {
                    string s => s,
                    double d => double.IsFinite(d) ? d : null,
                    int i => i,
                    _ => null,
                };
            array.Add(o);
        }
        return array.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n";
    }
}
