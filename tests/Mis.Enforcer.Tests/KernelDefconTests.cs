using Mis.Enforcer.Configuration;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;

namespace Mis.Enforcer.Tests;

/// <summary>The kernel's DEFCON state machine, driven through the mis_report program (BPF_PROG_TEST_RUN).</summary>
[Collection("kernel")]
public sealed class KernelDefconTests
{
    private static ViolationReport Violation(ulong cgroupId, int n = 0) =>
        new(cgroupId, ViolationOp.FileWrite, 4242, 4243, $"/etc/shadow-{n}");

    [Fact]
    public void Twenty_reports_walk_the_default_table_down_to_1_and_kill()
    {
        using var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        enforcer.Manage(cgroup.Path, learning: false);

        var outcomes = Enumerable.Range(1, 20).Select(i => enforcer.Report(Violation(cgroup.Id, i))).ToList();

        // Transitions exactly at 3, 6, 10 and 15 violations (the seed's table, levels 5..1).
        var transitions = outcomes.Where(o => o.DefconBefore != o.DefconAfter)
            .Select(o => (o.Violations, o.DefconBefore.Value, o.DefconAfter.Value)).ToList();
        Assert.Equal([(3UL, 5, 4), (6UL, 4, 3), (10UL, 3, 2), (15UL, 2, 1)], transitions);
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (ulong)i), outcomes.Select(o => o.Violations));
        // Denials at level 2 still count (the seed wedged at 2), and so do those at level 1.
        Assert.Equal(1, outcomes[^1].DefconAfter);

        var state = enforcer.State(cgroup.Id)!;
        Assert.Equal(20UL, state.Violations);
        Assert.Equal(1, state.Defcon);
        Assert.True(state.Killed);
        Assert.Equal(1, enforcer.Defcon(cgroup.Id));

        var events = KernelTest.Drain(enforcer, es => es.Count(e => e.Type == KernelEventType.Violation) == 20 && es.Any(e => e.Type == KernelEventType.Kill));
        var violations = events.Where(e => e.Type == KernelEventType.Violation).ToList();
        Assert.Equal(20, violations.Count);
        Assert.All(violations, e => Assert.Equal(ViolationOp.FileWrite, e.Op));
        Assert.Equal("/etc/shadow-7", violations[6].Target);
        Assert.Equal(4242, violations[0].Pid);
        Assert.Equal(4243, violations[0].Tid);
        Assert.Equal([(5, 4), (4, 3), (3, 2), (2, 1)],
            events.Where(e => e.Type == KernelEventType.Defcon).Select(e => (e.PrevDefcon, e.Defcon)));
        var kill = Assert.Single(events, e => e.Type == KernelEventType.Kill);
        Assert.Equal(15UL, kill.Violations);
        Assert.Equal(0UL, enforcer.RingbufDrops);
        Assert.True(enforcer.CgroupKills >= 1);
    }

    [Fact]
    public void Concurrent_reports_count_exactly_and_cross_each_threshold_once()
    {
        using var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        enforcer.Manage(cgroup.Path, learning: false, config: new DefconConfig { Thresholds = [50, 100, 200, 300], KillAtLevel1 = false });

        // BPF_PROG_TEST_RUN runs on the caller's CPU: four threads race on the same counter.
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ =>
        {
            for (int i = 0; i < 100; i++)
                enforcer.Report(Violation(cgroup.Id, i));
        });

        Assert.Equal(400UL, enforcer.State(cgroup.Id)!.Violations);
        // Four CPUs published the cgroup's word at once: the one left standing is the latest.
        Assert.Equal(1, enforcer.ViewedDefcon(cgroup.Id, KernelEnforcer.MonotonicNs()));
        var events = KernelTest.Drain(enforcer, es => es.Count(e => e.Type == KernelEventType.Violation) == 400);
        Assert.Equal(400, events.Count(e => e.Type == KernelEventType.Violation));
        Assert.Equal(400, events.Where(e => e.Type == KernelEventType.Violation).Select(e => e.Violations).Distinct().Count());
        Assert.Equal([(2, 1), (3, 2), (4, 3), (5, 4)],
            events.Where(e => e.Type == KernelEventType.Defcon).Select(e => (e.PrevDefcon, e.Defcon)).Order());
    }

    [Fact]
    public void Custom_thresholds_and_per_cgroup_configs_are_independent()
    {
        using var enforcer = KernelTest.Open();
        using var strict = new ScratchCgroup();
        using var lenient = new ScratchCgroup();
        enforcer.Manage(strict.Path, learning: false, config: new DefconConfig { Thresholds = [1, 2, 3, 4], KillAtLevel1 = false });
        enforcer.Manage(lenient.Path, learning: false, config: new DefconConfig { Thresholds = [100, 200, 300, 400] });

        var strictLevels = Enumerable.Range(1, 5).Select(i => enforcer.Report(Violation(strict.Id)).DefconAfter.Value).ToList();
        var lenientLevels = Enumerable.Range(1, 5).Select(i => enforcer.Report(Violation(lenient.Id)).DefconAfter.Value).ToList();

        Assert.Equal([4, 3, 2, 1, 1], strictLevels);
        Assert.Equal([5, 5, 5, 5, 5], lenientLevels);
        Assert.Equal((1, 5), (enforcer.ViewedDefcon(strict.Id, KernelEnforcer.MonotonicNs()), enforcer.ViewedDefcon(lenient.Id, KernelEnforcer.MonotonicNs())));
        Assert.False(enforcer.State(strict.Id)!.Killed); // kill_at_level_1 = false: level 1 without a kill
    }

    [Fact]
    public void Learning_mode_records_but_does_not_escalate()
    {
        using var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        enforcer.Manage(cgroup.Path, learning: true);

        var outcomes = Enumerable.Range(1, 20).Select(i => enforcer.Report(Violation(cgroup.Id, i))).ToList();

        Assert.All(outcomes, o => Assert.Equal((0UL, 5, 5), (o.Violations, o.DefconBefore, o.DefconAfter)));
        var state = enforcer.State(cgroup.Id)!;
        Assert.True(state.Learning);
        Assert.Equal(20UL, state.LearningViolations);
        Assert.Equal(5, state.Defcon);
        var events = KernelTest.Drain(enforcer, es => es.Count(e => e.Type == KernelEventType.Violation) == 20);
        Assert.Equal(20, events.Count(e => e.Type == KernelEventType.Violation && e.Learning));
        Assert.DoesNotContain(events, e => e.Type is KernelEventType.Defcon or KernelEventType.Kill);

        // Leaving learning mode: violations count from where they are (zero) again.
        enforcer.SetLearningMode(cgroup.Id, false);
        Assert.False(enforcer.State(cgroup.Id)!.Learning);
        Assert.Equal(1UL, enforcer.Report(Violation(cgroup.Id)).Violations);
    }

    [Fact]
    public void Decay_forgives_violations_on_the_next_read_without_a_new_violation()
    {
        using var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        enforcer.Manage(cgroup.Path, learning: false, config: new DefconConfig { DecayIntervalMs = 100, DecayAmount = 2 });
        const ulong Ms = 1_000_000;
        ulong t0 = 1_000_000 * Ms;

        for (int i = 0; i < 7; i++)
            enforcer.ReportAt(Violation(cgroup.Id), t0);
        Assert.Equal((7UL, 3), Level(enforcer.StateAt(cgroup.Id, t0)!));
        Assert.Equal((7UL, 3), Level(enforcer.StateAt(cgroup.Id, t0 + 99 * Ms)!)); // not a full interval yet
        Assert.Equal((5UL, 4), Level(enforcer.StateAt(cgroup.Id, t0 + 100 * Ms)!));
        Assert.Equal((1UL, 5), Level(enforcer.StateAt(cgroup.Id, t0 + 320 * Ms)!)); // two more intervals
        // A violation restarts the interval: 20 ms after it, nothing is forgiven.
        Assert.Equal(2UL, enforcer.ReportAt(Violation(cgroup.Id), t0 + 330 * Ms).Violations);
        Assert.Equal((2UL, 5), Level(enforcer.StateAt(cgroup.Id, t0 + 420 * Ms)!));
        Assert.Equal((0UL, 5), Level(enforcer.StateAt(cgroup.Id, t0 + 430 * Ms)!));

        var events = KernelTest.Drain(enforcer, es => es.Count(e => e.Type == KernelEventType.Defcon) >= 4);
        Assert.Equal([(5, 4), (4, 3), (3, 4), (4, 5)],
            events.Where(e => e.Type == KernelEventType.Defcon).Select(e => (e.PrevDefcon, e.Defcon)));
    }

    [Fact]
    public void Decay_runs_on_the_real_clock_too()
    {
        using var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        enforcer.Manage(cgroup.Path, learning: false, config: new DefconConfig { DecayIntervalMs = 50, DecayAmount = 1 });

        for (int i = 0; i < 4; i++)
            enforcer.Report(Violation(cgroup.Id));
        Assert.Equal(4, enforcer.Defcon(cgroup.Id));
        Thread.Sleep(300); // at least 5 intervals, no violation
        var state = enforcer.State(cgroup.Id)!;
        Assert.Equal((0UL, 5), (state.Violations, state.Defcon));
    }

    [Fact]
    public void Unmanaged_cgroups_are_refused_and_have_no_level()
    {
        using var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        Assert.Null(enforcer.State(cgroup.Id));
        // Not DEFCON 5: a level nobody read would decide the cgroup's operations at the calmest level.
        var unknown = Assert.Throws<KeyNotFoundException>(() => enforcer.Defcon(cgroup.Id));
        Assert.Contains($"cgroup {cgroup.Id} is not managed", unknown.Message);
        Assert.Throws<KeyNotFoundException>(() => enforcer.Report(Violation(cgroup.Id)));
        Assert.Throws<KeyNotFoundException>(() => enforcer.SetLearningMode(cgroup.Id, true));
        Assert.Throws<ArgumentException>(() => enforcer.Manage(Path.GetDirectoryName(enforcer.MisRoot)!, false));
    }

    [Fact]
    public void The_view_answers_while_managed_and_never_after_unmanage_or_dispose()
    {
        var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        using var other = new ScratchCgroup();
        enforcer.Manage(cgroup.Path, learning: false, config: new DefconConfig { Thresholds = [1, 2, 3, 4], KillAtLevel1 = false });
        enforcer.Manage(other.Path, learning: false);
        enforcer.Report(Violation(cgroup.Id));
        Assert.Equal((4, 5), (enforcer.ViewedDefcon(cgroup.Id, KernelEnforcer.MonotonicNs()), enforcer.ViewedDefcon(other.Id, KernelEnforcer.MonotonicNs())));
        // Unmanaged: no level from the view (its slot is free), and none made up by Defcon either.
        Assert.True(enforcer.Unmanage(cgroup.Id));
        Assert.Null(enforcer.ViewedDefcon(cgroup.Id, KernelEnforcer.MonotonicNs()));
        Assert.Throws<KeyNotFoundException>(() => enforcer.Defcon(cgroup.Id));
        // Disposed: the mapping is gone; a late reader gets no answer instead of a fault.
        enforcer.Dispose();
        Assert.Null(enforcer.ViewedDefcon(other.Id, KernelEnforcer.MonotonicNs()));
    }

    private static (ulong, int) Level(CgroupState s) => (s.Violations, s.Defcon);
}
