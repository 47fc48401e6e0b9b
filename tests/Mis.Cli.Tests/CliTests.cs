using System.Text.Json;
using Mis.Cli.Commands;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Host;
using Mis.Testing;

namespace Mis.Cli.Tests;

public sealed class CliTests
{
    [Fact]
    public void Help_lists_every_subcommand()
    {
        var result = CliRunner.Run("--help");
        Assert.Equal(0, result.ExitCode);
        foreach (var command in new[] { "quickstart", "doctor", "config", "test" })
            Assert.Contains(command, result.Stdout);
    }

    [Theory]
    [InlineData("doctor", "--json")]
    [InlineData("quickstart", "--config")]
    [InlineData("test", "--filter")]
    [InlineData("config", "check")]
    public void Each_subcommand_has_a_help_that_names_its_options(string command, string expected)
    {
        var result = CliRunner.Run(command, "--help");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains(expected, result.Stdout);
    }

    [Fact]
    public void Doctor_json_is_a_host_report()
    {
        var result = CliRunner.Run("doctor", "--json");
        Assert.Equal(0, result.ExitCode);
        var report = HostReport.FromJson(result.Stdout);
        Assert.Contains(report.Backend.Name, new[] { "kernel", "sim" });
        Assert.Equal(8, report.Programs.Count);
        Assert.All(report.Programs, p => Assert.Contains(p.Status, new[] { "works", "loads_only", "refused", "not_probed" }));
    }

    [Fact]
    public void Doctor_text_names_every_program_kind_and_the_backend()
    {
        var result = CliRunner.Run("doctor");
        Assert.Equal(0, result.ExitCode);
        foreach (var kind in new[] { "tp_btf", "raw_tracepoint", "lsm", "fentry", "cgroup_connect4", "cgroup_sock_create", "syscall" })
            Assert.Contains(kind, result.Stdout);
        Assert.Contains("backend", result.Stdout);
    }

    [Fact]
    public void Doctor_without_root_reports_not_probed_instead_of_failing()
    {
        HostRequirements.Root(); // needs root to become someone else
        var result = CliRunner.RunAs("nobody", "doctor", "--json");
        Assert.True(result.ExitCode == 0, result.Stderr);
        string stdout = result.Stdout;

        var report = HostReport.FromJson(stdout);
        Assert.False(report.Privileges.Root);
        Assert.Equal("sim", report.Backend.Name);
        Assert.Contains("root", report.Backend.Reason);
        Assert.All(report.Programs.Where(p => p.Kind.StartsWith("cgroup_", StringComparison.Ordinal)),
            p => Assert.Equal("not_probed", p.Status));
    }

    [Fact]
    public void Ladder_follows_configured_thresholds_and_slowdowns()
    {
        var defcon = MisConfig.Default.Defcon with { Thresholds = [1, 2, 4, 8], SlowdownUs = [50, 500, 5000] };
        string ladder = QuickstartCommand.Ladder(defcon);
        Assert.Contains("violation  1: DEFCON 5 -> 4, every syscall of the cgroup slowed by 0.05 ms", ladder);
        Assert.Contains("violation  4: DEFCON 3 -> 2, every syscall of the cgroup slowed by 5 ms", ladder);
        Assert.Contains("violation  8: DEFCON 2 -> 1", ladder);
    }

    [Fact]
    public void Config_check_names_file_line_and_key_of_an_error()
    {
        string file = Path.Combine(Path.GetTempPath(), $"mis-cli-{Guid.NewGuid():N}.toml");
        File.WriteAllText(file, "[grpc]\nenabled = true\nport = \"fifty\"\n");
        try
        {
            var result = CliRunner.Run("config", "check", file);
            Assert.Equal(2, result.ExitCode);
            Assert.Contains($"{Path.GetFileName(file)}:3", result.Stderr);
            Assert.Contains("grpc.port", result.Stderr);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Config_check_accepts_the_documented_config()
    {
        var result = CliRunner.Run("config", "check", Path.Combine(RepoRoot.Find(), "config", "config.toml"));
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("valid", result.Stdout);
    }

    [Fact]
    public void Test_tally_sums_vstest_summary_lines()
    {
        var tally = new TestCommand.Tally();
        tally.Read("Passed!  - Failed:     0, Passed:    12, Skipped:     1, Total:    13, Duration: 1 s - A.Tests.dll (net10.0)");
        tally.Read("Failed!  - Failed:     2, Passed:     3, Skipped:     0, Total:     5, Duration: 2 s - B.Tests.dll (net10.0)");
        tally.Read("  Passed Some.Test [12 ms]");
        Assert.Equal((15, 2, 1, 2), (tally.Passed, tally.Failed, tally.Skipped, tally.Assemblies));
    }

    [Fact]
    public void Test_tally_sums_normal_verbosity_blocks()
    {
        var tally = new TestCommand.Tally();
        foreach (var line in new[]
        {
            "Test Run Successful.", "Total tests: 13", "     Passed: 13", " Total time: 6.5 Seconds",
            "Test run for /x/B.Tests.dll (.NETCoreApp,Version=v10.0)", "  Passed Some.Test [1 ms]",
            "Test Run Failed.", "Total tests: 7", "     Passed: 4", "     Failed: 2", "    Skipped: 1", " Total time: 1 Seconds",
        })
            tally.Read(line);
        Assert.Equal((17, 2, 1, 2), (tally.Passed, tally.Failed, tally.Skipped, tally.Assemblies));
    }

    [Fact]
    public void Test_tally_keeps_each_failed_tests_report_to_restate_it_at_the_end()
    {
        var tally = new TestCommand.Tally();
        foreach (var line in new[]
        {
            "  Passed A.Ok [1 ms]", "  Failed A.Broken [3 ms]", "  Error Message:", "   Assert.Equal() Failure",
            "  Stack Trace:", "     at A.Broken()", "  Passed A.Next [1 ms]",
            "[xUnit.net 00:00:01.00]     B.Other [FAIL]", "  Failed B.Other [2 ms]", "  Error Message:", "   boom",
            "Test Run Failed.", "Total tests: 3", "     Failed: 2",
        })
            tally.Read(line);
        Assert.Equal(
            new[] { "  Failed A.Broken [3 ms]", "  Error Message:", "   Assert.Equal() Failure", "  Stack Trace:", "     at A.Broken()",
                    "  Failed B.Other [2 ms]", "  Error Message:", "   boom" },
            tally.FailureReports);
        Assert.Equal(2, tally.Failed);
    }
}
