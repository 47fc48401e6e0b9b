using System.Diagnostics;
using Grpc.Core;
using Mis.Policy.V1;

namespace Mis.Server.Tests;

/// <summary>
/// The C# client (Grpc.Net.Client) against an enforcer on a loopback port: workloads started,
/// listed, killed (immediately and gracefully), learning mode and DEFCON set, counters read.
/// </summary>
public sealed class WorkloadControlTests(EnforcerFixture fixture) : IClassFixture<EnforcerFixture>
{
    [Fact]
    public async Task A_workload_runs_in_its_own_managed_cgroup_and_is_listed_until_killed()
    {
        var mis = await fixture.GetAsync();
        var started = await mis.RunAsync("sleep", "30");

        Assert.True(started.CgroupId > 0 && started.Pid > 0);
        Assert.StartsWith(mis.Host.Engine.CgroupRoot + "/", started.CgroupPath);
        await TestEnforcer.WaitAsleepAsync(started.Pid);
        Assert.Contains($"{started.Pid}", File.ReadAllLines(Path.Combine(started.CgroupPath, "cgroup.procs")));
        var info = await mis.Client.GetCgroupAsync(new GetCgroupRequest { CgroupId = started.CgroupId }, cancellationToken: Ct);
        Assert.Equal(WorkloadState.Running, info.State);
        Assert.Equal((5, "sleep", "30", "nobody", 0u, false), (info.Defcon, info.Command, info.Args.Single(), info.User, info.AnomalyScore, info.Killed));
        Assert.Contains((await mis.Client.ListCgroupsAsync(new ListCgroupsRequest(), cancellationToken: Ct)).Cgroups, c => c.CgroupId == started.CgroupId);

        var kill = await mis.Client.KillProcessAsync(new KillProcessRequest { CgroupId = started.CgroupId }, cancellationToken: Ct);

        Assert.True(kill.Success);
        Assert.False(kill.AlreadyExited);
        // It answers after the kill happened: the cgroup is already empty and removed.
        Assert.False(Directory.Exists(started.CgroupPath));
        info = await mis.Client.GetCgroupAsync(new GetCgroupRequest { CgroupId = started.CgroupId }, cancellationToken: Ct);
        Assert.Equal((WorkloadState.Exited, true, 137, "KillProcess"), (info.State, info.Killed, info.ExitStatus, info.KillReason));
        Assert.DoesNotContain((await mis.Client.ListCgroupsAsync(new ListCgroupsRequest(), cancellationToken: Ct)).Cgroups, c => c.CgroupId == started.CgroupId);
        Assert.Contains((await mis.Client.ListCgroupsAsync(new ListCgroupsRequest { IncludeExited = true }, cancellationToken: Ct)).Cgroups, c => c.CgroupId == started.CgroupId);
        Assert.True((await mis.Client.KillProcessAsync(new KillProcessRequest { CgroupId = started.CgroupId }, cancellationToken: Ct)).AlreadyExited);
    }

    [Fact]
    public async Task A_workload_that_ends_by_itself_reports_its_exit_status_and_is_not_counted_as_killed()
    {
        var mis = await fixture.GetAsync();
        var started = await mis.RunAsync("sh", "-c", "exit 3");

        var info = await mis.WaitExitedAsync(started.CgroupId);

        Assert.Equal((3, false, ""), (info.ExitStatus, info.Killed, info.KillReason));
        Assert.False(Directory.Exists(started.CgroupPath));
    }

    [Fact]
    public async Task Denials_escalate_in_the_kernel_and_GetStats_counts_them_exactly()
    {
        var mis = await fixture.GetAsync();
        var before = await mis.Client.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct);

