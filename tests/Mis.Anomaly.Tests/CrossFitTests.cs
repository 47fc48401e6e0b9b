using Mis.Anomaly.Models;
using Mis.Anomaly.Traces;

namespace Mis.Anomaly.Tests;

/// <summary>Training by cross-fitting: the folds, and a calibration on scores no model saw its trace for.</summary>
public sealed class CrossFitTests
{
    private static List<Trace> Runs(int runs, int threadsPerRun) =>
        [.. Enumerable.Range(0, runs * threadsPerRun).Select(i => new Trace($"/runs/{i / threadsPerRun:D2}/{i % threadsPerRun}.trace", 0, ModelTests.NormalTraces(i, 1)[0]))];

    [Theory]
    [InlineData(12, 3, 5)]  // 12 runs: whole runs per fold
    [InlineData(3, 4, 5)]   // 3 runs, fewer than the folds: single traces
    [InlineData(1, 4, 5)]   // 4 traces: one fold each (leave-one-out)
    [InlineData(40, 1, 10)]
    public void Folds_hold_every_trace_once_whole_runs_when_there_are_enough_and_differ_by_at_most_one_run(int runs, int threads, int folds)
    {
        var traces = Runs(runs, threads);
        var split = AnomalyTrainer.Folds(traces, folds, seed: 3);
        Assert.Equal(Math.Min(folds, runs >= folds ? runs : traces.Count), split.Length);
        Assert.Equal(traces.Select(t => t.Name).Order(), split.SelectMany(f => f).Select(t => t.Name).Order());
        int unit = runs >= folds ? threads : 1;
        Assert.True(split.Max(f => f.Count) - split.Min(f => f.Count) <= unit);
        if (runs >= folds)
            Assert.All(traces.GroupBy(t => t.Group), run => Assert.Single(split, f => f.Any(t => t.Group == run.Key)));
        // Seeded: the same seed, the same folds; another seed, others.
        Assert.Equal(split.Select(f => f.Select(t => t.Name)), AnomalyTrainer.Folds(traces, folds, seed: 3).Select(f => f.Select(t => t.Name)));
        if (split.Length < traces.Count)
            Assert.NotEqual(split.Select(f => string.Join(',', f.Select(t => t.Name))), AnomalyTrainer.Folds(traces, folds, seed: 4).Select(f => string.Join(',', f.Select(t => t.Name))));
    }

    [Fact]
    public void Too_few_traces_or_folds_are_refused_with_why()
    {
        Assert.Contains("at least 2 normal traces", Assert.Throws<ArgumentException>(() => AnomalyTrainer.Train(Runs(1, 1), new TrainOptions())).Message);
        Assert.Contains("at least 2 folds", Assert.Throws<ArgumentException>(() => AnomalyTrainer.Train(Runs(4, 1), new TrainOptions { Folds = 1 })).Message);
    }

    [Fact]
    public void The_model_kept_learns_every_trace_and_the_calibration_scores_each_unseen()
    {
        // Every run has one syscall of its own. A model fitted on every trace knows them all, so
        // an in-sample calibration would see no mismatch at all and put the line at 0; cross-fitted,
        // each run's own syscall is a mismatch to the model that scored it, so an unseen run with a
        // syscall of its own, no stranger than those, is not an alarm, and one with four is.
        int[] WithOwn(int run, int own)
        {
            var t = ModelTests.NormalTraces(run, 1)[0].Take(200).ToArray();
            for (int k = 0; k < own; k++)
                t[20 + 40 * k] = 500 + run * 4 + k; // below 1024, the n-gram key's 10 bits a syscall
            return t;
        }
        var normal = Enumerable.Range(0, 110).Select(r => new Trace($"/runs/{r:D3}/1.trace", 0, WithOwn(r, 1))).ToList();
        using var d = AnomalyTrainer.Train(normal, new TrainOptions { Algo = Algorithms.Ngram });
        Assert.Equal(normal.Count, d.Training.TrainTraces);
        Assert.Equal(normal.Count, d.Training.HeldOutTraces);
        Assert.Equal(5, d.Training.Folds);
        Assert.Equal(0, d.ScoreTraces([normal[7].Syscalls])[0].Raw); // learnt
        Assert.True(d.Calibration.AlarmRaw > 0);
        var (one, four) = (d.ScoreTraces([WithOwn(110, 1)])[0], d.ScoreTraces([WithOwn(111, 4)])[0]);
        Assert.True(one.Score <= 800, $"one own syscall: {one}, line {d.Calibration.AlarmRaw}");
        Assert.True(four.Score > 800, $"four own syscalls: {four}, line {d.Calibration.AlarmRaw}");
    }
}
