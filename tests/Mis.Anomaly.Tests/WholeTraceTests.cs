using Mis.Anomaly.Calibration;
using Mis.Anomaly.Models;
using Mis.Anomaly.Traces;
using static Mis.Anomaly.Tests.ModelTests;

namespace Mis.Anomaly.Tests;

/// <summary>Whole-trace scores beside window scores, the window calibration the online monitor uses, and how an ensemble combines.</summary>
public sealed class WholeTraceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-whole-trace-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static List<Trace> Named(IEnumerable<int[]> traces) => [.. traces.Select((t, i) => new Trace($"/t/{i}", 0, t))];

    // A long ordinary run of the first loop with one short odd moment (30 syscalls of another alphabet) in the middle.
    private static int[] NormalWithOneBurst(int seed)
    {
        var rng = new Random(seed);
        return [.. Program(rng, NormalLoops[0], 2000), .. Program(rng, AttackLoop, 30), .. Program(rng, NormalLoops[0], 2000)];
    }

    // The first loop throughout, but every 20th syscall followed by one it never makes: a changed loop, thin in every window.
    private static int[] UnseenLoop(int seed)
    {
        var loop = Program(new Random(seed), NormalLoops[0], 1200);
        return [.. loop.SelectMany((s, i) => i % 20 == 19 ? new[] { s, 77 } : [s])];
    }

    [Theory]
    [InlineData(Algorithms.Ngram)]
    [InlineData(Algorithms.LanguageModel)]
    public void A_whole_trace_score_ranks_an_unseen_loop_above_a_normal_trace_with_one_odd_burst_where_the_highest_window_does_not(string algo)
    {
        var normal = NormalTraces(1, 40);
        AnomalyModel Fit(string traceScore) => algo == Algorithms.Ngram
            ? NgramModel.Fit(normal, new NgramOptions { TraceScore = traceScore })
            : LanguageModel.Fit(normal, new LanguageModelOptions { TraceScore = traceScore });
        var whole = Fit(TraceScores.Trace);
        var window = Fit(TraceScores.Window);
        Assert.True(whole.ScoresWholeTraces);
        Assert.False(window.ScoresWholeTraces);

        int[] burst = NormalWithOneBurst(3), loop = UnseenLoop(4);
        Assert.True(whole.ScoreTrace(loop) > whole.ScoreTrace(burst), $"whole trace: loop {whole.ScoreTrace(loop)} <= burst {whole.ScoreTrace(burst)}");
        Assert.True(window.ScoreTrace(burst) > window.ScoreTrace(loop), $"highest window: burst {window.ScoreTrace(burst)} <= loop {window.ScoreTrace(loop)}");
        // Both score one window alike (what the online monitor sees), and the highest window is the window mode's trace score.
        Assert.Equal(window.ScoreWindow(loop.AsSpan(0, 64)), whole.ScoreWindow(loop.AsSpan(0, 64)));
        Assert.Equal(window.ScoreTrace(burst), whole.HighestWindow(burst));
    }

    [Fact]
    public void Stide_whole_trace_score_is_the_share_of_all_its_ngrams_never_seen()
    {
        var model = NgramModel.Fit(NormalTraces(2, 20), new NgramOptions { N = 4 });
        var rng = new Random(12);
        for (int i = 0; i < 100; i++)
        {
            var t = Enumerable.Range(0, rng.Next(1, 400)).Select(_ => rng.Next(12)).ToArray();
            double expected = t.Length < 4 ? model.ScoreWindow(t)
                : Enumerable.Range(0, t.Length - 3).Average(start => model.ScoreWindow(t.AsSpan(start, 4)));
            Assert.Equal(expected, model.ScoreTrace(t), 12);
        }
    }

    [Fact]
    public void A_whole_trace_model_calibrates_windows_apart_and_scores_live_windows_on_that()
    {
        var normal = Named(NormalTraces(5, 40));
        using var whole = AnomalyTrainer.Train(normal, new TrainOptions { Algo = Algorithms.LanguageModel });
        using var window = AnomalyTrainer.Train(normal, new TrainOptions { Algo = Algorithms.LanguageModel, LanguageModel = new() { TraceScore = TraceScores.Window } });
        Assert.Null(window.Calibration.Window);
        var windows = Assert.IsType<ScoreCalibration>(whole.Calibration.Window);
        // A window's mean surprisal varies more than a whole trace's: its alarm line is higher.
        Assert.True(windows.AlarmRaw > whole.Calibration.AlarmRaw, $"{windows.AlarmRaw} <= {whole.Calibration.AlarmRaw}");

        int[] live = AttackTrace(3)[170..234];
        var score = whole.Score(live);
        Assert.Equal(windows.Apply(score.Raw), score.Score);
        Assert.Equal(score, whole.ScoreBatch([live, live])[1]);
    }

    [Theory]
    [InlineData(Algorithms.Ngram, TraceScores.Trace)]
    [InlineData(Algorithms.LanguageModel, TraceScores.Trace)]
    [InlineData(Algorithms.LanguageModel, TraceScores.Window)]
    [InlineData(Algorithms.Ensemble, TraceScores.Trace)]
    [InlineData(Algorithms.Ensemble, TraceScores.Window)]
    public void Batched_windows_score_as_windows_one_by_one(string algo, string traceScore)
    {
        var options = new TrainOptions
        {
            Algo = algo, Ngram = new() { TraceScore = traceScore }, LanguageModel = new() { TraceScore = traceScore },
            Ensemble = new() { Members = [Algorithms.Ngram, Algorithms.LanguageModel], TraceScore = traceScore },
        };
        using var detector = AnomalyTrainer.Train(Named(NormalTraces(8, 30)), options);
        int[][] traces = [AttackTrace(1), UnseenLoop(2), .. NormalTraces(80, 3), [5, 9]];
        var windows = traces.SelectMany(t => detector.Model.Windows.Ends(t.Length).Select(end => detector.Model.Windows.Window(t, end).ToArray())).ToList();
        Assert.Equal(windows.Select(w => detector.Score(w)), detector.ScoreBatch(windows));
        Assert.Equal(traces.Select(t => detector.Model.HighestWindow(t)), detector.Model.HighestWindows(traces));
    }

    [Fact]
    public void Model_files_without_trace_score_keep_scoring_by_the_highest_window()
    {
        var normal = Named(NormalTraces(6, 20));
        var probe = NormalTraces(60, 4).Append(AttackTrace(8)).ToList();
        foreach (var algo in new[] { Algorithms.Ngram, Algorithms.LanguageModel, Algorithms.Ensemble })
        {
            var options = new TrainOptions
            {
                Algo = algo, Ngram = new() { TraceScore = TraceScores.Window }, LanguageModel = new() { TraceScore = TraceScores.Window },
                Ensemble = new() { Members = [Algorithms.Ngram, Algorithms.LanguageModel], TraceScore = TraceScores.Window },
            };
            using var old = AnomalyTrainer.Train(normal, options);
            string path = Path.Combine(_dir, $"{algo}.model");
            ModelFile.Save(old, path);
            // As a build before trace_score wrote it: no such key at the top (an ensemble's members carry their own copy in the payload).
            EditHeader(path, json => System.Text.RegularExpressions.Regex.Replace(json, @",\s*""trace_score"": ""window""", ""));
            using var loaded = ModelFile.Load(path);
            Assert.False(loaded.Model.ScoresWholeTraces, algo);
            Assert.Equal(old.ScoreTraces(probe), loaded.ScoreTraces(probe));
        }
    }

    [Theory]
    [InlineData(EnsembleModel.Mean)]
    [InlineData(EnsembleModel.Max)]
    public void An_ensemble_combines_its_members_calibrated_whole_trace_and_highest_window_scores(string combine)
    {
        var normal = Named(NormalTraces(7, 30));
        var options = new TrainOptions { Algo = Algorithms.Ensemble, Ensemble = new() { Members = [Algorithms.Ngram, Algorithms.LanguageModel], Combine = combine } };
        using var detector = AnomalyTrainer.Train(normal, options);
        var ensemble = Assert.IsType<EnsembleModel>(detector.Model);
        Assert.True(ensemble.ScoresWholeTraces);

        int[][] traces = [AttackTrace(3), .. NormalTraces(70, 3), UnseenLoop(5)];
        var raw = ensemble.ScoreTraces(traces);
        for (int i = 0; i < traces.Length; i++)
        {
            // Each member's whole-trace score, and its highest window's on its window calibration.
            var member = ensemble.Members.SelectMany(m => new[]
            {
                m.Calibration.Continuous(m.Model.ScoreTraces([traces[i]])[0]),
                m.Calibration.ForWindows.Continuous(m.Model.HighestWindow(traces[i])),
            }).ToArray();
            Assert.Equal(combine == EnsembleModel.Max ? member.Max() : member.Average(), raw[i], 9);
        }
        Assert.Equal(combine == EnsembleModel.Max ? 900 : 500, ensemble.Combined([100.0, 900.0]));
        Assert.Contains("combine", Assert.Throws<ArgumentException>(() => AnomalyTrainer.Train(normal, options with { Ensemble = new() { Combine = "median" } })).Message);
    }

    [Fact]
    public void Calibrated_scores_an_ensemble_combines_go_on_past_1000_so_that_extremes_still_rank()
    {
        var c = ScoreCalibration.Fit([1.0, 2.0, 3.0, 4.0], 0.01);
        double top = c.Raw[^1];
        Assert.Equal(1000, c.Apply(top + 5));
        Assert.Equal(1000, c.Continuous(top), 9);
        Assert.True(c.Continuous(top + 10) > c.Continuous(top + 5) && c.Continuous(top + 5) > 1000);
        Assert.Equal(c.Continuous(2.5), c.Apply(2.5), 0); // below the top, the same map
    }

    [Fact]
    public void The_alarm_line_is_the_conformal_rank_of_the_held_out_scores()
    {
        // ⌈(n+1)(1−α)⌉ = ⌈11 · 0.9⌉ = 10: the largest of ten, where the plain ⌈n(1−α)⌉-th would be the ninth.
        double[] heldOut = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        Assert.Equal(10, ScoreCalibration.Fit(heldOut, 0.1).AlarmRaw);
        Assert.Equal(9, ScoreCalibration.Quantile(heldOut, 0.9));
        // With enough held-out traces it is the plain quantile's neighbour: 200 scores at 1%, the 199th.
        double[] many = [.. Enumerable.Range(1, 200).Select(i => (double)i)];
        Assert.Equal(199, ScoreCalibration.Fit(many, 0.01).AlarmRaw);
    }
}
