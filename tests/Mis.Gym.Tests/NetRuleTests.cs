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
        var scenario = ScenarioFile.Parse(text, "net.toml");
        using var env = MisGym.MakeUnwrapped(scenario);
        env.Reset(seed: 0);
        Assert.Equal(expected, env.Do(scenario, "go").Info.Get<ActionResult>("result"));
    }
}
