using Mis.Enforcer.Configuration;
using Mis.Enforcer.Defcon;

namespace Mis.Enforcer.Tests;

/// <summary>The C# twin on its own: pure, deterministic, no kernel needed.</summary>
public sealed class DefconStateMachineTests
{
    private const ulong Ms = 1_000_000;

    private sealed class FakeClock
    {
        public ulong Now = 1_000 * Ms;
        public ulong Read() => Now;
    }

    [Fact]
    public void Default_table_transitions_at_3_6_10_15_and_kills_at_1()
    {
        var clock = new FakeClock();
        var machine = new DefconStateMachine(new DefconConfig(), clock.Read);
        var transitions = new List<DefconTransition>();
        machine.Transition += transitions.Add;

        var levels = Enumerable.Range(1, 20).Select(_ => machine.RecordViolation().DefconAfter.Value).ToList();

        Assert.Equal([5, 5, 4, 4, 4, 3, 3, 3, 3, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1], levels);
        Assert.Equal([(5, 4, 3UL), (4, 3, 6UL), (3, 2, 10UL), (2, 1, 15UL)], transitions.Select(t => (t.From.Value, t.To.Value, t.Violations)));
        Assert.True(machine.Killed);
        Assert.True(machine.Syscall().Kill);
    }

    [Fact]
    public void Slowdown_per_level_matches_the_config()
    {
        var clock = new FakeClock();
        var machine = new DefconStateMachine(new DefconConfig { KillAtLevel1 = false }, clock.Read);
        var waits = new List<ulong>();
        for (int v = 0; v <= 16; v++)
        {
            waits.Add(machine.Syscall().SlowdownNs);
            machine.RecordViolation();
        }
        // 0-2: none; 3-5: 0.1 ms; 6-9: 1 ms; 10-14: 10 ms; 15+: level 2's 10 ms (no kill configured).
        Assert.Equal(new ulong[] { 0, 0, 0, 100_000, 100_000, 100_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000,
                                   10_000_000, 10_000_000, 10_000_000, 10_000_000, 10_000_000, 10_000_000, 10_000_000 }, waits);
        Assert.Equal(waits.Aggregate(0UL, (a, b) => a + b), machine.SlowdownNsTotal);
        Assert.False(machine.Syscall().Kill);
    }

    [Fact]
    public void Learning_mode_records_without_escalating()
    {
        var machine = new DefconStateMachine(new DefconConfig(), new FakeClock().Read, learning: true);
        for (int i = 0; i < 30; i++)
            Assert.Equal(5, machine.RecordViolation().DefconAfter);
        Assert.Equal(30UL, machine.LearningViolations);
        Assert.Equal(0UL, machine.Violations);
    }

    [Fact]
    public void Decay_is_lazy_and_restarts_at_each_violation()
    {
        var clock = new FakeClock();
        var machine = new DefconStateMachine(new DefconConfig { DecayIntervalMs = 100, DecayAmount = 2 }, clock.Read);
        for (int i = 0; i < 7; i++)
            machine.RecordViolation();
        clock.Now += 99 * Ms;
        Assert.Equal(7UL, machine.Violations);
        clock.Now += 1 * Ms;
        Assert.Equal(5UL, machine.Violations);
        clock.Now += 220 * Ms;
        Assert.Equal(1UL, machine.Violations);
        clock.Now += 10 * Ms;
        Assert.Equal(2UL, machine.RecordViolation().Violations);
        clock.Now += 90 * Ms;
        Assert.Equal(2UL, machine.Violations);
        clock.Now += 10 * Ms;
        Assert.Equal(0UL, machine.Violations);
    }

    [Fact]
    public void A_killed_cgroup_does_not_decay()
    {
        var clock = new FakeClock();
        var machine = new DefconStateMachine(new DefconConfig { DecayIntervalMs = 10 }, clock.Read);
        for (int i = 0; i < 15; i++)
            machine.RecordViolation();
        clock.Now += 10_000 * Ms;
        Assert.Equal(1, machine.Level);
    }

    [Fact]
    public void SetLevel_jumps_to_the_entry_count_either_way_with_one_override_transition_each()
    {
        var machine = new DefconStateMachine(new DefconConfig(), new FakeClock().Read);
        var transitions = new List<DefconTransition>();
        machine.Transition += transitions.Add;

        var raised = machine.SetLevel(DefconLevel.From(2));
        var lowered = machine.SetLevel(DefconLevel.From(4));
        var same = machine.SetLevel(DefconLevel.From(4));
        var reset = machine.SetLevel(DefconLevel.Normal);

        Assert.Equal([(10UL, 5, 2), (3UL, 2, 4), (3UL, 4, 4), (0UL, 4, 5)],
            new[] { raised, lowered, same, reset }.Select(o => (o.Violations, o.DefconBefore.Value, o.DefconAfter.Value)));
        Assert.Equal([(5, 2), (2, 4), (4, 5)], transitions.Select(t => (t.From.Value, t.To.Value)));
        Assert.All(transitions, t => Assert.Equal(DefconCause.Override, t.Cause));
        // Violations counted afterwards land on top of the set count.
        machine.SetLevel(DefconLevel.From(4));
        Assert.Equal((4UL, 4), (machine.RecordViolation().Violations, machine.Level.Value));
    }

    [Fact]
    public void SetLevel_1_kills_and_nothing_undoes_the_kill()
    {
        var machine = new DefconStateMachine(new DefconConfig(), new FakeClock().Read);
        var killed = machine.SetLevel(DefconLevel.Severest);
        Assert.Equal((15UL, 1), (killed.Violations, killed.DefconAfter.Value));
        Assert.True(machine.Killed);

        Assert.Equal(5, machine.SetLevel(DefconLevel.Normal).DefconAfter);
        Assert.True(machine.Killed);
        Assert.True(machine.Syscall().Kill);
    }

    [Fact]
    public void SetLevel_1_without_kill_only_slows()
    {
        var machine = new DefconStateMachine(new DefconConfig { KillAtLevel1 = false }, new FakeClock().Read);
        machine.SetLevel(DefconLevel.Severest);
        Assert.False(machine.Killed);
        Assert.Equal(new SyscallOutcome(10_000_000, false), machine.Syscall());
    }

    [Fact]
    public void SetLevel_applies_decay_first_and_restarts_the_interval()
    {
        var clock = new FakeClock();
        var machine = new DefconStateMachine(new DefconConfig { DecayIntervalMs = 100 }, clock.Read);
        machine.SetLevel(DefconLevel.From(3)); // 6 violations
        clock.Now += 250 * Ms;
        Assert.Equal((6UL, 4, 3), Outcome(machine.SetLevel(DefconLevel.From(3)))); // 2 forgiven first (down to DEFCON 4), then set back to 6
        clock.Now += 99 * Ms;
        Assert.Equal(6UL, machine.Violations); // the set restarted the interval
        clock.Now += 1 * Ms;
        Assert.Equal(5UL, machine.Violations);
    }

    [Fact]
    public void Learning_mode_does_not_stop_an_override()
    {
        var machine = new DefconStateMachine(new DefconConfig(), new FakeClock().Read, learning: true);
        Assert.Equal(3, machine.SetLevel(DefconLevel.From(3)).DefconAfter);
        Assert.Equal(3, machine.RecordViolation().DefconAfter); // recorded, not counted
        Assert.Equal(6UL, machine.Violations);
    }

    private static (ulong, int, int) Outcome(Mis.Enforcer.Policy.ViolationOutcome o) => (o.Violations, o.DefconBefore, o.DefconAfter);
}
