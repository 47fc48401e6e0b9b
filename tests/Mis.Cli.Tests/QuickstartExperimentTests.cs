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
            if (HostRequirements.InCi)
                Assert.True(kernel, "CI hosts run the kernel backend");
            var experiment = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")))!;
            Assert.All(experiment["configs"]!.AsArray(), c => Assert.Equal(kernel ? "kernel" : "sim", c!["config"]!["backend"]!.GetValue<string>()));
            Assert.True(File.Exists(Path.Combine(outDir, "report.html")));
        }
        finally
        {
            if (Directory.Exists(outDir))
                Directory.Delete(outDir, recursive: true);
        }
    }
}
