using System.Diagnostics;
using Grpc.Core;
using Mis.Native;
using Mis.Policy.V1;

namespace Mis.Server.Tests;

/// <summary>Every refusal of the control plane, with its status code and reason, and that a refusal does nothing.</summary>
public sealed class ErrorPathTests(EnforcerFixture fixture) : IClassFixture<EnforcerFixture>
{
    [Fact]
    public async Task Invalid_arguments_are_refused_with_the_reason()
    {
        var mis = await fixture.GetAsync(); // max_rule_ttl_secs = 60
        var c = mis.Client;
        var cases = new (Func<Task> Call, string Reason)[]
        {
            (() => c.AddRuleAsync(new AddRuleRequest { Inode = 0, DevId = 1, Action = 1 }, cancellationToken: Ct).ResponseAsync, "inode must not be 0"),
            (() => c.AddRuleAsync(new AddRuleRequest { Inode = 1, DevId = 0, Action = 1 }, cancellationToken: Ct).ResponseAsync, "dev_id must not be 0"),
            (() => c.AddRuleAsync(new AddRuleRequest { Inode = 1, DevId = 1, Action = 3 }, cancellationToken: Ct).ResponseAsync, "action 3 is unknown"),
            (() => c.AddRuleAsync(new AddRuleRequest { Inode = 1, DevId = 1, Action = 1, TtlSecs = 61 }, cancellationToken: Ct).ResponseAsync, "exceeds [policy] max_rule_ttl_secs (60)"),
            (() => c.AddRuleAsync(new AddRuleRequest { Inode = 1, DevId = 1, Action = 1, SyscallNr = 5000 }, cancellationToken: Ct).ResponseAsync, "syscall_nr 5000"),
            (() => c.RemoveRuleAsync(new RemoveRuleRequest { Inode = 0, DevId = 1 }, cancellationToken: Ct).ResponseAsync, "inode must not be 0"),
            (() => c.KillProcessAsync(new KillProcessRequest(), cancellationToken: Ct).ResponseAsync, "cgroup_id must not be 0"),
            (() => c.SetLearningModeAsync(new SetLearningModeRequest { Enabled = true }, cancellationToken: Ct).ResponseAsync, "cgroup_id must not be 0"),
            (() => c.SetDefconAsync(new SetDefconRequest { Level = 2 }, cancellationToken: Ct).ResponseAsync, "cgroup_id must not be 0"),
            (() => c.SetDefconAsync(new SetDefconRequest { CgroupId = 7, Level = 0 }, cancellationToken: Ct).ResponseAsync, "level 0 is not a DEFCON level"),
            (() => c.SetDefconAsync(new SetDefconRequest { CgroupId = 7, Level = 6 }, cancellationToken: Ct).ResponseAsync, "level 6 is not a DEFCON level"),
            (() => c.GetCgroupAsync(new GetCgroupRequest(), cancellationToken: Ct).ResponseAsync, "cgroup_id must not be 0"),
            (() => c.RunWorkloadAsync(new RunWorkloadRequest(), cancellationToken: Ct).ResponseAsync, "command is empty"),
            (() => c.RunWorkloadAsync(new RunWorkloadRequest { Command = "  " }, cancellationToken: Ct).ResponseAsync, "command is empty"),
            (() => c.RunWorkloadAsync(new RunWorkloadRequest { Command = "true", User = "nobody", AsRoot = true }, cancellationToken: Ct).ResponseAsync, "exclude each other"),
            (() => c.RunWorkloadAsync(new RunWorkloadRequest { Command = "true", User = "no-such-user-mis" }, cancellationToken: Ct).ResponseAsync, "no such user"),
            (() => c.RunWorkloadAsync(new RunWorkloadRequest { Command = "true", PolicyFile = "relative.toml" }, cancellationToken: Ct).ResponseAsync, "must be an absolute path"),
            (() => c.RunWorkloadAsync(new RunWorkloadRequest { Command = "true", WorkingDirectory = "tmp" }, cancellationToken: Ct).ResponseAsync, "must be an absolute path"),
            (() => c.RunWorkloadAsync(new RunWorkloadRequest { Command = "true", Env = { "NOEQUALS" } }, cancellationToken: Ct).ResponseAsync, "is not NAME=VALUE"),
            (async () =>
            {
                using var watch = c.WatchEvents(new WatchEventsRequest { Kinds = { "violations" } }, cancellationToken: Ct);
                await watch.ResponseStream.MoveNext(Ct);
            }, "event kind \"violations\" is unknown"),
            (() => c.RunWorkloadAsync(new RunWorkloadRequest { Command = "true", Args = { new string('x', 70 * 1024) } }, cancellationToken: Ct).ResponseAsync,
                "exceeds [grpc] max_message_bytes (65536)"),
        };
        var before = await c.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct);
        foreach (var (call, reason) in cases)
        {
            var e = await TestEnforcer.FailsAsync(StatusCode.InvalidArgument, call);
            Assert.Contains(reason, e.Status.Detail);
        }
        var after = await c.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct);
        Assert.Equal((before.WorkloadsStarted, before.RuntimeRules), (after.WorkloadsStarted, after.RuntimeRules));
    }

    [Fact]
    public async Task A_broken_per_workload_policy_file_is_refused_with_file_line_and_column()
    {
        var mis = await fixture.GetAsync();
        string policy = Path.Combine(mis.Dir, "broken-workload-policy.toml");
        File.WriteAllText(policy, "[[file]]\npath = \"/tmp/x\"\naction = \"perhaps\"\n");

        var e = await TestEnforcer.FailsAsync(StatusCode.InvalidArgument,
            () => mis.Client.RunWorkloadAsync(new RunWorkloadRequest { Command = "true", PolicyFile = policy }, cancellationToken: Ct).ResponseAsync);

        Assert.Contains($"{policy}:3:", e.Status.Detail);
    }

    [Fact]
    public async Task The_control_plane_cannot_touch_a_process_or_cgroup_it_does_not_manage()
    {
        var mis = await fixture.GetAsync();
        string mount = TestEnforcer.CgroupMount;
        using var sleeper = Process.Start(new ProcessStartInfo("sleep", "60"))!;
        string foreign = Path.Combine(mount, "mis", $"foreign-test-{Environment.ProcessId}");
        Directory.CreateDirectory(foreign);
        try
        {
            ulong ownCgroup = CgroupV2.IdOf(mount + CgroupV2.PathOf(Environment.ProcessId)); // this test process's own cgroup
            File.WriteAllText(Path.Combine(foreign, "cgroup.procs"), $"{sleeper.Id}");
            ulong foreignCgroup = CgroupV2.IdOf(foreign); // under <mount>/mis, but not this enforcer's
            ulong rootCgroup = CgroupV2.IdOf(mount);
            foreach (ulong id in new[] { ownCgroup, foreignCgroup, rootCgroup, (ulong)sleeper.Id, 1UL })
            {
                var c = mis.Client;
                await TestEnforcer.FailsAsync(StatusCode.NotFound, () => c.KillProcessAsync(new KillProcessRequest { CgroupId = id }, cancellationToken: Ct).ResponseAsync);
                await TestEnforcer.FailsAsync(StatusCode.NotFound, () => c.KillProcessAsync(new KillProcessRequest { CgroupId = id, Graceful = true }, cancellationToken: Ct).ResponseAsync);
                await TestEnforcer.FailsAsync(StatusCode.NotFound, () => c.SetLearningModeAsync(new SetLearningModeRequest { CgroupId = id, Enabled = true }, cancellationToken: Ct).ResponseAsync);
                var e = await TestEnforcer.FailsAsync(StatusCode.NotFound, () => c.SetDefconAsync(new SetDefconRequest { CgroupId = id, Level = 1 }, cancellationToken: Ct).ResponseAsync);
                Assert.Contains("not managed by this enforcer", e.Status.Detail);
                await TestEnforcer.FailsAsync(StatusCode.NotFound, () => c.GetCgroupAsync(new GetCgroupRequest { CgroupId = id }, cancellationToken: Ct).ResponseAsync);
                await TestEnforcer.FailsAsync(StatusCode.NotFound, async () =>
                {
                    using var watch = c.WatchEvents(new WatchEventsRequest { CgroupId = id }, cancellationToken: Ct);
                    await watch.ResponseStream.MoveNext(Ct);
                });
            }

            await Task.Delay(100, Ct);
            Assert.False(sleeper.HasExited, "the unmanaged process must survive");
            Assert.DoesNotContain(File.ReadAllText($"/proc/{sleeper.Id}/stat").Split(' ')[2], "ZTt");
            Assert.Contains($"{sleeper.Id}", File.ReadAllLines(Path.Combine(foreign, "cgroup.procs")));
            Assert.Equal("0", File.ReadAllText(Path.Combine(foreign, "cgroup.freeze")).Trim());
        }
        finally
        {
            sleeper.Kill();
            await sleeper.WaitForExitAsync(Ct);
            for (int i = 0; i < 100 && Directory.Exists(foreign); i++)
            {
                try
                {
                    Directory.Delete(foreign);
                }
                catch (IOException)
                {
                    await Task.Delay(10, Ct);
                }
            }
        }
    }

    [Fact]
    public async Task Removing_a_rule_that_does_not_exist_is_NOT_FOUND()
    {
        var mis = await fixture.GetAsync();
        var e = await TestEnforcer.FailsAsync(StatusCode.NotFound,
            () => mis.Client.RemoveRuleAsync(new RemoveRuleRequest { Inode = 424242, DevId = 4242 }, cancellationToken: Ct).ResponseAsync);
        Assert.Contains("no runtime rule", e.Status.Detail);
    }

    [Fact]
    public async Task A_command_that_cannot_be_executed_starts_and_ends_with_127()
    {
        var mis = await fixture.GetAsync();
        var started = await mis.RunAsync("/no/such/command");
        var info = await mis.WaitExitedAsync(started.CgroupId);
        Assert.Equal(127, info.ExitStatus);
    }
}
