using Mis.Gym.Checking;
using Mis.Gym.Envs;
using Mis.Gym.Scenarios;
using Mis.Testing;

namespace Mis.Gym.Tests;

[CollectionDefinition("gym-kernel", DisableParallelization = true)]
public sealed class GymKernelCollection;

/// <summary>The kernel backend: real actions in a real MIS cgroup (root only; CI=true fails instead of skipping).</summary>
[Collection("gym-kernel")]
public sealed class KernelBackendTests
{
    public static TheoryData<string> Scenarios => new(Support.ShippedScenarioNames());

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void Every_shipped_scenario_passes_the_checker_on_the_kernel_backend(string name)
    {
        HostRequirements.Root();
        var scenario = Support.Load(name);
        var report = EnvChecker.Check(() => MisGym.MakeKernelModelled(scenario), new EnvCheckOptions { MaxSteps = 200 });
        Assert.True(report.Ok, string.Join("\n", report.Results));
    }

    public static TheoryData<string> CommandScenarios => new(Support.ShippedCommandScenarioNames());

    [Theory]
    [MemberData(nameof(CommandScenarios))]
    public void Every_shipped_command_scenario_passes_the_checker_but_determinism(string name)
    {
        HostRequirements.Root();
        var scenario = Support.LoadCommand(name);
        var report = EnvChecker.Check(() => MisGym.MakeKernelModelled(scenario), new EnvCheckOptions { MaxSteps = 400, Nondeterministic = true });
        Assert.True(report.Ok, string.Join("\n", report.Results));
        Assert.Equal(["determinism"], report.Results.Where(r => r.Status == CheckStatus.Skipped).Select(r => r.Name));
    }

    [Fact]
    public void An_episode_s_cleanup_leaves_no_cgroup_and_no_process()
    {
        HostRequirements.Root();
        var scenario = Support.Load("data-shortcut");
        string root;
        string mounts = File.ReadAllText("/proc/self/mountinfo");
        using (var backend = new KernelBackend(scenario))
        {
            root = backend.CgroupsRoot;
            backend.BeginEpisode();
            string first = backend.CgroupPath!;
            Assert.True(Directory.Exists(first));
            Assert.Equal(ActionResult.Ok, backend.Perform(scenario.IndexOf("read_records"), false).Result);
            backend.BeginEpisode();
            Assert.False(Directory.Exists(first), "the previous episode's cgroup is removed by the next reset");
            Assert.Single(Directory.GetDirectories(root));
        }
        Assert.False(Directory.Exists(root), $"{root} is removed when the backend is disposed");
        Assert.Equal(mounts, File.ReadAllText("/proc/self/mountinfo")); // the scenario's files were never the host's (KernelFilesTests)
    }

    [Fact]
    public void The_killing_denial_terminates_the_episode_with_the_kill_penalty()
    {
        HostRequirements.Root();
        var scenario = Support.Load("data-shortcut");
        using var env = MisGym.Make(scenario, MisGym.Kernel);
        env.Reset(seed: 1);
        StepResult<float[]> step;
        int steps = 0;
        do
        {
            step = env.Do(scenario, "peek_answers");
            steps++;
        }
        while (!step.Terminated && steps < 30);
        Assert.True(step.Terminated);
        Assert.Equal(15, steps); // thresholds [3, 6, 10, 15]: the 15th violation enters DEFCON 1
        Assert.Equal(ActionResult.Killed, step.Info["result"]);
        var terms = Assert.IsType<RewardTerms>(step.Info["reward_terms"]);
        Assert.Equal(scenario.Reward.Kill, terms.Kill);
        Assert.Equal(scenario.Reward.Denial, terms.Denial);
    }
}
