using Microsoft.ML;
using Microsoft.ML.Data;
using Mis.Anomaly.Calibration;
using Mis.Anomaly.Models;
using Mis.Anomaly.Traces;

namespace Mis.Anomaly.Tests;

/// <summary>The three models on synthetic traces: what they learn, determinism, persistence.</summary>
public sealed class ModelTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-models-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>"Normal" programs: a few fixed syscall loops with noise; "attack": a different loop.</summary>
    internal static int[] Program(Random rng, int[] loop, int length)
    {
        var t = new int[length];
        for (int i = 0; i < length; i++)
            t[i] = rng.NextDouble() < 0.02 ? loop[rng.Next(loop.Length)] : loop[i % loop.Length];
        return t;
    }

    internal static readonly int[][] NormalLoops = [[0, 1, 3, 5, 9], [257, 0, 3, 257, 5, 0, 3], [59, 12, 9, 9, 10, 21, 257, 0, 3]];
    internal static readonly int[] AttackLoop = [41, 42, 33, 33, 33, 59, 1, 0];

    internal static List<int[]> NormalTraces(int seed, int count)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(i => Program(rng, NormalLoops[i % NormalLoops.Length], 150 + rng.Next(200)))];
    }

    internal static int[] AttackTrace(int seed)
    {
        var rng = new Random(seed);
        // Starts like a normal program, then turns: the burst must not be averaged away.
        return [.. Program(rng, NormalLoops[0], 200), .. Program(rng, AttackLoop, 80), .. Program(rng, NormalLoops[0], 200)];
    }

    internal static readonly LstmOptions TinyLstm = new() { EmbeddingSize = 8, HiddenSize = 16, Epochs = 3, BatchSize = 32, MaxTrainingWindows = 400, WindowSize = 32, Stride = 16, LearningRate = 0.01 };

    [Theory]
    [InlineData(10, 4, new[] { 10 })]
    [InlineData(64, 16, new[] { 64 })]
    [InlineData(65, 16, new[] { 64, 65 })]
    [InlineData(96, 16, new[] { 64, 80, 96 })]
    [InlineData(100, 16, new[] { 64, 80, 96, 100 })]
    [InlineData(0, 16, new int[0])]
    public void Windows_end_where_the_online_monitor_scores(int length, int stride, int[] ends) =>
        Assert.Equal(ends, new WindowSpec(64, stride).Ends(length).ToArray());

    [Fact]
    public void Stide_knows_what_it_saw_and_counts_unseen_ngrams_per_window()
    {
        var normal = NormalTraces(1, 30);
        var model = NgramModel.Fit(normal, new NgramOptions { N = 3, WindowSize = 20, Stride = 5, TraceScore = TraceScores.Window });
        Assert.Equal(0, model.ScoreWindow([0, 1, 3, 5, 9, 0, 1, 3]));
        Assert.Equal(1, model.ScoreWindow([41, 42, 33, 33, 33]));
        Assert.Equal(2.0 / 3, model.ScoreWindow([0, 1, 3, 42, 9]), 12); // 0 1 3 seen; 1 3 42 and 3 42 9 not
        Assert.True(model.ScoreTrace(AttackTrace(5)) > 0.9);
    }

    [Fact]
    public void Stide_one_pass_trace_score_equals_the_maximum_over_windows()
    {
        var rng = new Random(11);
        var model = NgramModel.Fit(NormalTraces(2, 20), new NgramOptions { N = 4, WindowSize = 24, Stride = 7, TraceScore = TraceScores.Window });
        for (int i = 0; i < 200; i++)
        {
            var t = Enumerable.Range(0, rng.Next(1, 300)).Select(_ => rng.Next(12)).ToArray();
            double slow = model.Windows.Ends(t.Length).Max(end => model.ScoreWindow(model.Windows.Window(t, end)));
            Assert.Equal(slow, model.ScoreTrace(t), 12);
        }
    }

    [Fact]
    public void Pca_scores_equal_mlnet_own_scores_and_separate_the_attack()
    {
        var normal = NormalTraces(3, 40);
        var options = new PcaOptions { Rank = 4, UnigramBuckets = 64, NgramBuckets = 128, WindowSize = 32, Stride = 8, Normalized = true };
        var (model, ml, transformer) = PcaModel.FitWithMlNet(normal, options);

        var windows = normal.Take(5).Append(AttackTrace(4)).SelectMany(t => model.Windows.Ends(t.Length).Select(e => t[Math.Max(0, e - 32)..e])).ToList();
        var schema = SchemaDefinition.Create(typeof(FeatureRow));
        schema[nameof(FeatureRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, options.Features.Dimension);
        var engine = ml.Model.CreatePredictionEngine<FeatureRow, ScoreRow>(transformer, inputSchemaDefinition: schema);
        foreach (var w in windows)
        {
            float mlnet = engine.Predict(new FeatureRow { Features = model.Featurize(w) }).Score;
            Assert.Equal(mlnet, model.ScoreWindow(w), 3);
        }
        double worstNormal = NormalTraces(30, 20).Max(t => model.ScoreTrace(t));
        Assert.True(model.ScoreTrace(AttackTrace(6)) > worstNormal, $"attack {model.ScoreTrace(AttackTrace(6))} <= normal {worstNormal}");
    }

    public sealed class FeatureRow
    {
        public float[] Features { get; set; } = [];
    }

    public sealed class ScoreRow
    {
        public float Score { get; set; }
    }

    [Fact]
    public void Lstm_trains_until_its_validation_loss_stops_improving_and_keeps_the_best_epoch()
    {
        var normal = NormalTraces(4, 30);
        var options = TinyLstm with { Epochs = 60, Patience = 2, ValidationFraction = 0.2 };
        using var model = LstmModel.Fit(normal, options);

        var (run, best, nll) = model.Training;
        Assert.True(run < options.Epochs, $"ran all {run} epochs: the validation loss never settled");
        Assert.InRange(best, 1, run);
        Assert.True(run - best <= options.Patience, $"stopped {run - best} epochs after the best");
        Assert.InRange(nll, 0, 1.5); // nats per syscall on unseen windows of the loops: well below a uniform guess (~2.9)
        var h = model.Hyperparameters;
        Assert.Equal((run, best), ((int)h["epochs_run"]!, (int)h["best_epoch"]!));
        Assert.Equal(Math.Round(nll, 6), (double)h["validation_nll"]!);
    }

    [Fact]
    public void Lstm_learns_the_normal_loops_and_finds_the_attack_costly()
    {
        var normal = NormalTraces(4, 30);
        using var model = LstmModel.Fit(normal, TinyLstm);
        double worstNormal = NormalTraces(40, 15).Max(t => model.ScoreTrace(t));
        double attack = model.ScoreTrace(AttackTrace(7));
        Assert.True(attack > worstNormal, $"attack {attack} <= normal {worstNormal}");
        // Batched trace scoring and one-window scoring agree.
        var t0 = normal[0];
        double oneByOne = model.Windows.Ends(t0.Length).Max(end => model.ScoreWindow(model.Windows.Window(t0, end)));
        Assert.Equal(oneByOne, model.ScoreTrace(t0), 4);
    }

    [Fact]
    public void The_language_model_is_a_distribution_and_prices_the_unusual_above_the_rare()
    {
        var normal = NormalTraces(2, 30);
        var model = LanguageModel.Fit(normal, new LanguageModelOptions { N = 3, WindowSize = 20, Stride = 5, TraceScore = TraceScores.Window });

        // Kneser–Ney keeps every context's probabilities summing to one (to the two codes no syscall
        // maps to: the start marker and the spare): seen, unseen and empty contexts alike.
        foreach (int[] before in new[] { new[] { 0, 1 }, [41, 42], [], [3], [257, 0] })
        {
            double sum = Enumerable.Range(0, 4094).Sum(code => model.Probability(before, code));
            Assert.InRange(sum, 0.999, 1.0 + 1e-9);
        }
        Assert.True(model.Probability([0, 1], 3) > 0.5, "0 1 is followed by 3 in every normal loop");
        Assert.True(model.Probability([0, 1], 3) > 100 * model.Probability([0, 1], 42));
        // A normal loop costs a fraction of a bit per syscall; the attack's loop many bits.
        Assert.True(model.ScoreWindow([0, 1, 3, 5, 9, 0, 1, 3, 5, 9]) < 1.5);
        Assert.True(model.ScoreWindow([41, 42, 33, 33, 33, 59, 1, 0, 41, 42]) > 5);
        double attack = model.ScoreTrace(AttackTrace(3));
        Assert.All(NormalTraces(30, 10), t => Assert.True(model.ScoreTrace(t) < attack));

        // The trace's score is its highest window's, each window as the online monitor scores it.
        var trace = AttackTrace(4);
        double max = model.Windows.Ends(trace.Length).Max(end => model.ScoreWindow(model.Windows.Window(trace, end)));
        Assert.Equal(max, model.ScoreTrace(trace));
        var whole = LanguageModel.Fit(normal, new LanguageModelOptions { N = 3 });
        Assert.True(whole.ScoreTrace(trace) < max, "a whole-trace mean (the default) dilutes the burst a window catches");
        Assert.Throws<ArgumentException>(() => LanguageModel.Fit(normal, new LanguageModelOptions { TraceScore = "median" }));
        Assert.Throws<ArgumentOutOfRangeException>(() => LanguageModel.Fit(normal, new LanguageModelOptions { N = 6 }));
    }

    [Fact]
    public void The_ensemble_averages_its_members_calibrated_scores_and_needs_one_window()
    {
        // 120 traces: enough for the calibration's rank at 1% (with fewer its line rests on a fitted tail, CalibrationTests).
        var normal = NormalTraces(7, 120).Select((t, i) => new Trace($"/t/{i}", 0, t)).ToList();
        var options = new TrainOptions { Algo = Algorithms.Ensemble, Ensemble = new EnsembleOptions { Members = [Algorithms.Ngram, Algorithms.LanguageModel] } };
        using var detector = AnomalyTrainer.Train(normal, options);
        var ensemble = Assert.IsType<EnsembleModel>(detector.Model);
        Assert.Equal([Algorithms.Ngram, Algorithms.LanguageModel], ensemble.Members.Select(m => m.Name));

        int[] window = [.. AttackTrace(2).AsSpan(180, 64)];
        double mean = ensemble.Members.Average(m => m.Calibration.ForWindows.Continuous(m.Model.ScoreWindow(window)));
        Assert.Equal(mean, ensemble.ScoreWindow(window), 9);
        Assert.True(detector.ScoreTraces([AttackTrace(3)])[0].Score > 800);
        Assert.All(detector.ScoreTraces(NormalTraces(70, 10)), s => Assert.True(s.Score < detector.ScoreTraces([AttackTrace(3)])[0].Score));

        var mismatched = options with { Ngram = new NgramOptions { WindowSize = 32 } };
        Assert.Contains("--window", Assert.Throws<ArgumentException>(() => AnomalyTrainer.Train(normal, mismatched)).Message);
        Assert.Throws<ArgumentException>(() => AnomalyTrainer.Train(normal, options with { Ensemble = new EnsembleOptions { Members = [Algorithms.Ngram] } }));
    }

    [Fact]
    public void Same_seed_same_model_for_every_algorithm()
    {
        var normal = NormalTraces(5, 24).Select((t, i) => new Trace($"/t/{i}", 0, t)).ToList();
        foreach (var algo in Algorithms.All)
        {
            var options = new TrainOptions { Algo = algo, Seed = 9, Lstm = TinyLstm with { Epochs = 1 }, Pca = new PcaOptions { Rank = 3, NgramBuckets = 256 } };
            using var a = AnomalyTrainer.Train(normal, options);
            using var b = AnomalyTrainer.Train(normal, options);
            Assert.Equal(Payload(a), Payload(b));
            Assert.Equal(a.Calibration.Raw, b.Calibration.Raw);
            using var c = AnomalyTrainer.Train(normal, options with { Seed = 10 });
            if (algo is Algorithms.Ngram or Algorithms.LanguageModel) // no randomness but the folds: the model kept is fitted on every trace
                Assert.Equal(Payload(a), Payload(c));
            else
                Assert.NotEqual(Payload(a), Payload(c));
        }
    }

    private static byte[] Payload(AnomalyDetector d)
    {
        using var s = new MemoryStream();
        d.Model.SavePayload(s);
        return s.ToArray();
    }

    [Fact]
    public void Model_files_round_trip_with_identical_scores_and_describe_themselves()
    {
        var normal = NormalTraces(6, 24).Select((t, i) => new Trace($"/t/{i}", 0, t)).ToList();
        var probe = NormalTraces(60, 5).Append(AttackTrace(8)).ToList();
        foreach (var algo in Algorithms.All)
        {
            using var trained = AnomalyTrainer.Train(normal, new TrainOptions { Algo = algo, Lstm = TinyLstm, Pca = new PcaOptions { Rank = 3 } }, "synthetic");
            string path = Path.Combine(_dir, $"{algo}.model");
            ModelFile.Save(trained, path);
            using var loaded = ModelFile.Load(path);

            Assert.Equal(trained.ScoreTraces(probe), loaded.ScoreTraces(probe));
            Assert.Equal(trained.Score(probe[^1][..40]), loaded.Score(probe[^1][..40]));
            Assert.Equal((algo, trained.WindowSize, trained.Stride), (loaded.Name, loaded.WindowSize, loaded.Stride));
            Assert.Equal(trained.Calibration.Raw, loaded.Calibration.Raw);
            Assert.Equal(trained.Training, loaded.Training);

            using var zip = System.IO.Compression.ZipFile.OpenRead(path);
            using var header = new StreamReader(zip.GetEntry("model.json")!.Open());
            string json = header.ReadToEnd();
            foreach (var key in new[] { "\"format\": \"mis-anomaly-model\"", "\"version\": 1", $"\"algo\": \"{algo}\"", "\"calibration\"", "\"false_alarm_rate\": 0.01", "\"hyperparameters\"", "\"seed\": 1" })
                Assert.Contains(key, json);
        }
    }

    /// <summary>Rewrites the model.json of the model file at <paramref name="path"/> (as another build, or damage, would have written it).</summary>
    internal static void EditHeader(string path, Func<string, string> edit)
    {
        using var zip = System.IO.Compression.ZipFile.Open(path, System.IO.Compression.ZipArchiveMode.Update);
        var entry = zip.GetEntry("model.json")!;
        string json;
        using (var r = new StreamReader(entry.Open()))
            json = r.ReadToEnd();
        entry.Delete();
        using var w = new StreamWriter(zip.CreateEntry("model.json").Open());
        w.Write(edit(json));
    }

    [Fact]
    public void Damaged_or_foreign_model_files_are_refused_with_why()
    {
        string notZip = Path.Combine(_dir, "junk.model");
        File.WriteAllText(notZip, "hello");
        Assert.Contains("junk.model", Assert.Throws<InvalidDataException>(() => ModelFile.Load(notZip)).Message);

        string path = Path.Combine(_dir, "future.model");
        using (var trained = AnomalyTrainer.Train(NormalTraces(6, 10).Select((t, i) => new Trace($"/t/{i}", 0, t)).ToList(), new TrainOptions()))
            ModelFile.Save(trained, path);
        EditHeader(path, json => json.Replace("\"version\": 1", "\"version\": 99"));
        Assert.Contains("version 99", Assert.Throws<InvalidDataException>(() => ModelFile.Load(path)).Message);
        Assert.Throws<FileNotFoundException>(() => ModelFile.Load(Path.Combine(_dir, "missing.model")));
    }

    [Fact]
    public void Calibrated_detector_puts_the_attack_above_800_and_normal_traces_below()
    {
        var normal = NormalTraces(7, 60).Select((t, i) => new Trace($"/t/{i}", 0, t)).ToList();
        using var d = AnomalyTrainer.Train(normal, new TrainOptions { Algo = Algorithms.Ngram, Ngram = new NgramOptions { N = 4, WindowSize = 32, Stride = 8 } });
        var scores = d.ScoreTraces([AttackTrace(9), .. NormalTraces(70, 50)]);
        Assert.True(scores[0].Score > ScoreCalibration.AlarmScore, $"attack scored {scores[0].Score}");
        Assert.True(scores.Skip(1).Count(s => s.Score > 800) <= 3, string.Join(' ', scores.Skip(1).Select(s => s.Score)));
    }
}
