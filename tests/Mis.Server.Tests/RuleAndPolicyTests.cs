using System.Diagnostics;
using Grpc.Core;
using Mis.Native;
using Mis.Policy.V1;

namespace Mis.Server.Tests;

/// <summary>AddRule / RemoveRule with TTLs and ReloadPolicy, each checked on what a real workload may open.</summary>
public sealed class RuleAndPolicyTests
{
    private const string DenyTarget = "[[file]]\npath = \"{0}\"\naction = \"deny\"\n";

    [Fact]
    public async Task A_rule_added_with_a_TTL_denies_until_it_expires_on_time()
    {
        await using var mis = await TestEnforcer.StartAsync();
        string file = mis.WorldReadableFile("ttl-target");
        var id = FileIdentity.Of(file)!.Value;
        Assert.Equal(0, await CatAsync(mis, file));

        var watch = Stopwatch.StartNew();
        var added = await mis.Client.AddRuleAsync(new AddRuleRequest { Inode = id.Inode, DevId = id.Device, Action = 1, TtlSecs = 3 }, cancellationToken: Ct);
        Assert.True(added.Success);
        Assert.InRange(added.ExpiresUnixMs - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), 1500, 3100);
        Assert.Equal(1u, (await mis.Client.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct)).RuntimeRules);
        Assert.Equal(1, await CatAsync(mis, file)); // denied: cat fails
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), "the denial must be observed within the TTL");

        while ((await mis.Client.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct)).RuntimeRules != 0)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), "the rule outlived its TTL");
            await Task.Delay(50, Ct);
        }
        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(2900), TimeSpan.FromSeconds(5));
        Assert.Equal(0, await CatAsync(mis, file));
    }

    [Fact]
    public async Task A_rule_without_TTL_stays_until_removed()
    {
        await using var mis = await TestEnforcer.StartAsync();
        string file = mis.WorldReadableFile("removable");
        var id = FileIdentity.Of(file)!.Value;

        var added = await mis.Client.AddRuleAsync(new AddRuleRequest { Inode = id.Inode, DevId = id.Device, Action = 1 }, cancellationToken: Ct);
        Assert.Equal(0, added.ExpiresUnixMs);
        Assert.Equal(1, await CatAsync(mis, file));
        var removed = await mis.Client.RemoveRuleAsync(new RemoveRuleRequest { Inode = id.Inode, DevId = id.Device }, cancellationToken: Ct);
        Assert.Equal(1u, removed.Removed);
        Assert.Equal(0, await CatAsync(mis, file));
        await TestEnforcer.FailsAsync(StatusCode.NotFound,
            () => mis.Client.RemoveRuleAsync(new RemoveRuleRequest { Inode = id.Inode, DevId = id.Device }, cancellationToken: Ct).ResponseAsync);
    }

    [Fact]
    public async Task ReloadPolicy_swaps_the_policy_whole_and_a_broken_file_leaves_the_old_one_in_force()
    {
        string target = Path.Combine(Path.GetTempPath(), $"mis-reload-target-{Guid.NewGuid():N}");
        File.WriteAllText(target, "x\n");
        File.SetUnixFileMode(target, (UnixFileMode)0x1A4);
        try
        {
            await using var mis = await TestEnforcer.StartAsync(policy: string.Format(DenyTarget, target));
            Assert.Equal(1, await CatAsync(mis, target));

            // Valid first line, broken third: nothing of it may apply.
            File.WriteAllText(mis.PolicyPath, "[[file]]\npath = \"/etc/hostname\"\naction = \"sometimes\"\n");
            var e = await TestEnforcer.FailsAsync(StatusCode.FailedPrecondition,
                () => mis.Client.ReloadPolicyAsync(new ReloadPolicyRequest(), cancellationToken: Ct).ResponseAsync);
            Assert.Contains($"{mis.PolicyPath}:3:", e.Status.Detail);
            Assert.Contains("previous one stays in force", e.Status.Detail);
            Assert.Equal(1, await CatAsync(mis, target));
            Assert.Equal(0, await CatAsync(mis, "/etc/hostname"));

            // A running workload sees the reload at its next decision: first it must have been
            // denied under the old policy (a poller that started late would prove nothing).
            var poller = await mis.RunAsync("sh", "-c", $"while ! cat {target} >/dev/null 2>&1; do sleep 0.2; done");
            await WaitDeniedAsync(mis, poller.CgroupId);
            File.WriteAllText(mis.PolicyPath, "[policy]\nname = \"open\"\n");
            var reloaded = await mis.Client.ReloadPolicyAsync(new ReloadPolicyRequest(), cancellationToken: Ct);
            Assert.True(reloaded.Success);
            Assert.Equal([mis.PolicyPath], reloaded.Files);
            Assert.True(reloaded.FileRules > 0, "the built-in rules stay");
            Assert.Equal(0, (await mis.WaitExitedAsync(poller.CgroupId)).ExitStatus);
            Assert.Equal(0, await CatAsync(mis, target));
            Assert.Equal(1, await CatAsync(mis, "/etc/shadow")); // built-in rules still in force
        }
        finally
        {
            File.Delete(target);
        }
    }

    [Fact]
    public async Task A_workload_can_run_under_a_policy_file_of_its_own()
    {
        await using var mis = await TestEnforcer.StartAsync();
        string file = mis.WorldReadableFile("own-policy-target");
        string own = Path.Combine(mis.Dir, "own.toml");
        File.WriteAllText(own, string.Format(DenyTarget, file));

        var started = await mis.Client.RunWorkloadAsync(new RunWorkloadRequest { Command = "cat", Args = { file }, PolicyFile = own }, cancellationToken: Ct);

        Assert.Equal("own", started.Policy);
        Assert.Equal(1, (await mis.WaitExitedAsync(started.CgroupId)).ExitStatus);
        Assert.Equal(0, await CatAsync(mis, file)); // the engine's own policy allows it
    }

    /// <summary>Waits until the workload has a counted violation, still running (it has not got past the denial).</summary>
    private static async Task WaitDeniedAsync(TestEnforcer mis, ulong cgroupId)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var info = await mis.Client.GetCgroupAsync(new GetCgroupRequest { CgroupId = cgroupId }, cancellationToken: Ct);
            Assert.True(info.State == WorkloadState.Running, $"cgroup {cgroupId} ended (exit {info.ExitStatus}) before any denial was seen");
            if (info.Violations > 0)
                return;
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"cgroup {cgroupId}: no denial within {watch.Elapsed}");
            await Task.Delay(20, Ct);
        }
    }

    private static async Task<int> CatAsync(TestEnforcer mis, string file)
    {
        var started = await mis.RunAsync("cat", file);
        return (await mis.WaitExitedAsync(started.CgroupId)).ExitStatus;
    }
}
