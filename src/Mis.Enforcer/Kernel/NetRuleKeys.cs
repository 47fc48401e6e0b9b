using System.Net.Sockets;
using Mis.Enforcer.Policy;

namespace Mis.Enforcer.Kernel;

/// <summary>
/// Turns a policy's <see cref="NetRule"/> into an entry of the kernel's <c>mis_net_rules</c> LPM
/// trie. Lookup order in the kernel (bpf/include/mis_net.h): exact protocol and port, then the
/// protocol with any port, then any protocol with the port, then any/any; within each the longest
/// address prefix wins. Trace lets the operation through and reports it. IPv4-mapped IPv6 rules
/// are stored as IPv4, the way the hooks match such destinations.
/// </summary>
public static class NetRuleKeys
{
    private const byte AfInet = 2;
    private const byte AfInet6 = 10;

    /// <summary>The trie key and value for <paramref name="rule"/> under <paramref name="policyId"/>, address masked to the prefix.</summary>
    /// <exception cref="ArgumentException">The rule does not fit the kernel's key (prefix, port, family, verdict).</exception>
    public static unsafe (MisNetKey Key, MisNetValue Value) ToKernel(NetRule rule, uint policyId, uint ruleId)
    {
        ArgumentNullException.ThrowIfNull(rule);
        var address = rule.Address;
        int prefix = rule.PrefixLength;
        if (address.IsIPv4MappedToIPv6 && prefix >= 96)
        {
            address = address.MapToIPv4();
            prefix -= 96;
        }
        if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
            throw new ArgumentException($"network rule {rule}: the address is neither IPv4 nor IPv6", nameof(rule));
        bool v4 = address.AddressFamily == AddressFamily.InterNetwork;
        int maxPrefix = v4 ? 32 : 128;
        if (prefix < 0 || prefix > maxPrefix)
            throw new ArgumentException($"network rule {rule}: the prefix must be 0..{maxPrefix}", nameof(rule));
        if (rule.Port is < 0 or > 65535)
            throw new ArgumentException($"network rule {rule}: the port must be 0..65535", nameof(rule));
        if (!Enum.IsDefined(rule.Action) || !Enum.IsDefined(rule.Protocol))
            throw new ArgumentException($"network rule {rule}: unknown action or protocol", nameof(rule));

        var key = new MisNetKey
        {
            Prefixlen = MisNetKey.FixedPrefix + (uint)prefix,
            PolicyId = policyId,
            Family = v4 ? AfInet : AfInet6,
            Protocol = (byte)rule.Protocol,
            Port = (ushort)rule.Port,
        };
        var bytes = address.GetAddressBytes();
        for (int i = 0; i < bytes.Length; i++)
        {
            int keep = Math.Clamp(prefix - i * 8, 0, 8);
            key.Addr[i] = (byte)(bytes[i] & (byte)(0xFF << (8 - keep)));
        }
        return (key, new MisNetValue { Action = (uint)rule.Action, RuleId = ruleId });
    }
}
