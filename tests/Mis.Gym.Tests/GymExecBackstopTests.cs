using System.Diagnostics;
using Mis.Gym.Envs;
using Mis.Gym.Scenarios;
using Mis.Testing;

namespace Mis.Gym.Tests;

/// <summary>
/// The kernel's exec backstop guards gym episodes as it guards <c>mis run</c>: the episode's
/// session installs the scenario policy's exec deny set, and a denied program that gets past the
/// supervisor (a path rewritten after its decision, or a process the supervisor never saw) is
/// killed by the kernel before its first instruction, and counted.
/// </summary>
[Collection("gym-kernel")]
public sealed class GymExecBackstopTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-gym-exec-").FullName;

    private CommandScenario Scenario(string command) => Support.ParseCommand($"""
        [scenario]
        name = "exec-backstop"

        [task]
        reward = 1.0

        [defcon]
        thresholds = [1000, 2000, 3000, 4000]

        [policy]
        default = "allow"

        [[file]]
        path = "{_dir}/no"
        ops = ["exec"]
        action = "deny"

        [workload]
        command = {command}
        timeout_ms = 60000
        step_ms = 100
        """, Path.Combine(Support.ScenarioDir, "exec-backstop.toml"));

    [Fact]
    public void A_path_rewritten_after_the_decision_never_runs_in_a_gym_episode()
    {
        HostRequirements.Root();
        string race = Compile("race_exec");
        File.Copy(race, Path.Combine(_dir, "ok"));
        File.Copy(race, Path.Combine(_dir, "no"));
        using var env = MisGym.MakeCommand(Scenario($"[\"{race}\", \"{_dir}/ok\", \"{_dir}/no\", \"40\"]"));
        env.Reset(seed: 0);
        StepResult<float[]> last;
        do
            last = env.Step(0);
        while (!last.Done);
        string stdout = (string)last.Info["stdout"];
        Assert.Equal("exited", last.Info["result"]);
        Assert.DoesNotContain("ran no", stdout);
        Assert.Contains("attempts=40", stdout);
        int killed = int.Parse(stdout.Split("killed=")[1].Split('\n')[0]);
        Assert.True(killed > 0, $"the race was never won, so the test proved nothing: {stdout}");
        // Every refused exec counts: the supervisor's denials of "no" and the kernel's kills.
        Assert.True((long)last.Info["violations"] >= killed, $"{last.Info["violations"]} violations for {killed} kills");
    }

    [Fact]
    public void A_denied_program_the_supervisor_never_saw_is_killed_by_the_kernel_in_a_gym_episode()
    {
        // A process that joins the episode's cgroup from outside has no seccomp filter, so no
        // supervisor decision and no approval: only the exec deny set the session installed for
        // the scenario's policy stands between it and the denied program.
        HostRequirements.Root();
        string denied = Path.Combine(_dir, "no");
        File.Copy("/bin/true", denied);
        using var env = MisGym.MakeCommand(Scenario("[\"/bin/sleep\", \"30\"]"));
        env.Reset(seed: 0);
        string cgroup = env.CgroupPath ?? throw new InvalidOperationException("no episode cgroup");
        var psi = new ProcessStartInfo("/bin/sh", ["-c", $"read line; exec {denied}"]) { RedirectStandardInput = true };
        using var outsider = Process.Start(psi)!;
        File.WriteAllText(Path.Combine(cgroup, "cgroup.procs"), outsider.Id.ToString());
        outsider.StandardInput.WriteLine("go");
        outsider.StandardInput.Close();
        Assert.True(outsider.WaitForExit(10_000), "the outsider did not end");
        Assert.Equal(137, outsider.ExitCode); // SIGKILL, before /bin/true's first instruction
        var step = env.Step(0);
        Assert.Equal(1L, step.Info["violations"]);
    }

    private string Compile(string name)
    {
        string source = Path.Combine(Support.RepoRoot, "tests", "Mis.Enforcer.Tests", "native", name + ".c");
        string output = Path.Combine(_dir, name);
        var psi = new ProcessStartInfo("cc", ["-O2", "-pthread", "-o", output, source]) { RedirectStandardError = true };
        using var cc = Process.Start(psi)!;
        string errors = cc.StandardError.ReadToEnd();
        cc.WaitForExit();
        Assert.True(cc.ExitCode == 0, $"cc {name}.c failed: {errors}");
        return output;
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
