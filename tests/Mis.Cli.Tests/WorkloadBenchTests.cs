using System.Text.Json;
using Mis.Bench.Workloads;
using Mis.Enforcer.Policy;
using Mis.Testing;

namespace Mis.Cli.Tests;

/// <summary>
/// `mis bench --workloads`: every workload runs in every mode, clean under MIS, and the figures
/// are coherent. No test asserts a speed: the figures depend on the machine and its load.
/// </summary>
public sealed class WorkloadBenchTests
{
    private static readonly string[] Modes = ["bare", "floor", "floor_addfd", "mis"];

    private static void RequireKernel()
    {
        HostRequirements.Root();
        HostRequirements.That(File.Exists("/sys/kernel/btf/vmlinux"), "no kernel BTF");
        HostRequirements.That(File.Exists(WorkloadCatalog.Python) && File.Exists("/usr/bin/gcc") && File.Exists("/usr/bin/git"),
            "the workloads need /usr/bin/python3, gcc and git (./mis installs them)");
    }

    [Fact]
    public void Workloads_quick_json_runs_every_workload_in_every_mode_clean_under_MIS()
    {
        RequireKernel();
        var result = CliRunner.Run("bench", "--workloads", "--quick", "--json");
        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\n{result.Stderr}");
        var root = JsonDocument.Parse(result.Stdout).RootElement;
        Assert.Equal(1, root.GetProperty("schema_version").GetInt32());
        var w = root.GetProperty("workloads");
        Assert.Equal(1, w.GetProperty("rounds").GetInt32());
        Assert.Equal("nobody", w.GetProperty("user").GetString());
        Assert.Equal(Modes, w.GetProperty("modes").EnumerateArray().Select(m => m.GetString()));
        Assert.True(w.GetProperty("enforcer_rss_kb").GetInt64() > 0);
        Assert.Matches(@"^\d+\.\d+ \d+\.\d+ \d+\.\d+$", w.GetProperty("load_average_start").GetString()!);

        var rows = w.GetProperty("workloads").EnumerateArray().ToList();
        Assert.Equal(WorkloadCatalog.For(WorkloadSizes.Quick).Select(d => d.Key), rows.Select(r => r.GetProperty("name").GetString()));
        Assert.Contains("git", rows.Select(r => r.GetProperty("name").GetString()));
        foreach (var row in rows)
        {
            string name = row.GetProperty("name").GetString()!;
            // A denial under MIS (a violation) or a failed run in any mode is a failure with a reason.
            Assert.True(row.GetProperty("failure").ValueKind == JsonValueKind.Null, $"{name}: {row.GetProperty("failure")}");
            foreach (string mode in Modes)
            {
                Assert.True(row.GetProperty($"{mode}_median_ms").GetDouble() > 0, $"{name} {mode}");
                Assert.Single(row.GetProperty("samples_ms").GetProperty(mode).EnumerateArray());
            }
            foreach (string mode in Modes.Skip(1))
                Assert.True(row.GetProperty($"{mode}_ratio").GetDouble() > 0, $"{name} {mode} ratio");
            Assert.True(row.GetProperty("mis_notifications_per_run").GetDouble() > 0, $"{name}: MIS decided nothing, so it did not run under MIS");
        }
        foreach (string mode in Modes)
            Assert.True(w.GetProperty("reader_scaling").GetProperty(mode).GetProperty("four_over_one").GetDouble() > 0, mode);
    }

    [Fact]
    public void Table_names_every_workload_its_target_and_the_floor()
    {
        RequireKernel();
        var result = CliRunner.Run("bench", "--workloads", "--quick");
        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\n{result.Stderr}");
        foreach (string text in new[] { "file walk", "directory walk", "exec loop", "Python imports", "gcc", "git", "4 threads", "reader scaling",
                                        "≤ 2.0×", "≤ 1.5×", "≤ 1.2×", "≤ 1.15×", "floor", "MIS / bare", "Load average", "enforcer RSS" })
            Assert.Contains(text, result.Stdout);
        Assert.Contains("mis bench: workloads", result.Stderr); // the progress line
    }

    [Fact]
    public void A_denial_under_MIS_fails_the_row_and_names_what_was_denied()
    {
        RequireKernel();
        var policy = PolicyFile.Parse("""
            [policy]
            name = "deny-json"

            [[file]]
            path = "/usr/lib/python3*/json/**"
            action = "deny"
            """, "deny-json.toml");
        var r = WorkloadBench.Run(new WorkloadBenchOptions
        {
            Rounds = 1,
            Sizes = WorkloadSizes.Quick,
            Only = new HashSet<string> { "file_walk", "exec_loop" },
            Policy = policy,
        });
        var walk = r.Find("file_walk")!;
        Assert.NotNull(walk.Failure);
        Assert.Contains("denied under MIS", walk.Failure);
        Assert.True(walk.Failure.Contains("/usr/lib/python3", StringComparison.Ordinal) && walk.Failure.Contains("/json", StringComparison.Ordinal), walk.Failure);
        Assert.Null(r.Find("exec_loop")!.Failure); // one workload's failure does not stop the others
        Assert.Contains(r.Failures, f => f.Workload.Key == "file_walk");
    }

    [Fact]
    public void Bad_rounds_name_the_option()
    {
        var result = CliRunner.Run("bench", "--workloads", "--rounds", "0");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("--rounds must be a positive number", result.Stderr);
    }

