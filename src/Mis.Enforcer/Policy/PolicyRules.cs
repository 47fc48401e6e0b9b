using System.Net;
using Mis.Native;

namespace Mis.Enforcer.Policy;

/// <summary>File operations a rule applies to.</summary>
[Flags]
public enum FileOps
{
    /// <summary>Opens for reading.</summary>
    Read = 1,
    /// <summary>Opens for writing, creating or truncating.</summary>
    Write = 2,
    /// <summary>Executions.</summary>
    Exec = 4,
    /// <summary>All of them.</summary>
    All = Read | Write | Exec,
}

/// <summary>Network protocols a rule applies to.</summary>
public enum NetProtocol
{
    /// <summary>TCP and UDP.</summary>
    Any = 0,
    /// <summary>TCP and MPTCP (connect).</summary>
    Tcp = 6,
    /// <summary>UDP (connect and sendmsg).</summary>
    Udp = 17,
}

/// <summary>
/// IP protocol numbers as the kernel's socket hooks see them, and the rule protocol each is decided
/// as: a <c>tcp</c> rule holds for MPTCP too. Sockets of every other IP protocol are refused when
/// created (UDP-Lite's connect skips the kernel's connect hooks, ping sockets have no sendmsg hook),
/// so no rule is dodged through them. Twin of <c>mis_rule_protocol</c> in bpf/include/mis_net.h.
/// </summary>
public static class NetProtocols
{
    internal const int Icmp = 1;
    internal const int Tcp = 6;
    internal const int Udp = 17;
    internal const int IcmpV6 = 58;
    internal const int Sctp = 132;
    internal const int UdpLite = 136;
    internal const int Mptcp = 262;

    /// <summary>The rule protocol <paramref name="ipProtocol"/> is decided as; null when no rule can hold for it (the kernel refuses such sockets).</summary>
    public static NetProtocol? RuleProtocol(int ipProtocol) => ipProtocol switch
    {
        Tcp or Mptcp => NetProtocol.Tcp,
        Udp => NetProtocol.Udp,
        _ => null,
    };
}

/// <summary>A rule on files by path or glob. <paramref name="Source"/> says where it was written ("policy.toml:12").</summary>
public sealed record FileRule(PathGlob Path, FileOps Ops, Verdict Action, string Source)
{
    /// <summary>The identity of the file a concrete path names, so that a hard link or another name of it matches too.</summary>
    internal FileIdentity? Identity { get; init; }

    internal bool AppliesTo(FileOp op) => Ops.HasFlag(op switch
    {
        FileOp.Read => FileOps.Read,
        FileOp.Write => FileOps.Write,
        _ => FileOps.Exec,
    });
}

/// <summary>A rule on outbound connects and sends, by address (with prefix), port (0 = any) and protocol.</summary>
public sealed record NetRule(IPAddress Address, int PrefixLength, int Port, NetProtocol Protocol, Verdict Action, string Source)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"{Address}/{PrefixLength} port {(Port == 0 ? "any" : Port)} {Protocol.ToString().ToLowerInvariant()} {Action.ToString().ToLowerInvariant()}";
}

/// <summary>
/// A rule on connects and addressed sends to a Unix socket name: a path exactly as the workload
/// spells it, or <c>@name</c> for an abstract socket. Unlisted names outside the workload's own
/// (names its own sockets listen on) are denied.
/// </summary>
public sealed record UnixRule(string Name, Verdict Action, string Source)
{
    /// <summary>Longest name: sockaddr_un's sun_path.</summary>
    internal const int MaxBytes = 108;

    /// <summary>The name as the kernel sees it: a path's bytes, or a NUL then an abstract name's bytes.</summary>
    internal byte[] KernelName() => Name.StartsWith('@')
        ? [0, .. System.Text.Encoding.UTF8.GetBytes(Name[1..])]
        : System.Text.Encoding.UTF8.GetBytes(Name);

    /// <summary>Why <paramref name="name"/> cannot be a rule's name, or null when it can.</summary>
    internal static string? Invalid(string name)
    {
        if (name.Length == 0 || name == "@")
            return "a Unix socket name must not be empty";
        if (name.Contains('\0', StringComparison.Ordinal))
            return "a Unix socket name must not contain NUL (write an abstract name as \"@name\")";
        int bytes = new UnixRule(name, Verdict.Deny, "").KernelName().Length;
        return bytes > MaxBytes ? $"a Unix socket name is at most {MaxBytes} bytes (sun_path), this one is {bytes}" : null;
    }

    /// <inheritdoc />
    public override string ToString() => $"unix {Name} {Action.ToString().ToLowerInvariant()}";
}

/// <summary>
/// A rule of the seed's AddRule shape: a file by (device, inode), optionally only for one syscall
/// number, with an optional lifetime. <see cref="Expires"/> is null for a rule that never expires.
/// </summary>
public sealed record InodeRule(ulong Device, ulong Inode, int SyscallNr, Verdict Action, DateTimeOffset? Expires, string Source)
{
    /// <summary>Whether it decides <paramref name="access"/>: the same file (a name with nothing there yet is none), and its syscall or any.</summary>
    public bool AppliesTo(FileRequest access) =>
        access.Inode != 0 && Device == access.Device && Inode == access.Inode && (SyscallNr == 0 || SyscallNr == access.SyscallNr);
}
