namespace Mis.Anomaly.Tests;

/// <summary>`mis anomaly train / score / eval` on the committed corpus produce their files; bad input is exit 2 naming file and line.</summary>
public sealed class CliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-anomaly-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Two programs laid out as ../shared/datasets/unm is, one with too few normal traces to split.</summary>
    internal static string PerProgramSet(string dir)
    {
        string set = Path.Combine(dir, "public");
        static string Line(int[] syscalls, string label) => $"{{\"syscalls\": [{string.Join(", ", syscalls)}], \"label\": \"{label}\"}}";
        void Write(string program, string kind, IEnumerable<string> lines)
        {
            Directory.CreateDirectory(Path.Combine(set, program, kind));
            File.WriteAllLines(Path.Combine(set, program, kind, "traces.jsonl"), lines);
        }
        Write("daemon", "normal", ModelTests.NormalTraces(1, 12).Select(t => Line(t, "normal")));
        Write("daemon", "attack", Enumerable.Range(0, 4).Select(i => Line(ModelTests.AttackTrace(i), "attack")));
        Write("tiny", "normal", ModelTests.NormalTraces(2, 2).Select(t => Line(t, "normal")));
        Write("tiny", "attack", [Line(ModelTests.AttackTrace(9), "attack")]);
        return set;
    }

    [Fact]
    public void Bench_on_a_per_program_data_set_trains_on_half_of_each_programs_normal_traces_and_says_what_it_skipped()
    {
        string set = PerProgramSet(_dir);
        var bench = MisCli.Run("anomaly", "bench", "--no-corpus", "--dataset", set, "--algo", "ngram", "ensemble");

        Assert.True(bench.ExitCode == 0, bench.ToString());
        Assert.Contains("tiny: 2 normal and 1 attack traces, too few to split; skipped", bench.Stderr);
        Assert.Contains("ensemble on daemon (2/2): training on 6 normal traces, testing on 6 normal and 4 attack", bench.Stderr);
        var rows = bench.Stdout.Split('\n').Where(l => l.Contains(" public ")).ToList();
        Assert.Equal(4, rows.Count); // per model: the program and the mean
        Assert.Equal(2, rows.Count(r => r.Contains(" mean ")));
        // Six training traces may leave one of the three synthetic loops unseen: what each model
        // makes of that is ModelTests' and WholeTraceTests' business; here, that the row is there.
        Assert.All(rows, r => Assert.InRange(double.Parse(r.Split('│')[6], System.Globalization.CultureInfo.InvariantCulture), 0, 1));

        // --seed picks the half (BenchTests: another seed, another half): the same seed, the same figures.
        IEnumerable<string> Figures(string seed) => MisCli.Run("anomaly", "bench", "--no-corpus", "--dataset", set, "--algo", "ngram", "--seed", seed)
            .Stdout.Split('\n').Where(l => l.Contains(" daemon ")).Select(l => string.Join('│', l.Split('│')[4..10]));
        Assert.Equal(Figures("2"), Figures("2"));
    }

    [Fact]
    public void Bench_reports_every_model_on_the_corpus_and_every_data_set_in_one_table_and_a_csv()
    {
        string set = PerProgramSet(_dir);
        string csv = Path.Combine(_dir, "bench.csv");
        var bench = MisCli.Run("anomaly", "bench", "--dataset", set, "--algo", "ngram", "lm", "--seconds", "0.05", "--out", csv);

        Assert.True(bench.ExitCode == 0, bench.ToString());
        Assert.Single(bench.Stdout.Split('\n'), l => l.Contains("│ model"));
        var lines = File.ReadAllLines(csv);
        Assert.StartsWith("model,data_set,part,", lines[0]);
        // The corpus (by default) and the per-program set: 2 models × (the corpus's test split + daemon + mean).
        var parts = lines.Skip(1).Select(l => string.Join('/', l.Split(',')[..3])).ToList();
        Assert.Equal(["ngram/corpus/test split", "lm/corpus/test split", "ngram/public/daemon", "ngram/public/mean", "lm/public/daemon", "lm/public/mean"], parts);
        Assert.Contains("bench: data set 2/2", bench.Stderr);
    }

    [Fact]
    public void Train_score_eval_write_the_model_the_csv_and_the_roc_plot()
    {
        string model = Path.Combine(_dir, "ngram.model");
        var train = MisCli.Run("anomaly", "train", "--traces", Path.Combine(MisCli.Corpus, "normal", "train"), "--algo", "ngram", "--out", model);
        Assert.True(train.ExitCode == 0, train.ToString());
        Assert.True(File.Exists(model));
        Assert.Contains("ngram, window 64/16", train.Stdout);
        Assert.Contains("calibrated on their scores by models fitted without them (5 folds)", train.Stdout);
        Assert.Contains("train ngram", train.Stderr); // the progress bar
        var oneFold = MisCli.Run("anomaly", "train", "--traces", Path.Combine(MisCli.Corpus, "normal", "train"), "--folds", "1", "--out", Path.Combine(_dir, "one.model"));
        Assert.Equal(2, oneFold.ExitCode);
        Assert.Contains("cross-fitting needs at least 2 folds, got 1", oneFold.Stderr);

        string csv = Path.Combine(_dir, "scores.csv");
        string attack = Path.Combine(MisCli.Corpus, "attack");
        var score = MisCli.Run("anomaly", "score", "--model", model, "--traces", attack, "--out", csv);
        Assert.True(score.ExitCode == 0, score.ToString());
        var lines = File.ReadAllLines(csv);
        Assert.Equal("file,score,raw_score", lines[0]);
        Assert.Equal(Traces.TraceReader.Read(attack).Count, lines.Length - 1);
        Assert.All(lines.Skip(1), l =>
        {
            var f = l.Split(',');
            Assert.True(File.Exists(f[0].Split(':')[0]), f[0]); // "file" or, for a .jsonl line, "file:line"
            Assert.InRange(int.Parse(f[1]), 0, 1000);
            Assert.True(double.TryParse(f[2], System.Globalization.CultureInfo.InvariantCulture, out _), f[2]);
        });

        string png = Path.Combine(_dir, "roc.png");
        var eval = MisCli.Run("anomaly", "eval", "--model", model, "--normal", Path.Combine(MisCli.Corpus, "normal", "test"), "--attack", attack, "--plot", png);
        Assert.True(eval.ExitCode == 0, eval.ToString());
        foreach (var column in new[] { "AUROC", "DR@1%", "DR@5%", "DR@10%", "FA>800" })
            Assert.Contains(column, eval.Stdout);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, File.ReadAllBytes(png)[..4]);
    }

    [Fact]
    public void Bad_trace_input_is_exit_2_naming_file_and_line()
    {
        string traces = Directory.CreateDirectory(Path.Combine(_dir, "traces")).FullName;
        File.WriteAllText(Path.Combine(traces, "ok.trace"), "1 2 3 4 5 6 7");
        string bad = Path.Combine(traces, "bad.trace");
        File.WriteAllText(bad, "1 2 3\n4 five 6\n");
        var result = MisCli.Run("anomaly", "train", "--traces", traces, "--out", Path.Combine(_dir, "m.model"));
        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"{bad}:2: token 2: 'five' is not a syscall number", result.Stderr);
        Assert.False(File.Exists(Path.Combine(_dir, "m.model")));
    }

    [Fact]
    public void A_file_that_is_no_model_is_exit_2_with_why()
    {
        string junk = Path.Combine(_dir, "junk.model");
        File.WriteAllText(junk, "not a model");
        var result = MisCli.Run("anomaly", "score", "--model", junk, "--traces", MisCli.Corpus, "--out", Path.Combine(_dir, "s.csv"));
        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"{junk}: not a MIS anomaly model", result.Stderr);
    }
}
