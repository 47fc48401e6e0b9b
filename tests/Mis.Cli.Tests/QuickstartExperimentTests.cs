using System.Text.Json.Nodes;
using Mis.Testing;

namespace Mis.Cli.Tests;

/// <summary>
/// <c>mis quickstart</c>, run once (it takes most of a minute): the host probe, the default ladder,
/// the seed's workload walked up it for real, then a short experiment and the path of its report.
/// </summary>
public sealed class QuickstartExperimentTests
{
    [Fact]
    public void Quickstart_walks_the_ladder_for_real_then_runs_a_short_experiment_and_prints_the_report_path_last()
    {
        string outDir = Path.Combine(Path.GetTempPath(), "mis-quickstart-" + Guid.NewGuid().ToString("N"));
        try
        {
            var result = CliRunner.Run("quickstart", "--out", outDir);
            Assert.True(result.ExitCode == 0, result.Stderr + result.Stdout);
            var lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            // Doctor's output comes first.
            Assert.StartsWith("[1/4] Probing this host", lines[0]);
            Assert.Equal($"report: {Path.Combine(outDir, "report.html")}", lines[^1]);
            bool kernel = result.Stdout.Contains("backend: kernel", StringComparison.Ordinal);
            Assert.Contains("violation  3: DEFCON 5 -> 4", result.Stdout);
            Assert.Contains("violation 15: DEFCON 2 -> 1, the whole cgroup is killed", result.Stdout);
            // The seed's workload for real, where the host allows it (it must, in CI).
            Assert.Contains(HostRequirements.InCi || kernel ? "the kernel followed the configured ladder: yes" : "skipped:", result.Stdout);
            Assert.Contains(kernel ? "on the kernel backend" : "on the simulator, because", result.Stdout);
            Assert.Contains("scenario data-shortcut-strict: DEFCON 4, 3, 2, 1 at 1, 2, 3, 4 violations; configurations deny and deny+slowdown+kill, 3 seeds × 30 episodes", result.Stdout);
            if (HostRequirements.InCi)
                Assert.True(kernel, "CI hosts run the kernel backend");
            var experiment = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")))!;
            Assert.All(experiment["configs"]!.AsArray(), c => Assert.Equal(kernel ? "kernel" : "sim", c!["config"]!["backend"]!.GetValue<string>()));
            Assert.True(File.Exists(Path.Combine(outDir, "report.html")));

            // The two configurations differ in what the enforcer did, on either backend: under the
            // full response the exploring agents meet the slowdown and the kill, under deny neither.
            var deny = Episodes(outDir, "deny");
            var full = Episodes(outDir, "deny+slowdown+kill");
            Assert.DoesNotContain(deny, e => e["killed"] == 1 || e["slowdown"] > 0);
            Assert.Contains(full, e => e["killed"] == 1);
            Assert.Contains(full, e => e["slowdown"] > 0);
        }
        finally
        {
            if (Directory.Exists(outDir))
                Directory.Delete(outDir, recursive: true);
        }
    }

    // Every episode of every seed of a config, each as column name -> value (episodes.csv is plain numbers; an unscored anomaly score is empty: NaN).
    private static List<Dictionary<string, double>> Episodes(string runDir, string config)
    {
        var episodes = new List<Dictionary<string, double>>();
        foreach (string file in Directory.GetFiles(Path.Combine(runDir, config), "episodes.csv", SearchOption.AllDirectories))
        {
            var lines = File.ReadAllLines(file);
            var header = lines[0].Split(',');
            episodes.AddRange(lines.Skip(1).Where(l => l.Length > 0).Select(l => header
                .Zip(l.Split(','), (name, value) => (name, value: value.Length == 0 ? double.NaN : double.Parse(value, System.Globalization.CultureInfo.InvariantCulture)))
                .ToDictionary(p => p.name, p => p.value)));
        }
        Assert.NotEmpty(episodes);
        return episodes;
    }
}
