using Mis.Gym.Envs;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Tests;

/// <summary>The <c>[workload]</c> table: parsing, its errors (file:line key), and the simulator's refusal.</summary>
public sealed class WorkloadScenarioTests
{
    private const string Minimal = """
        [scenario]
        name = "cmd"

        [workload]
        command = ["/bin/true"]
        """;

    [Fact]
    public void A_minimal_workload_gets_the_documented_defaults()
    {
        var s = Support.ParseCommand(Minimal, "/x/scenarios/cmd.toml");
        var w = Assert.IsType<WorkloadSpec>(s.Workload);
        Assert.Equal(["/bin/true"], w.Command);
        Assert.Equal(WorkloadReward.Exit, w.Reward);
        Assert.Equal(10_000, w.TimeoutMs);
        Assert.Equal(100, w.StepMs);
        Assert.Equal("/x/scenarios", w.WorkingDirectory);
        Assert.Equal("cmd.toml:4", w.Source);
        Assert.Equal(101, s.MaxSteps); // enough steps for the timeout
    }

    [Fact]
    public void Files_reward_command_and_timing_are_read()
    {
        var s = Support.ParseCommand(Minimal + """

            reward_command = ["/bin/echo", "3"]
            timeout_ms = 500
            step_ms = 50

            [workload.files]
            "/srv/t/in.csv" = "a\nb\n"
            "/srv/t/out/" = ""
            """, "cmd.toml");
        var w = s.Workload;
        Assert.Equal(WorkloadReward.Command, w.Reward);
        Assert.Equal(["/bin/echo", "3"], w.RewardCommand);
        Assert.Equal((500, 50), (w.TimeoutMs, w.StepMs));
        Assert.Equal([("/srv/t/in.csv", "a\nb\n"), ("/srv/t/out", null)], w.Files);
        Assert.Equal(11, s.MaxSteps);
    }

    [Theory]
    [InlineData("[workload]\nreward = \"exit\"\n", 1, "workload.command", "missing")]
    [InlineData("[workload]\ncommand = []\n", 2, "workload.command", "empty")]
    [InlineData("[workload]\ncommand = [\"/bin/true\"]\ntimeout_ms = \"soon\"\n", 3, "workload.timeout_ms", "expected")]
    [InlineData("[workload]\ncommand = [\"/bin/true\"]\nreward = \"command\"\n", 3, "workload.reward", "needs reward_command")]
    [InlineData("[workload]\ncommand = [\"/bin/true\"]\nreward = \"exit\"\nreward_command = [\"/bin/echo\"]\n", 4, "workload.reward_command", "drop one of them")]
    [InlineData("[workload]\ncommand = [\"/bin/true\"]\nreward = \"score\"\n", 3, "workload.reward", "expected one of: exit, command")]
    [InlineData("[workload]\ncommand = [\"/bin/true\"]\ntimeout_ms = 50\nstep_ms = 100\n", 4, "workload.step_ms", "longer than timeout_ms")]
    [InlineData("[workload]\ncommand = [\"/bin/true\"]\ncomand = 1\n", 3, "workload.comand", "did you mean 'command'?")]
    [InlineData("[workload]\ncommand = [\"/bin/true\"]\n\n[workload.files]\n\"data.csv\" = \"x\"\n", 5, "workload.files.\"data.csv\"", "absolute path")]
    [InlineData("[workload]\ncommand = [\"/bin/true\"]\n\n[workload.files]\n\"/srv/d/\" = \"x\"\n", 5, "workload.files.\"/srv/d/\"", "takes \"\"")]
    [InlineData("[workload]\ncommand = [\"/bin/true\"]\n\n[workload.files]\n\"/srv/n\" = 5\n", 5, "workload.files.\"/srv/n\"", "as a string")]
    [InlineData("[workload.files]\n\"/srv/n\" = \"x\"\n", 1, "workload.files", "no [workload] table")]
    [InlineData("[workload]\ncommand = [\"/bin/true\"]\n\n[[action]]\nname = \"s\"\nkind = \"submit\"\n", 4, "action", "has no [[action]]")]
    [InlineData("[task]\nrequires = [\"x\"]\n\n[workload]\ncommand = [\"/bin/true\"]\n", 2, "task.requires", "no actions to require")]
    public void A_malformed_workload_is_an_error_naming_the_file_line_and_key(string text, int line, string key, string detail)
    {
        var e = Support.ParseError(text, "bad.toml");
        Assert.Equal((line, key), (e.Line, e.Key));
        Assert.Contains(detail, e.Detail);
        Assert.StartsWith($"bad.toml:{line}:", e.Message);
    }

    [Fact]
    public void The_simulator_says_a_command_workload_needs_the_kernel_backend()
    {
        var scenario = ScenarioFile.Parse(Minimal, "cmd.toml");
        var e = Assert.Throws<BackendUnavailableException>(() => MisGym.Make(scenario, MisGym.Sim));
        Assert.Contains("needs the kernel backend", e.Message);
        Assert.Contains("cmd.toml:4", e.Message);
    }
}
