using System.Net;
using Mis.Native;

namespace Mis.Enforcer.Policy;

/// <summary>File operations a rule applies to.</summary>
[Flags]
internal enum FileOps
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
internal enum NetProtocol
{
    /// <summary>TCP and UDP.</summary>
    Any = 0,
    /// <summary>TCP (connect).</summary>
    Tcp = 6,
    /// <summary>UDP (connect and sendmsg).</summary>
    Udp = 17,
}

/// <summary>A rule on files by path or glob. <paramref name="Source"/> says where it was written ("policy.toml:12").</summary>
internal sealed record FileRule(PathGlob Path, FileOps Ops, Verdict Action, string Source)
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
internal sealed record NetRule(IPAddress Address, int PrefixLength, int Port, NetProtocol Protocol, Verdict Action, string Source)
{
    public override string ToString() =>
        $"{Address}/{PrefixLength} port {(Port == 0 ? "any" : Port)} {Protocol.ToString().ToLowerInvariant()} {Action.ToString().ToLowerInvariant()}";
}

/// <summary>
/// A rule of the seed's AddRule shape: a file by (device, inode), optionally only for one syscall
/// number, with an optional lifetime. <see cref="Expires"/> is null for a rule that never expires.
/// </summary>
internal sealed record InodeRule(ulong Device, ulong Inode, int SyscallNr, Verdict Action, DateTimeOffset? Expires, string Source);
