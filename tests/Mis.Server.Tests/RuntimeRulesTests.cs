using Microsoft.Extensions.Time.Testing;
using Mis.Enforcer.Policy;
using Mis.Server.Engine;

namespace Mis.Server.Tests;

/// <summary>Runtime rules without a kernel: expiry on an injected clock, and rules narrowed to one syscall.</summary>
public sealed class RuntimeRulesTests
{
    [Fact]
    public void A_runtime_rule_stops_matching_at_its_expiry_instant_and_the_timer_announces_it()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        using var rules = new RuntimeRules(clock);
        int changes = 0;
        rules.Changed += () => changes++;
        var access = new FileRequest(FileOp.Read, "/x", 7, 42);

        rules.Add(7, 42, 0, Verdict.Deny, TimeSpan.FromSeconds(2));
        rules.Add(7, 43, 0, Verdict.Deny, TimeSpan.Zero);
        Assert.Equal(Verdict.Deny, rules.Match(access)?.Action);
        clock.Advance(TimeSpan.FromMilliseconds(1999));
        Assert.NotNull(rules.Match(access));
        Assert.Equal(2, changes);
        clock.Advance(TimeSpan.FromMilliseconds(1));

        Assert.Null(rules.Match(access));
        Assert.Equal(3, changes); // pruned by the timer
        Assert.Single(rules.Active);
        Assert.NotNull(rules.Match(access with { Inode = 43 }));
    }

    [Fact]
    public void A_runtime_rule_naming_a_syscall_applies_to_that_syscall_only()
    {
        using var rules = new RuntimeRules(TimeProvider.System);
        rules.Add(7, 42, 257, Verdict.Deny, TimeSpan.Zero);
        Assert.NotNull(rules.Match(new FileRequest(FileOp.Read, "/x", 7, 42) { SyscallNr = 257 }));
        Assert.Null(rules.Match(new FileRequest(FileOp.Read, "/x", 7, 42) { SyscallNr = 2 }));
    }
}
