using System.Globalization;
using System.Text.Json.Nodes;
using Mis.Anomaly.Models;
using Mis.Bench.Anomaly;

namespace Mis.Anomaly.Tests;

/// <summary><c>mis anomaly bench</c>'s rows: one per model and data set (per program, and the mean), written as CSV and JSON that parse.</summary>
public sealed class BenchTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-anomaly-bench-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // A small corpus laid out as experiments/anomaly/corpus is, of the synthetic programs.
    private string Corpus()
    {
        string corpus = Path.Combine(_dir, "mini");
        void Write(string split, IEnumerable<int[]> traces)
        {
            Directory.CreateDirectory(Path.Combine(corpus, split));
            int i = 0;
            foreach (var t in traces)
                File.WriteAllText(Path.Combine(corpus, split, $"{i++}.trace"), string.Join(' ', t));
        }
        Write("normal/train", ModelTests.NormalTraces(1, 20));
        Write("normal/test", ModelTests.NormalTraces(2, 6));
        Write("attack", Enumerable.Range(0, 3).Select(ModelTests.AttackTrace));
        return corpus;
    }

    [Fact]
    public void A_per_program_sets_half_is_the_seeds()
    {
        string set = CliTests.PerProgramSet(_dir);
        double[] TestNormal(int seed) => ScoringBench.RunPerProgram(set, [Algorithms.LanguageModel], new TrainOptions { Seed = seed })
            .Single(r => r.Part == "daemon").Eval.NormalRaw;
        Assert.Equal(TestNormal(1), TestNormal(1));
        Assert.NotEqual(TestNormal(1), TestNormal(2));
    }

    [Fact]
    public void Every_model_on_every_data_set_is_a_row_and_the_csv_and_json_say_the_same()
    {
        string corpus = Corpus(), set = CliTests.PerProgramSet(_dir);
        Assert.True(ScoringBench.IsCorpus(corpus));
        Assert.False(ScoringBench.IsCorpus(set));
        var log = new List<string>();
        var rows = ScoringBench.RunAll([corpus, set], [Algorithms.Ngram, Algorithms.LanguageModel], new TrainOptions(), TimeSpan.FromSeconds(0.02), log.Add);

        Assert.Equal(
            [("ngram", "mini", ScoringBench.TestSplit), ("lm", "mini", ScoringBench.TestSplit),
             ("ngram", "public", "daemon"), ("ngram", "public", ScoringBench.MeanPart), ("lm", "public", "daemon"), ("lm", "public", ScoringBench.MeanPart)],
            rows.Select(r => (r.Model, r.DataSet, r.Part)));
        Assert.All(rows, r => Assert.True(r.TraceSyscallsPerSecond > 0 && r.TrainSeconds >= 0));
        Assert.All(rows.Where(r => r.DataSet == "mini"), r => Assert.True(r.OnlineSyscallsPerSecond > 0));
        Assert.All(rows.Where(r => r.DataSet == "public"), r => Assert.True(double.IsNaN(r.OnlineSyscallsPerSecond)));
        Assert.Contains(log, l => l.Contains("data set 2/2"));

        string csvPath = Path.Combine(_dir, "out", "bench.csv"), jsonPath = Path.Combine(_dir, "out", "bench.json");
        ScoringBench.Save(rows, csvPath);
        ScoringBench.Save(rows, jsonPath);
        var lines = File.ReadAllLines(csvPath);
        var header = lines[0].Split(',');
        Assert.Equal(rows.Count + 1, lines.Length);
        var json = JsonNode.Parse(File.ReadAllText(jsonPath))!.AsArray();
        Assert.Equal(rows.Count, json.Count);
        for (int i = 0; i < rows.Count; i++)
        {
            var cells = lines[i + 1].Split(',');
            Assert.Equal(header.Length, cells.Length);
            var o = json[i]!.AsObject();
            Assert.Equal(header, o.Select(kv => kv.Key));
            double auroc = double.Parse(cells[Array.IndexOf(header, "auroc")], CultureInfo.InvariantCulture);
            Assert.Equal(rows[i].Eval.Auroc, auroc);
            Assert.Equal(auroc, o["auroc"]!.GetValue<double>());
            string online = cells[Array.IndexOf(header, "online_syscalls_per_second")];
            Assert.Equal(rows[i].DataSet == "public", online == "");
            Assert.Equal(rows[i].DataSet == "public", o["online_syscalls_per_second"] is null);
        }
        string table = ScoringBench.Table(rows);
        Assert.Equal(rows.Count, table.Split('\n').Count(l => l.Contains(" mini ") || l.Contains(" public ")));
    }
}
