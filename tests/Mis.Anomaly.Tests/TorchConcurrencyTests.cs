using System.Collections.Concurrent;
using System.Diagnostics;
using Mis.Anomaly.Calibration;
using Mis.Anomaly.Models;

namespace Mis.Anomaly.Tests;

/// <summary>
/// The LSTM under load: one model scored from several threads at once (the policy engine runs one
/// monitor per cgroup against one shared model) while another model trains and the process collects
/// garbage often, as a busy enforcer does. This is where the TorchSharp "Scalar toFloat" crash came
/// from: TorchSharp's own Adam step let a collection free a scalar libtorch was still reading.
/// </summary>
public sealed class TorchConcurrencyTests
{
    [Fact]
    public void Lstm_scores_from_several_threads_while_another_trains_and_the_gc_runs()
    {
        var normal = ModelTests.NormalTraces(4, 30);
        using var detector = new AnomalyDetector(LstmModel.Fit(normal, ModelTests.TinyLstm),
            ScoreCalibration.Fit([0.5, 1.0, 2.0, 3.0]), new TrainingSummary(1, normal.Count, 0, 0, 0, "synthetic"));
        var rng = new Random(3);
        int[][] windows = [.. Enumerable.Range(0, 64).Select(i => ModelTests.Program(rng, ModelTests.NormalLoops[i % 3], 1 + rng.Next(32)))];
        var expected = detector.ScoreBatch(windows).Select(s => s.Raw).ToArray();

        var errors = new ConcurrentQueue<string>();
        var clock = Stopwatch.StartNew();
        var duration = TimeSpan.FromSeconds(10);
        Thread Repeat(string name, Action<int> work) => new(() =>
        {
            for (int i = 0; clock.Elapsed < duration; i++)
            {
                try
                {
                    work(i);
                }
                catch (Exception e)
                {
                    errors.Enqueue($"{name}: {e}");
                }
            }
        });
        var threads = new List<Thread>
        {
            Repeat("train", i => LstmModel.Fit(normal, ModelTests.TinyLstm with { Epochs = 1, Threads = 1 + i % 2 }).Dispose()),
            Repeat("gc", _ => { GC.Collect(); GC.WaitForPendingFinalizers(); }),
        };
        for (int k = 0; k < 3; k++)
        {
            threads.Add(Repeat($"scorer {k}", i =>
            {
                int w = i % windows.Length;
                double one = detector.Score(windows[w]).Raw, batched = detector.ScoreBatch(windows)[w].Raw;
                if (Math.Abs(one - expected[w]) > 1e-4 || Math.Abs(batched - expected[w]) > 1e-4)
                    errors.Enqueue($"window {w}: {one} one by one, {batched} batched, {expected[w]} expected");
            }));
        }
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.True(errors.IsEmpty, $"{errors.Count} failures; first: {errors.FirstOrDefault()}");
    }
}
