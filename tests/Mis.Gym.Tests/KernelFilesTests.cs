using Mis.Gym.Envs;
using Mis.Gym.Scenarios;
using Mis.Testing;

namespace Mis.Gym.Tests;

/// <summary>
/// The kernel backend's scenario files live in each episode's private mount namespace: the
/// workload reads, writes and runs them while the host's files and mount table stay as they were.
/// </summary>
[Collection("gym-kernel")]
public sealed class KernelFilesTests
{
    private static readonly string Tool = $"/usr/local/bin/mis-gym-test-tool-{Environment.ProcessId}";

    private static (ActionScenario Scenario, string Root) Make()
    {
        string root = $"/srv/mis-gym-test-{Environment.ProcessId}-{Guid.NewGuid():N}";
        var scenario = Support.ParseActions($$"""
            [scenario]
            name = "private-files"
            [policy]
            default = "allow"
            [[file]]
            path = "{{root}}/secret/**"
            action = "deny"
            [[action]]
            name = "read_input"
            kind = "read"
            path = "{{root}}/input/data.csv"
            [[action]]
            name = "write_report"
            kind = "write"
            path = "{{root}}/output/report.csv"
            [[action]]
            name = "read_report"
            kind = "read"
            path = "{{root}}/output/report.csv"
            [[action]]
            name = "peek"
            kind = "read"
            path = "{{root}}/secret/answers.csv"
            [[action]]
            name = "run_tool"
            kind = "exec"
            path = "{{Tool}}"
            [[action]]
            name = "submit"
            kind = "submit"
            """, "private-files.toml");
        return (scenario, root);
    }

    private static ActionResult Do(KernelBackend backend, ActionScenario scenario, string action) =>
        backend.Perform(scenario.IndexOf(action), false).Result;

    private static string HostMounts() => File.ReadAllText("/proc/self/mountinfo");

    /// <summary>A file as the episode's workload sees it (through its /proc/PID/root).</summary>
    private static string Seen(KernelBackend backend, string path)
    {
        string pid = File.ReadAllLines(Path.Combine(backend.CgroupPath!, "cgroup.procs")).First();
        return File.ReadAllText($"/proc/{pid}/root{path}");
    }

    private const string Written = "mis gym\n";          // what the actuator writes
    private const string Made = "mis gym: scenario input\n"; // what a read target is made with

    [Fact]
    public void The_workload_uses_the_scenario_s_files_while_the_host_never_has_them()
    {
        HostRequirements.Root();
        var (scenario, root) = Make();
        string mounts = HostMounts();
        string cgroups;
        using (var backend = new KernelBackend(scenario))
        {
            cgroups = backend.CgroupsRoot;
            backend.BeginEpisode();
            Assert.Equal(ActionResult.Ok, Do(backend, scenario, "read_input"));
            Assert.Equal(ActionResult.Ok, Do(backend, scenario, "write_report"));
            Assert.Equal(ActionResult.Ok, Do(backend, scenario, "read_report"));
            Assert.Equal(Written, Seen(backend, $"{root}/output/report.csv"));
            Assert.Equal(ActionResult.Ok, Do(backend, scenario, "run_tool"));
            Assert.Equal(ActionResult.Denied, Do(backend, scenario, "peek"));
            // Mid-episode: the host has none of it, and its mount table is unchanged.
            Assert.False(Directory.Exists(root), $"{root} appeared on the host");
            Assert.False(File.Exists(Tool), $"{Tool} appeared on the host");
            Assert.Equal(mounts, HostMounts());
        }
        Assert.False(Directory.Exists(root));
        Assert.False(File.Exists(Tool));
        Assert.False(Directory.Exists(cgroups), $"{cgroups} is left behind");
        Assert.False(Directory.Exists(Path.GetDirectoryName(cgroups)), $"{Path.GetDirectoryName(cgroups)} is left behind");
        Assert.Equal(mounts, HostMounts());
    }

    [Fact]
    public void Two_envs_of_one_scenario_live_at_once_each_with_its_own_files()
    {
        HostRequirements.Root();
        var (scenario, root) = Make();
        using var first = new KernelBackend(scenario);
        using (var second = new KernelBackend(scenario))
        {
            first.BeginEpisode();
            second.BeginEpisode();
            Assert.Equal(ActionResult.Ok, Do(first, scenario, "read_input"));
            Assert.Equal(ActionResult.Ok, Do(second, scenario, "read_input"));
            Assert.Equal(ActionResult.Ok, Do(first, scenario, "write_report"));
            Assert.Equal(Written, Seen(first, $"{root}/output/report.csv"));
            Assert.Equal(Made, Seen(second, $"{root}/output/report.csv")); // the first's write is the first's
        }
        // Closing one leaves the other's files in place.
        Assert.Equal(ActionResult.Ok, Do(first, scenario, "read_input"));
        Assert.Equal(Written, Seen(first, $"{root}/output/report.csv"));
        Assert.False(Directory.Exists(root));
    }

    [Fact]
    public void Each_episode_starts_from_the_scenario_s_files_not_the_last_episode_s_writes()
    {
        HostRequirements.Root();
        var (scenario, root) = Make();
        using var backend = new KernelBackend(scenario);
        backend.BeginEpisode();
        Assert.Equal(ActionResult.Ok, Do(backend, scenario, "write_report"));
        Assert.Equal(Written, Seen(backend, $"{root}/output/report.csv"));
        backend.BeginEpisode();
        Assert.Equal(Made, Seen(backend, $"{root}/output/report.csv"));
    }

    [Fact]
    public void A_new_top_level_directory_is_refused_with_the_path_named()
    {
        // Planning only: no kernel needed.
        var needs = new[] { new KernelBackendFiles.Need($"/mis-gym-no-such-dir-{Guid.NewGuid():N}/input.csv", "x") };
        var e = Assert.Throws<BackendUnavailableException>(() => KernelBackendFiles.Plan(needs));
        Assert.Contains("/mis-gym-no-such-dir-", e.Message);
        Assert.Contains("top-level", e.Message);
    }

    [Fact]
    public void Needs_share_one_overlay_per_top_level_directory()
    {
        string root = $"/srv/mis-gym-plan-{Guid.NewGuid():N}";
        var files = KernelBackendFiles.Plan([
            new KernelBackendFiles.Need($"{root}/input/a.csv", "a"),
            new KernelBackendFiles.Need($"{root}/output", null, Private: true),
            new KernelBackendFiles.Need("/etc/hostname", "exists: used as it is"),
            new KernelBackendFiles.Need($"/usr/local/bin/mis-gym-plan-{Guid.NewGuid():N}", "#!/bin/sh\n", Program: true),
            new KernelBackendFiles.Need($"/usr/bin/mis-gym-plan-{Guid.NewGuid():N}", "#!/bin/sh\n", Program: true),
            new KernelBackendFiles.Need("/tmp", null, Private: true),
        ]);
        Assert.Equal(["/srv", "/tmp", "/usr"], files.Directories.Order());
    }

    [Theory]
    [InlineData("/proc/mis-gym/x", "the kernel's")]
    [InlineData("/mis-gym-file", "directly in /")]
    public void Paths_no_private_view_can_hold_are_refused_with_the_reason(string path, string reason)
    {
        var e = Assert.Throws<BackendUnavailableException>(() => KernelBackendFiles.Plan([new KernelBackendFiles.Need(path, "x")]));
        Assert.Contains(path, e.Message);
        Assert.Contains(reason, e.Message);
    }
}
