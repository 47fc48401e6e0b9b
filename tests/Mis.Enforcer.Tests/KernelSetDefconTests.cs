using Mis.Enforcer.Configuration;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;

namespace Mis.Enforcer.Tests;

/// <summary>
/// The manual override (MIS_CMD_SET_DEFCON, used by the gRPC SetDefcon) and the kernel's
/// violation and escalation counters (GetStats' denied and defcon_escalations).
/// </summary>
[Collection("kernel")]
public sealed class KernelSetDefconTests
{
    [Fact]
    public void Setting_a_level_sets_the_violation_count_to_its_entry_count_with_one_transition_event()
    {
        using var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        enforcer.Manage(cgroup.Path, learning: false);

        var raised = enforcer.SetDefcon(cgroup.Id, DefconLevel.From(2));
        Assert.Equal((10UL, 5, 2), (raised.Violations, raised.DefconBefore, raised.DefconAfter)); // thresholds [3, 6, 10, 15]
        var lowered = enforcer.SetDefcon(cgroup.Id, DefconLevel.From(4));
        Assert.Equal((3UL, 2, 4), (lowered.Violations, lowered.DefconBefore, lowered.DefconAfter));
        var reset = enforcer.SetDefcon(cgroup.Id, DefconLevel.From(5));
        Assert.Equal((0UL, 4, 5), (reset.Violations, reset.DefconBefore, reset.DefconAfter));

        // Violations counted afterwards land on top of the set count.
        enforcer.SetDefcon(cgroup.Id, DefconLevel.From(4));
        var next = enforcer.Report(new ViolationReport(cgroup.Id, ViolationOp.FileRead, 1, 1, "/x"));
        Assert.Equal((4UL, 4), (next.Violations, next.DefconAfter));

        var events = KernelTest.Drain(enforcer, es => es.Count(e => e.Type == KernelEventType.Defcon) == 4);
        Assert.Equal([(5, 2), (2, 4), (4, 5), (5, 4)], events.Where(e => e.Type == KernelEventType.Defcon).Select(e => (e.PrevDefcon, e.Defcon)));
        Assert.DoesNotContain(events, e => e.Type == KernelEventType.Kill);
        Assert.False(enforcer.State(cgroup.Id)!.Killed);
    }

    [Fact]
    public void Setting_DEFCON_1_kills_and_the_kill_is_never_undone()
    {
        using var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        enforcer.Manage(cgroup.Path, learning: false);

        var killed = enforcer.SetDefcon(cgroup.Id, DefconLevel.From(1));
        var afterReset = enforcer.SetDefcon(cgroup.Id, DefconLevel.From(5));

        Assert.Equal((15UL, 1), (killed.Violations, killed.DefconAfter));
        Assert.Equal(5, afterReset.DefconAfter);
        Assert.True(enforcer.State(cgroup.Id)!.Killed, "KILLED stays set: user space refuses to lower a killed cgroup");
        var events = KernelTest.Drain(enforcer, es => es.Any(e => e.Type == KernelEventType.Kill));
        Assert.Single(events, e => e.Type == KernelEventType.Kill);
        Assert.True(enforcer.CgroupKills >= 1);
    }

    [Fact]
    public void The_kernel_counts_every_denial_and_every_level_lost()
    {
        using var enforcer = KernelTest.Open(new DefconConfig { KillAtLevel1 = false });
        using var counted = new ScratchCgroup();
        using var learning = new ScratchCgroup();
        enforcer.Manage(counted.Path, learning: false);
        enforcer.Manage(learning.Path, learning: true);

        for (int i = 0; i < 7; i++)
            enforcer.Report(new ViolationReport(counted.Id, ViolationOp.Exec, 1, 1, "/x"));
        for (int i = 0; i < 5; i++)
            enforcer.Report(new ViolationReport(learning.Id, ViolationOp.Exec, 1, 1, "/x"));
        enforcer.SetDefcon(counted.Id, DefconLevel.From(1)); // 3 -> 1: two more levels

        Assert.Equal(12UL, enforcer.KernelViolations); // learning-mode denials are denials too
        Assert.Equal(2UL + 2UL, enforcer.KernelEscalations); // 5 -> 4 -> 3 by violations, 3 -> 1 by hand
        Assert.Equal(0UL, enforcer.RingbufDrops);
    }

    [Fact]
    public void An_out_of_range_level_or_an_unmanaged_cgroup_is_refused()
    {
        using var enforcer = KernelTest.Open();
        Assert.Throws<ArgumentOutOfRangeException>(() => enforcer.SetDefcon(1, DefconLevel.From(0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => enforcer.SetDefcon(1, DefconLevel.From(6)));
        Assert.Throws<KeyNotFoundException>(() => enforcer.SetDefcon(123456789, DefconLevel.From(3)));
    }
}
