using System.Diagnostics;
using Mis.Anomaly;
using Mis.Anomaly.Evaluation;
using Mis.Anomaly.Traces;
using Mis.Enforcer.Run;

namespace Mis.Bench.Anomaly;

/// <summary>One model's row of <c>mis anomaly bench</c>.</summary>
/// <param name="Eval">Detection quality on the corpus's test split.</param>
/// <param name="TrainSeconds">Training time.</param>
/// <param name="TraceSyscallsPerSecond">Offline scoring (<c>mis anomaly score</c>): syscalls of whole traces scored per second.</param>
/// <param name="Online">Online scoring through the enforcer's monitor (<see cref="OnlineFigures"/>).</param>
/// <param name="Threads">CPU threads the model's scoring may use.</param>
public sealed record BenchRow(EvalResult Eval, double TrainSeconds, double TraceSyscallsPerSecond, OnlineFigures Online, int Threads)
{
    /// <summary>Syscalls of stream per second whose windows the monitor scored.</summary>
    public double OnlineSyscallsPerSecond => Online.SyscallsPerSecond;
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

/// <summary>One model on one program of a public data set (<see cref="ScoringBench.RunPerProgram"/>).</summary>
/// <param name="Program">The program, or <c>all (mean)</c>.</param>
/// <param name="Eval">Detection on its unseen normal and attack traces (for <c>all</c>, means over programs).</param>
/// <param name="TrainSeconds">Training time (for <c>all</c>, the sum).</param>
/// <param name="ScoredSyscalls">Syscalls of the test traces scored.</param>
/// <param name="ScoreSeconds">Time scoring them took (one pass, JIT included: a rough figure beside the corpus bench's).</param>
public sealed record ProgramRow(string Program, EvalResult Eval, double TrainSeconds, long ScoredSyscalls, double ScoreSeconds);

/// <summary>
/// Trains each model on a corpus's <c>normal/train</c>, evaluates it on <c>normal/test</c> against
/// <c>attack</c>, and measures scoring throughput. Numbers are reported, never asserted: timing
/// depends on the machine.
/// </summary>
public static class ScoringBench
{
    /// <summary>Trains each model on <paramref name="corpus"/> and measures how fast it scores windows.</summary>
    public static List<BenchRow> Run(string corpus, IReadOnlyList<string> algos, TrainOptions options, TimeSpan measure,
        Action<string>? log = null)
    {
        var train = TraceReader.Read(Path.Combine(corpus, "normal", "train"));
        var normal = TraceReader.Read(Path.Combine(corpus, "normal", "test"));
        var attack = TraceReader.Read(Path.Combine(corpus, "attack"));
        int[][] all = [.. normal.Concat(attack).Select(t => t.Syscalls)];
        long syscalls = all.Sum(t => (long)t.Length);
        var rows = new List<BenchRow>();
        foreach (var algo in algos)
        {
            log?.Invoke($"bench: training {algo} on {train.Count} traces");
            var clock = Stopwatch.StartNew();
            using var detector = AnomalyTrainer.Train(train, options with { Algo = algo }, corpus);
            double trainSeconds = clock.Elapsed.TotalSeconds;
            var eval = Evaluator.Evaluate(detector, normal, attack);

            log?.Invoke($"bench: measuring {algo} for {measure.TotalSeconds:0} s");
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
            rows.Add(new BenchRow(eval, trainSeconds, traceRate, online, threads));
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
    /// log). One row per model and program, and per model the mean over programs (<c>all</c>).
    /// </summary>
    public static List<ProgramRow> RunPerProgram(string dataset, IReadOnlyList<string> algos, TrainOptions options,
        Action<string>? log = null)
    {
        var rows = new List<ProgramRow>();
        var programs = Directory.GetDirectories(dataset).Order(StringComparer.Ordinal)
            .Where(d => Directory.Exists(Path.Combine(d, "normal")) && Directory.Exists(Path.Combine(d, "attack"))).ToList();
        if (programs.Count == 0)
            throw new DirectoryNotFoundException($"{dataset}: no PROGRAM/normal and PROGRAM/attack directories (a corpus has normal/train, normal/test and attack: give it with --corpus)");
        foreach (var algo in algos)
        {
            var perProgram = new List<ProgramRow>();
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
                var train = shuffled[..(shuffled.Length / 2)];
                var test = shuffled[(shuffled.Length / 2)..];
                log?.Invoke($"bench: {algo} on {program}: training on {train.Length} normal traces, testing on {test.Length} normal and {attack.Count} attack");
                var clock = Stopwatch.StartNew();
                using var detector = AnomalyTrainer.Train(train, options with { Algo = algo }, dir);
                double trainSeconds = clock.Elapsed.TotalSeconds;
                clock.Restart();
                var eval = Evaluator.Evaluate(detector, test, attack);
                long syscalls = test.Concat(attack).Sum(t => (long)t.Syscalls.Length);
                var row = new ProgramRow(program, eval, trainSeconds, syscalls, clock.Elapsed.TotalSeconds);
                perProgram.Add(row);
                rows.Add(row);
            }
            if (perProgram.Count > 0)
            {
                var e = perProgram.Select(r => r.Eval).ToList();
                rows.Add(new ProgramRow("all (mean)", new EvalResult(algo, e.Sum(x => x.Normal), e.Sum(x => x.Attack),
                    e.Average(x => x.Auroc), e.Average(x => x.DetectionAt1), e.Average(x => x.DetectionAt5),
                    e.Average(x => x.DetectionAt10), e.Average(x => x.FalseAlarmsAbove800), e.Average(x => x.DetectionAbove800),
                    e.Average(x => x.RunAuroc), [], []),
                    perProgram.Sum(r => r.TrainSeconds), perProgram.Sum(r => r.ScoredSyscalls), perProgram.Sum(r => r.ScoreSeconds)));
            }
        }
        return rows;
    }

    /// <summary>The table of <see cref="RunPerProgram"/>.</summary>
    public static string PerProgramTable(IEnumerable<ProgramRow> rows) => Suite.TextTable.Render(
        ["model", "program", "normal", "attack", "AUROC", "DR@1%", "DR@5%", "FA>800", "train s", "scored syscalls/s"],
        rows.Select(r => (IReadOnlyList<string>)
        [
            r.Eval.Algo, r.Program, $"{r.Eval.Normal}", $"{r.Eval.Attack}", $"{r.Eval.Auroc:0.000}", $"{r.Eval.DetectionAt1:P0}",
            $"{r.Eval.DetectionAt5:P0}", $"{r.Eval.FalseAlarmsAbove800:P1}", $"{r.TrainSeconds:0.00}",
            r.ScoreSeconds > 0 ? $"{r.ScoredSyscalls / r.ScoreSeconds:N0}" : "-",
        ]));

    /// <summary>The table <c>mis anomaly bench</c> prints.</summary>
    public static string Table(IEnumerable<BenchRow> rows) => Suite.TextTable.Render(
        ["model", "AUROC", "DR@1%", "DR@5%", "DR@10%", "FA>800", "runAUROC", "train s", "threads", "trace syscalls/s", "online syscalls/s", "online per CPU s", "windows skipped"],
        rows.Select(r => (IReadOnlyList<string>)
        [
            r.Eval.Algo, $"{r.Eval.Auroc:0.000}", $"{r.Eval.DetectionAt1:P0}", $"{r.Eval.DetectionAt5:P0}", $"{r.Eval.DetectionAt10:P0}",
            $"{r.Eval.FalseAlarmsAbove800:P1}", $"{r.Eval.RunAuroc:0.000}", $"{r.TrainSeconds:0.0}", $"{r.Threads}",
            $"{r.TraceSyscallsPerSecond:N0}", $"{r.OnlineSyscallsPerSecond:N0}", $"{r.Online.SyscallsPerCpuSecond:N0}",
            $"{r.Online.Skipped:N0} of {r.Online.Scored + r.Online.Skipped:N0}",
        ]));
}