    [Fact]
    public void Median_is_the_middle_value_or_the_mean_of_the_two_middle_ones()
    {
        Assert.Equal(2, WorkloadMath.Median([3, 1, 2]));
        Assert.Equal(2.5, WorkloadMath.Median([4, 1, 3, 2]));
        Assert.Equal(7, WorkloadMath.Median([7]));
        Assert.True(double.IsNaN(WorkloadMath.Median([])));
    }

    [Fact]
    public void Ratio_needs_a_positive_finite_baseline()
    {
        Assert.Equal(1.5, WorkloadMath.Ratio(3, 2));
        Assert.Null(WorkloadMath.Ratio(3, 0));
        Assert.Null(WorkloadMath.Ratio(double.NaN, 2));
        Assert.Null(WorkloadMath.Ratio(3, double.NaN));
    }

    private static WorkloadFigures Figures(string key, double? target, double[] bare, double[] floor, double[] addfd, double[] mis) => new()
    {
        Workload = new WorkloadDefinition(key, key, target, _ => ["/bin/true"], []),
        SamplesNs = new Dictionary<WorkloadMode, IReadOnlyList<double>>
        {
            [WorkloadMode.Bare] = bare, [WorkloadMode.Floor] = floor, [WorkloadMode.FloorAddfd] = addfd, [WorkloadMode.Mis] = mis,
        },
        MisNotifications = 10,
    };

    private static WorkloadBenchResult Result(IReadOnlyList<WorkloadFigures> workloads, IReadOnlyList<WorkloadMode> modes) => new()
    {
        Rounds = 3,
        Workloads = workloads,
        Modes = modes,
        FloorThreads = 4,
        User = "nobody",
        LoadAverageStart = "0.00 0.00 0.00",
        LoadAverageEnd = "0.00 0.00 0.00",
        EnforcerRssKb = 1,
        EnforcerPeakRssKb = 1,
        Elapsed = TimeSpan.FromSeconds(1),
    };

    [Fact]
    public void Ratios_are_of_medians_and_scaling_is_four_threads_over_one_relative_to_bare()
    {
        // Medians: bare 10, floor 15, addfd 20, MIS 30; an outlier does not move them.
        var walk = Figures("file_walk", 2.0, [10, 11, 9], [15, 1000, 14], [20, 20, 20], [30, 29, 31]);
        Assert.Equal(10, walk.MedianNs(WorkloadMode.Bare));
        Assert.Equal(1.5, walk.Ratio(WorkloadMode.Floor));
        Assert.Equal(3.0, walk.Ratio(WorkloadMode.Mis));
        Assert.False(walk.TargetMet);
        Assert.Null(Figures("git", null, [1], [1], [1], [1]).TargetMet);

        var result = Result(
        [
            walk,
            // 4 threads do 4× the work: bare on 2 cores takes 2×, MIS serialised 4×.
            Figures(WorkloadCatalog.Reader1, null, [100], [200], [200], [300]),
            Figures(WorkloadCatalog.Reader4, null, [200], [400], [500], [1200]),
        ], [WorkloadMode.Bare, WorkloadMode.Floor, WorkloadMode.FloorAddfd, WorkloadMode.Mis]);
        Assert.Equal(2.0, result.Scaling(WorkloadMode.Bare));
        Assert.Equal(4.0, result.Scaling(WorkloadMode.Mis));
        Assert.Equal(2.0, result.ScalingOverBare(WorkloadMode.Mis));
        Assert.Equal(1.0, result.ScalingOverBare(WorkloadMode.Floor));
        Assert.False(WorkloadReport.ScalingMet(result));
        Assert.Contains(WorkloadReport.Rows(result), r => r.Metric.Contains("4 threads", StringComparison.Ordinal) && r.Met == false);
        Assert.Contains(WorkloadReport.Rows(result), r => r.Metric.Contains("file_walk", StringComparison.Ordinal) && r.Measured.StartsWith("×3.00", StringComparison.Ordinal));
    }

    [Fact]
    public void Where_the_LSM_backend_was_measured_the_table_and_the_readme_rows_show_it_against_its_own_target()
    {
        var walk = Figures("file_walk", 2.0, [10], [15], [20], [30]);
        walk = walk with { SamplesNs = new Dictionary<WorkloadMode, IReadOnlyList<double>>(walk.SamplesNs) { [WorkloadMode.MisLsm] = [10.4] } };
        var result = Result([walk], [WorkloadMode.Bare, WorkloadMode.Floor, WorkloadMode.FloorAddfd, WorkloadMode.Mis, WorkloadMode.MisLsm]);
        string table = WorkloadReport.Table(result, markdown: true);
        Assert.Contains("MIS (LSM)", table, StringComparison.Ordinal);
        Assert.Contains("×1.04", table, StringComparison.Ordinal);
        Assert.Contains(WorkloadReport.Rows(result), r => r.Metric.Contains("BPF LSM", StringComparison.Ordinal) && r.Met == true);
        Assert.Equal("mis_lsm", WorkloadMath.Name(WorkloadMode.MisLsm));
        // Without it, no LSM column.
        Assert.DoesNotContain("LSM", WorkloadReport.Table(result with { Modes = [.. result.Modes.SkipLast(1)] }, markdown: true), StringComparison.Ordinal);
    }
}
