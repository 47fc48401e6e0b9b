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

        var levels = Enumerable.Range(1, 20).Select(_ => machine.RecordViolation().DefconAfter).ToList();

        Assert.Equal([5, 5, 4, 4, 4, 3, 3, 3, 3, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1], levels);
        Assert.Equal([(5, 4, 3UL), (4, 3, 6UL), (3, 2, 10UL), (2, 1, 15UL)], transitions.Select(t => (t.From, t.To, t.Violations)));
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
}
