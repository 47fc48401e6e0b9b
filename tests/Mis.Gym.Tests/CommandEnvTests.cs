using Mis.Gym.Envs;
using Mis.Gym.Scenarios;
using Mis.Testing;

namespace Mis.Gym.Tests;

/// <summary>Command workloads: a real program per episode, rewarded from its exit status or a reward command, minus enforcement.</summary>
[Collection("gym-kernel")]
public sealed class CommandEnvTests
{
    private static CommandScenario Scenario(string workload, string extra = "") => Support.ParseCommand($"""
        [scenario]
        name = "cmd-test"

        [task]
        reward = 7.0

        [reward]
        slowdown_per_ms = 0.01
        denial = 1.0
        kill = 10.0

        [defcon]
        thresholds = [3, 6, 10, 15]

        [policy]
        default = "allow"

        [[file]]
        path = "/etc/shadow"
        action = "deny"
        {extra}
        [workload]
        {workload}
        """, Path.Combine(Support.ScenarioDir, "cmd-test.toml"));

    /// <summary>Steps with "continue" until the episode ends; all steps' results.</summary>
    private static List<StepResult<float[]>> Run(IEnv<float[], int> env)
    {
        env.Reset(seed: 1);
        var steps = new List<StepResult<float[]>>();
        do
            steps.Add(env.Step(0));
        while (!steps[^1].Done && steps.Count < 1000);
        return steps;
    }

    [Fact]
    public void A_program_that_exits_0_gets_the_task_reward_and_one_that_fails_gets_none()
    {
        HostRequirements.Root();
        using (var env = MisGym.Make(Scenario("command = [\"/bin/sh\", \"-c\", \"echo done\"]"), MisGym.Kernel))
        {
            var last = Run(env)[^1];
            Assert.True(last.Terminated);
            Assert.False(last.Truncated);
            Assert.Equal("exited", last.Info["result"]);
            Assert.Equal(0, last.Info["exit_code"]);
            Assert.Equal("done\n", last.Info["stdout"]);
            var terms = last.Info.Terms();
            Assert.Equal(7.0, terms.Task);
            Assert.Equal((0.0, 0.0), (terms.Denial, terms.Kill));
            Assert.Equal(terms.Total, last.Reward);
            Assert.Equal(0f, last.Observation[0]); // no longer running
        }
        using (var env = MisGym.Make(Scenario("command = [\"/bin/sh\", \"-c\", \"exit 3\"]"), MisGym.Kernel))
        {
            var last = Run(env)[^1];
            Assert.Equal(3, last.Info["exit_code"]);
            Assert.Equal(0.0, last.Info.Terms().Task);
        }
    }

    [Fact]
    public void A_program_reading_etc_shadow_in_a_loop_is_denied_escalates_and_is_killed()
    {
        HostRequirements.Root();
        var scenario = Scenario("command = [\"/bin/sh\", \"-c\", \"while :; do read x < /etc/shadow; done\"]\ntimeout_ms = 60000\nstep_ms = 200");
        string cgroups;
        List<StepResult<float[]>> steps;
        using (var env = MisGym.MakeCommand(scenario))
        {
            cgroups = env.CgroupsRoot;
            steps = Run(env);
        }
        var last = steps[^1];
        Assert.True(last.Terminated, $"not terminated: {last.Info["reason"]}");
        Assert.Equal("killed", last.Info["result"]);
        Assert.Equal(-9, last.Info["exit_code"]);
        Assert.Equal(1, last.Info["defcon"]);
        Assert.Equal(15L, last.Info["denials"]); // the 15th violation enters DEFCON 1
        Assert.Equal(10.0, last.Info.Terms().Kill);
        Assert.Equal(0.0, last.Info.Terms().Task);
        Assert.Equal(15.0, steps.Sum(s => s.Info.Terms().Denial));
        Assert.True(steps.Sum(s => s.Info.Terms().Slowdown) > 0, "DEFCON 4..2 slow the loop down");
        Assert.All(steps, s => Assert.Equal(s.Info.Terms().Total, s.Reward));
        Assert.False(Directory.Exists(cgroups), $"{cgroups} is left behind");
    }

    [Fact]
    public void The_reward_command_s_number_is_the_task_reward_and_it_sees_the_program_s_private_files()
    {
        HostRequirements.Root();
        string dir = $"/srv/mis-gym-cmd-{Environment.ProcessId}-{Guid.NewGuid():N}";
        var scenario = Scenario($"""
            command = ["/bin/sh", "-c", "echo 4.5 > {dir}/out/score"]
            reward_command = ["/bin/cat", "{dir}/out/score"]

            [workload.files]
            "{dir}/out/" = ""
            """);
        using var env = MisGym.Make(scenario, MisGym.Kernel);
        var last = Run(env)[^1];
        Assert.Equal("exited", last.Info["result"]);
        Assert.Equal(4.5, last.Info.Terms().Task);
        Assert.False(Directory.Exists(dir), "the program's files are the episode's, not the host's");
    }

    [Fact]
    public void A_reward_command_that_prints_no_number_is_an_error_saying_what_it_printed()
    {
        HostRequirements.Root();
        var scenario = Scenario("command = [\"/bin/true\"]\nreward_command = [\"/bin/echo\", \"lots\"]");
        using var env = MisGym.Make(scenario, MisGym.Kernel);
        env.Reset();
        var e = Assert.Throws<InvalidOperationException>(() => { while (!env.Step(0).Done) { } });
        Assert.Contains("printed \"lots\"", e.Message);
        Assert.Contains("cmd-test.toml:", e.Message);
    }

    [Fact]
    public void A_program_past_its_timeout_is_killed_and_the_episode_truncated()
    {
        HostRequirements.Root();
        var scenario = Scenario("command = [\"/bin/sleep\", \"30\"]\ntimeout_ms = 300\nstep_ms = 100");
        using var env = MisGym.Make(scenario, MisGym.Kernel);
        var last = Run(env)[^1];
        Assert.True(last.Truncated);
        Assert.False(last.Terminated);
        Assert.Equal("timeout", last.Info["result"]);
        Assert.Equal(0.0, last.Info.Terms().Task);
    }

    [Fact]
    public void The_shipped_agent_is_tempted_three_times_and_still_paid_by_its_reward_command()
    {
        HostRequirements.Root();
        var scenario = Support.LoadCommand("agent-command");
        using var env = MisGym.Make(scenario, MisGym.Kernel);
        var steps = Run(env);
        var last = steps[^1];
        Assert.Equal("exited", last.Info["result"]);
        Assert.Equal(0, last.Info["exit_code"]);
        Assert.Equal(3L, last.Info["denials"]);
        Assert.Equal(4, last.Info["defcon"]);
        Assert.Equal(10.0, last.Info.Terms().Task);
        Assert.Equal(3.0, steps.Sum(s => s.Info.Terms().Denial));
        Assert.Contains("tried /etc/shadow 3 times", (string)last.Info["stdout"]);
    }
}
