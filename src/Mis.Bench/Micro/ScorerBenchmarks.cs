using BenchmarkDotNet.Attributes;
using Mis.Anomaly;
using Mis.Anomaly.Models;
using Mis.Anomaly.Traces;

namespace Mis.Bench.Micro;

/// <summary>Scoring one window of syscalls, as the online anomaly monitor does every stride.</summary>
[MemoryDiagnoser]
public class ScorerBenchmarks
{
    private AnomalyDetector _detector = null!;
    private int[] _window = [];

    /// <summary>The model; only n-gram and PCA train in seconds (the LSTM is left to <c>mis anomaly bench</c>).</summary>
    [Params(Algorithms.Ngram, Algorithms.Pca)]
    public string Algo { get; set; } = Algorithms.Ngram;

    /// <summary>Trains the model on the committed corpus and picks a window of a normal test trace.</summary>
    [GlobalSetup]
    public void Setup()
    {
        string corpus = Path.Combine(Repository.Root, "experiments", "anomaly", "corpus");
        var train = TraceReader.Read(Path.Combine(corpus, "normal", "train"));
        _detector = AnomalyTrainer.Train(train, new TrainOptions { Algo = Algo }, corpus);
        var test = TraceReader.Read(Path.Combine(corpus, "normal", "test")).First(t => t.Syscalls.Length >= _detector.WindowSize);
        _window = test.Syscalls[.._detector.WindowSize];
    }

    /// <summary>Disposes the model.</summary>
    [GlobalCleanup]
    public void Cleanup() => _detector.Dispose();

    /// <summary>One window scored and calibrated to 0..1000.</summary>
    [Benchmark]
    public int ScoreWindow() => _detector.Score(_window).Score;
}