        var started = await mis.RunAsync("sh", "-c", "for i in 1 2 3 4; do cat /etc/shadow; done; exit 0");
        var info = await mis.WaitExitedAsync(started.CgroupId);
        var after = await mis.Client.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct);

        Assert.Equal((4UL, 4, 0), (info.Violations, info.Defcon, info.ExitStatus));
        Assert.Equal(4UL, after.Denied - before.Denied);
        Assert.Equal(1UL, after.DefconEscalations - before.DefconEscalations);
        Assert.Equal(1UL, after.WorkloadsStarted - before.WorkloadsStarted);
        Assert.True(after.Allowed > before.Allowed, "the shell's own opens and execs were allowed by the supervisor");
        Assert.True(after.SupervisorDecisions >= after.Allowed - before.Allowed + 4);
        // The second and third read of /etc/shadow, at DEFCON 5 like the first, are answered from the cache.
        Assert.True(after.CacheHits - before.CacheHits >= 2, $"cache hits {before.CacheHits} -> {after.CacheHits}");
        Assert.True(after.CacheMisses > before.CacheMisses);
        Assert.Equal(before.ProcessesKilled, after.ProcessesKilled);
    }

    [Fact]
    public async Task SetLearningMode_flips_the_flag_of_a_managed_cgroup()
    {
        var mis = await fixture.GetAsync();
        var started = await mis.RunAsync("sleep", "30");

        await mis.Client.SetLearningModeAsync(new SetLearningModeRequest { CgroupId = started.CgroupId, Enabled = true }, cancellationToken: Ct);
        Assert.True((await mis.Client.GetCgroupAsync(new GetCgroupRequest { CgroupId = started.CgroupId }, cancellationToken: Ct)).Learning);
        await mis.Client.SetLearningModeAsync(new SetLearningModeRequest { CgroupId = started.CgroupId, Enabled = false }, cancellationToken: Ct);
        Assert.False((await mis.Client.GetCgroupAsync(new GetCgroupRequest { CgroupId = started.CgroupId }, cancellationToken: Ct)).Learning);

        await mis.Client.KillProcessAsync(new KillProcessRequest { CgroupId = started.CgroupId }, cancellationToken: Ct);
        await TestEnforcer.FailsAsync(StatusCode.FailedPrecondition,
            () => mis.Client.SetLearningModeAsync(new SetLearningModeRequest { CgroupId = started.CgroupId, Enabled = true }, cancellationToken: Ct).ResponseAsync);
    }

    [Fact]
    public async Task A_workload_started_in_learning_mode_records_denials_without_escalating()
    {
        var mis = await fixture.GetAsync();
        var started = await mis.Client.RunWorkloadAsync(new RunWorkloadRequest
        {
            Command = "sh", Args = { "-c", "for i in 1 2 3 4 5; do cat /etc/shadow; done; exit 0" }, Learning = true,
        }, cancellationToken: Ct);

        var info = await mis.WaitExitedAsync(started.CgroupId);

        Assert.Equal((true, 5, 0UL, 5UL), (info.Learning, info.Defcon, info.Violations, info.LearningViolations));
    }

    [Fact]
    public async Task SetDefcon_raises_through_the_kernel_lowers_only_by_reset_and_kills_at_1()
    {
        var mis = await fixture.GetAsync();
        var before = await mis.Client.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct);
        var started = await mis.RunAsync("sleep", "30");
        var id = started.CgroupId;
        await TestEnforcer.WaitAsleepAsync(started.Pid); // loaded before DEFCON 3 would deny mapping its libraries

        var raised = await mis.Client.SetDefconAsync(new SetDefconRequest { CgroupId = id, Level = 3 }, cancellationToken: Ct);
        Assert.Equal((5, 3, 6UL, false), (raised.PreviousDefcon, raised.Defcon, raised.Violations, raised.Killed)); // thresholds [3, 6, 10, 15]
        Assert.Equal(3, (await mis.Client.GetCgroupAsync(new GetCgroupRequest { CgroupId = id }, cancellationToken: Ct)).Defcon);

        var refused = await TestEnforcer.FailsAsync(StatusCode.FailedPrecondition,
            () => mis.Client.SetDefconAsync(new SetDefconRequest { CgroupId = id, Level = 4 }, cancellationToken: Ct).ResponseAsync);
        Assert.Contains("reset", refused.Status.Detail);
        var reset = await mis.Client.SetDefconAsync(new SetDefconRequest { CgroupId = id, Level = 5, Reset = true }, cancellationToken: Ct);
        Assert.Equal((3, 5, 0UL), (reset.PreviousDefcon, reset.Defcon, reset.Violations));

        await mis.Client.SetLearningModeAsync(new SetLearningModeRequest { CgroupId = id, Enabled = true }, cancellationToken: Ct);
        await TestEnforcer.FailsAsync(StatusCode.FailedPrecondition,
            () => mis.Client.SetDefconAsync(new SetDefconRequest { CgroupId = id, Level = 2 }, cancellationToken: Ct).ResponseAsync);
        await mis.Client.SetLearningModeAsync(new SetLearningModeRequest { CgroupId = id, Enabled = false }, cancellationToken: Ct);

        var killed = await mis.Client.SetDefconAsync(new SetDefconRequest { CgroupId = id, Level = 1 }, cancellationToken: Ct);
        Assert.Equal((1, true), (killed.Defcon, killed.Killed));
        var info = await mis.Client.GetCgroupAsync(new GetCgroupRequest { CgroupId = id }, cancellationToken: Ct);
        Assert.Equal((WorkloadState.Exited, true, 137), (info.State, info.Killed, info.ExitStatus));
        Assert.Contains("SetDefcon", info.KillReason);
        var after = await mis.Client.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct);
        Assert.Equal(2UL + 4UL, after.DefconEscalations - before.DefconEscalations); // 5 -> 3, then 5 -> 1
        Assert.Equal(1UL, after.ProcessesKilled - before.ProcessesKilled);
        // An override is not a denial: the count is DEFCON 1's entry count, nothing added. (The
        // enforcer-wide Denied counter would also count a denial by another test's workload.)
        Assert.Equal(15UL, killed.Violations);
        Assert.Equal(15UL, info.Violations);
    }

    [Fact]
    public async Task A_slow_graceful_kill_does_not_delay_an_immediate_kill_issued_meanwhile()
    {
        var mis = await fixture.GetAsync(); // kill_grace_ms = 1500
        var stubborn = await mis.RunAsync("sh", "-c", "trap '' TERM; exec sleep 60"); // SIGTERM stays ignored across exec
        var meek = await mis.RunAsync("sleep", "60");
        await TestEnforcer.WaitAsleepAsync(stubborn.Pid);
        await TestEnforcer.WaitAsleepAsync(meek.Pid);

        var gracefulWatch = Stopwatch.StartNew();
        var graceful = mis.Client.KillProcessAsync(new KillProcessRequest { CgroupId = stubborn.CgroupId, Graceful = true }, cancellationToken: Ct).ResponseAsync;
        await Task.Delay(200, Ct);
        var immediateWatch = Stopwatch.StartNew();
        var immediate = await mis.Client.KillProcessAsync(new KillProcessRequest { CgroupId = meek.CgroupId }, cancellationToken: Ct);
        immediateWatch.Stop();
        bool gracefulStillWaiting = !graceful.IsCompleted;
        var outcome = await graceful;
        gracefulWatch.Stop();

        Assert.True(immediateWatch.Elapsed < TimeSpan.FromMilliseconds(1000), $"the immediate kill took {immediateWatch.Elapsed}");
        Assert.True(gracefulStillWaiting, "the graceful kill should still be waiting out its grace period");
        Assert.True(outcome.SigkillNeeded);
        Assert.InRange(gracefulWatch.Elapsed, TimeSpan.FromMilliseconds(1450), TimeSpan.FromMilliseconds(4500));
        Assert.Equal(137, (await mis.Client.GetCgroupAsync(new GetCgroupRequest { CgroupId = stubborn.CgroupId }, cancellationToken: Ct)).ExitStatus);
        Assert.True(immediate.SigkillNeeded);
        Assert.Equal(137, (await mis.Client.GetCgroupAsync(new GetCgroupRequest { CgroupId = meek.CgroupId }, cancellationToken: Ct)).ExitStatus);
    }

    [Fact]
    public async Task A_graceful_kill_of_a_workload_that_obeys_SIGTERM_ends_without_SIGKILL()
    {
        var mis = await fixture.GetAsync();
        var started = await mis.RunAsync("sleep", "60");
        await TestEnforcer.WaitAsleepAsync(started.Pid);

        var outcome = await mis.Client.KillProcessAsync(new KillProcessRequest { CgroupId = started.CgroupId, Graceful = true }, cancellationToken: Ct);

        Assert.False(outcome.SigkillNeeded);
        Assert.True(outcome.ElapsedMs < 1500, $"took {outcome.ElapsedMs} ms");
        var info = await mis.Client.GetCgroupAsync(new GetCgroupRequest { CgroupId = started.CgroupId }, cancellationToken: Ct);
        Assert.Equal((143, true), (info.ExitStatus, info.Killed)); // 128 + SIGTERM
    }

    [Fact]
    public async Task WatchEvents_streams_the_event_schema_and_filters_by_cgroup()
    {
        var mis = await fixture.GetAsync();
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var all = mis.Client.WatchEvents(new WatchEventsRequest(), cancellationToken: cancel.Token);
        await all.ResponseHeadersAsync; // subscribed from here on

        var started = await mis.RunAsync("sh", "-c", "cat /etc/shadow; cat /etc/shadow; cat /etc/shadow; exit 0");
        var events = new List<Event>();
        await foreach (var e in all.ResponseStream.ReadAllAsync(cancel.Token))
        {
            if (e.CgroupId != started.CgroupId)
                continue;
            events.Add(e);
            if (e.Event_ == "exit")
                break;
        }

        var violations = events.Where(e => e.Event_ == "violation").ToList();
        Assert.Equal(3, violations.Count);
        Assert.All(violations, v => Assert.Equal(("file_read", "/etc/shadow", "deny"), (v.Operation, v.Target, v.Decision)));
        Assert.Equal([1UL, 2UL, 3UL], violations.Select(v => v.Violations));
        var transition = Assert.Single(events, e => e.Event_ == "defcon_transition");
        Assert.Equal((5, 4, 3UL), (transition.PrevDefcon, transition.Defcon, transition.Violations));
        var exit = events[^1];
        Assert.Equal((0, 4), (exit.ExitStatus, exit.Defcon));
        Assert.True(DateTimeOffset.TryParse(exit.Timestamp, out _));

        // Filtered: only the named cgroup's events, only the kinds asked for.
        var sleeper = await mis.RunAsync("sleep", "30");
        await TestEnforcer.WaitAsleepAsync(sleeper.Pid);
        using var one = mis.Client.WatchEvents(new WatchEventsRequest { CgroupId = sleeper.CgroupId, Kinds = { "defcon_transition" } }, cancellationToken: cancel.Token);
        await one.ResponseHeadersAsync;
        var other = await mis.RunAsync("sh", "-c", "cat /etc/shadow; cat /etc/shadow; cat /etc/shadow");
        await mis.Client.SetDefconAsync(new SetDefconRequest { CgroupId = sleeper.CgroupId, Level = 2 }, cancellationToken: Ct);
        Assert.True(await one.ResponseStream.MoveNext(cancel.Token));
        Assert.Equal((sleeper.CgroupId, "defcon_transition", 5, 2), (one.ResponseStream.Current.CgroupId, one.ResponseStream.Current.Event_,
            one.ResponseStream.Current.PrevDefcon, one.ResponseStream.Current.Defcon));
        await mis.Client.KillProcessAsync(new KillProcessRequest { CgroupId = sleeper.CgroupId }, cancellationToken: Ct);
        // Its denials count in the enforcer-wide counters that the next test reads.
        await mis.WaitExitedAsync(other.CgroupId);
    }
}
