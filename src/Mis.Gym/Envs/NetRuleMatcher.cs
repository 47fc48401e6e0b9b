using System.Net;
using System.Net.Sockets;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;

namespace Mis.Gym.Envs;

/// <summary>
/// Decides an outbound connect or send the way the kernel's cgroup socket hooks do
/// (<c>bpf/include/mis_net.h</c>), for the simulator. The rules are turned into the kernel's own
/// trie keys by <see cref="NetRuleKeys.ToKernel"/>, so whatever that encoding does (masking,
/// IPv4-mapped folding, the family an address lands in), the simulator does too. Lookup order:
/// exact protocol and port, then protocol with any port, then any protocol with the port, then
/// any/any; within each the longest address prefix wins, and of two rules with the same key the
/// later one (the kernel map keeps the last update). With no rule, the operation is allowed above
/// the lockdown level and denied at or below it.
/// </summary>
public sealed class NetRuleMatcher
{
    private const byte AfInet = 2;
    private const byte AfInet6 = 10;

    private readonly List<Entry> _entries = [];

    private readonly record struct Entry(byte Family, byte Protocol, ushort Port, int PrefixBits, byte[] Addr, Verdict Action, string Source);

    internal NetRuleMatcher(IReadOnlyList<NetRule> rules)
    {
        for (int i = 0; i < rules.Count; i++)
        {
            var (key, value) = NetRuleKeys.ToKernel(rules[i], policyId: 1, ruleId: (uint)i);
            var entry = new Entry(key.Family, key.Protocol, key.Port, (int)(key.Prefixlen - MisNetKey.FixedPrefix),
                AddrOf(key), (Verdict)value.Action, rules[i].Source);
            int same = _entries.FindIndex(e => e.Family == entry.Family && e.Protocol == entry.Protocol && e.Port == entry.Port
                                               && e.PrefixBits == entry.PrefixBits && e.Addr.AsSpan().SequenceEqual(entry.Addr));
            if (same >= 0)
                _entries[same] = entry;
            else
                _entries.Add(entry);
        }
    }

    /// <summary>The matcher for a scenario's network rules.</summary>
    internal static NetRuleMatcher For(Scenarios.Scenario scenario) => new(scenario.Policy.NetRules);

    /// <summary>
    /// The verdict for an operation on a socket of IP protocol <paramref name="ipProtocol"/> (the
    /// kernel's number, e.g. 136 for UDP-Lite): decided as its rule protocol
    /// (<see cref="NetProtocols.RuleProtocol"/>), or denied when no rule can hold for it, as the
    /// kernel's <c>cgroup/sock_create</c> hook refuses such a socket.
    /// </summary>
    internal (Verdict Verdict, string Reason) Decide(IPAddress address, int port, int ipProtocol, int defcon, int lockdownLevel) =>
        NetProtocols.RuleProtocol(ipProtocol) is { } protocol
            ? Decide(address, port, protocol, defcon, lockdownLevel)
            : (Verdict.Deny, $"IP protocol {ipProtocol}: no network rule can hold for it, so its sockets are refused");

    /// <summary>Whether the operation goes through (allow or trace), as <see cref="Decide(IPAddress, int, int, int, int)"/> says.</summary>
    internal bool Allows(IPAddress address, int port, int ipProtocol, int defcon, int lockdownLevel) =>
        Decide(address, port, ipProtocol, defcon, lockdownLevel).Verdict != Verdict.Deny;

    /// <summary>The verdict for an operation to <paramref name="address"/>:<paramref name="port"/> at DEFCON <paramref name="defcon"/>, and why.</summary>
    internal (Verdict Verdict, string Reason) Decide(IPAddress address, int port, NetProtocol protocol, int defcon, int lockdownLevel)
    {
        if (address.IsIPv4MappedToIPv6)
            address = address.MapToIPv4();
        byte family = address.AddressFamily == AddressFamily.InterNetwork ? AfInet : AfInet6;
        var dest = new byte[16];
        address.GetAddressBytes().CopyTo(dest, 0);
        foreach (var (p, pt) in new[] { ((byte)protocol, (ushort)port), ((byte)protocol, (ushort)0), ((byte)0, (ushort)port), ((byte)0, (ushort)0) })
        {
            Entry? best = null;
            foreach (var e in _entries)
            {
                if (e.Family == family && e.Protocol == p && e.Port == pt && PrefixMatches(e.Addr, dest, e.PrefixBits)
                    && (best is null || e.PrefixBits > best.Value.PrefixBits))
                    best = e;
            }
            if (best is { } rule)
                return (rule.Action, rule.Source);
        }
        return defcon <= lockdownLevel
            ? (Verdict.Deny, $"DEFCON {defcon}: network lockdown (no rule allows it at or below DEFCON {lockdownLevel})")
            : (Verdict.Allow, "no network rule: allowed above the lockdown level");
    }

    private static unsafe byte[] AddrOf(MisNetKey key)
    {
        var addr = new byte[16];
        for (int i = 0; i < 16; i++)
            addr[i] = key.Addr[i];
        return addr;
    }

    private static bool PrefixMatches(byte[] rule, byte[] dest, int bits)
    {
        for (int i = 0; i < 16 && bits > 0; i++, bits -= 8)
        {
            int mask = bits >= 8 ? 0xFF : (0xFF << (8 - bits)) & 0xFF;
            if ((rule[i] & mask) != (dest[i] & mask))
                return false;
        }
        return true;
    }
}
