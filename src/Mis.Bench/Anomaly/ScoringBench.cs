using System.Diagnostics;
using Mis.Anomaly;
using Mis.Anomaly.Evaluation;
using Mis.Anomaly.Traces;

namespace Mis.Bench.Anomaly;

/// <summary>One model's row of <c>mis anomaly bench</c>.</summary>
/// <param name="Eval">Detection quality on the corpus's test split.</param>
/// <param name="TrainSeconds">Training time.</param>
/// <param name="TraceSyscallsPerSecond">Offline scoring (<c>mis anomaly score</c>): syscalls of whole traces scored per second.</param>
/// <param name="OnlineSyscallsPerSecond">Online scoring (the enforcer's monitor): one window per stride, as syscalls of stream covered per second.</param>
/// <param name="Threads">CPU threads the scoring used.</param>
public sealed record BenchRow(EvalResult Eval, double TrainSeconds, double TraceSyscallsPerSecond, double OnlineSyscallsPerSecond, int Threads);

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

            // Online: the monitor scores one window of WindowSize syscalls every Stride syscalls, in
            // batches of what has queued up (full batches when the stream outpaces the model).
            var windows = all.SelectMany(t => detector.Model.Windows.Ends(t.Length).Select(end => detector.Model.Windows.Window(t, end).ToArray()))
                .Take(20_000).Chunk(256).ToArray(); // 256: AnomalyMonitor.MaxBatch
            long windowsDone = 0;
            clock.Restart();
            while (clock.Elapsed < measure)
            {
                foreach (var batch in windows)
                {
                    detector.ScoreBatch(batch);
                    windowsDone += batch.Length;
                }
            }
            double onlineRate = windowsDone * (double)detector.Stride / clock.Elapsed.TotalSeconds;
            int threads = detector.Model is Mis.Anomaly.Models.LstmModel lstm ? lstm.Options.Threads : 1;
            rows.Add(new BenchRow(eval, trainSeconds, traceRate, onlineRate, threads));
        }
        return rows;
    }

    /// <summary>The table <c>mis anomaly bench</c> prints.</summary>
    public static string Table(IEnumerable<BenchRow> rows) => Suite.TextTable.Render(
        ["model", "AUROC", "DR@1%", "DR@5%", "DR@10%", "FA>800", "runAUROC", "train s", "threads", "trace syscalls/s", "online syscalls/s"],
        rows.Select(r => (IReadOnlyList<string>)
        [
            r.Eval.Algo, $"{r.Eval.Auroc:0.000}", $"{r.Eval.DetectionAt1:P0}", $"{r.Eval.DetectionAt5:P0}", $"{r.Eval.DetectionAt10:P0}",
            $"{r.Eval.FalseAlarmsAbove800:P1}", $"{r.Eval.RunAuroc:0.000}", $"{r.TrainSeconds:0.0}", $"{r.Threads}",
            $"{r.TraceSyscallsPerSecond:N0}", $"{r.OnlineSyscallsPerSecond:N0}",
        ]));
}
