using System.Net;
using Mis.Gym.Envs;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Tests;

/// <summary>The simulator's network decisions follow the kernel's lookup order (bpf/include/mis_net.h).</summary>
public sealed class NetRuleTests
{
    private const string Rules = """
        [[network]]
        address = "10.0.0.0/8"
        action = "deny"

        [[network]]
        address = "10.1.0.0/16"
        action = "allow"

        [[network]]
        address = "192.0.2.1"
        port = 443
        protocol = "tcp"
        action = "allow"

        [[network]]
        address = "192.0.2.0/24"
        action = "deny"

        [[network]]
        address = "198.51.100.0/24"
        action = "deny"

        [[network]]
        address = "198.51.100.0/24"
        action = "allow"

        [[action]]
        name = "submit"
        kind = "submit"
        """;

    [Theory]
    [InlineData("10.1.2.3", 80, "tcp", ActionResult.Ok)]         // the longer prefix wins
    [InlineData("10.2.3.4", 80, "tcp", ActionResult.Denied)]
    [InlineData("::ffff:10.2.3.4", 80, "tcp", ActionResult.Denied)] // IPv4-mapped IPv6 is matched as IPv4
    [InlineData("192.0.2.1", 443, "tcp", ActionResult.Ok)]       // exact protocol and port before any/any
    [InlineData("192.0.2.1", 80, "tcp", ActionResult.Denied)]
    [InlineData("192.0.2.1", 443, "udp", ActionResult.Denied)]
    [InlineData("198.51.100.9", 53, "udp", ActionResult.Ok)]     // the same key twice: the later rule, as a map update
    [InlineData("203.0.113.1", 443, "tcp", ActionResult.Ok)]     // no rule, above the lockdown level
    public void Decisions_follow_the_kernel_lookup_order(string address, int port, string protocol, ActionResult expected)
    {
        var text = Rules + $"\n\n[[action]]\nname = \"go\"\nkind = \"connect\"\naddress = \"{address}\"\nport = {port}\nprotocol = \"{protocol}\"\n";
        var scenario = Support.ParseActions(text, "net.toml");
        using var env = MisGym.MakeUnwrapped(scenario);
        env.Reset(seed: 0);
        Assert.Equal(expected, env.Do(scenario, "go").Info.Get<ActionResult>("result"));
    }

    // The kernel's numbers (bpf/include/mis_net.h, mis_rule_protocol): MPTCP (262) is decided as
    // TCP, and a socket of any other IP protocol (UDP-Lite 136, ICMP 1, ICMPv6 58, SCTP 132) is
    // refused by cgroup/sock_create; NetAttackTests shows the same on the real kernel.
    [Theory]
    [InlineData(136, "192.0.2.1", 53, "Deny")]   // refused, whatever the rules
    [InlineData(17, "192.0.2.1", 53, "Deny")]
    [InlineData(262, "192.0.2.1", 443, "Allow")] // the tcp allow rule of 192.0.2.1:443
    [InlineData(6, "192.0.2.1", 443, "Allow")]
    [InlineData(262, "192.0.2.1", 80, "Deny")]
    [InlineData(17, "203.0.113.1", 53, "Allow")]  // no rule, above the lockdown level
    [InlineData(136, "203.0.113.1", 53, "Deny")]
    [InlineData(1, "203.0.113.1", 0, "Deny")]
    [InlineData(58, "2001:db8::1", 0, "Deny")]
    [InlineData(132, "203.0.113.1", 443, "Deny")]
    public void Ip_protocols_are_decided_as_their_rule_family_or_refused(int ipProtocol, string address, int port, string expected)
    {
        var scenario = Support.ParseActions(Rules, "net.toml");
        var matcher = NetRuleMatcher.For(scenario);
        Assert.Equal(expected == "Allow", matcher.Allows(IPAddress.Parse(address), port, ipProtocol, defcon: 5, lockdownLevel: 3));
    }
}
