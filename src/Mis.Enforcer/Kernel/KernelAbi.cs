using System.Runtime.InteropServices;
using System.Text;

namespace Mis.Enforcer.Kernel;

// C# mirrors of bpf/include/mis_shared.h, the kernel contract. Field order, types and names
// follow the C structs (snake_case becomes PascalCase); KernelStructLayoutTests checks every
// size, offset and enumerator against the compiled object's BTF. Change both sides together.

/// <summary>Mirror of <c>struct mis_defcon_config</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct MisDefconConfig
{
    internal fixed ulong Thresholds[4];
    internal fixed ulong SlowdownNs[3];
    internal ulong DecayIntervalNs;
    internal ulong DecayAmount;
    internal uint KillAtLevel1;
    internal uint NetLockdownLevel;
}

/// <summary>Mirror of <c>struct mis_cgroup_state</c>, the value of the <c>mis_cgroups</c> map.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct MisCgroupState
{
    internal ulong CgroupId;
    internal ulong Violations;
    internal ulong LearningViolations;
    internal ulong SlowdownNsTotal;
    internal ulong Syscalls;
    internal ulong LastViolationNs;
    internal ulong DecayAnchorNs;
    internal ulong Flags;
    internal uint PolicyId;
    internal uint ViewSlot;
    internal MisDefconConfig Config;
    internal ulong ViewGen;
    internal ulong StartedRealtimeNs;
}

/// <summary>
/// The word layout of <c>mis_defcon_view</c> (the <c>MIS_VIEW_*</c> defines of mis_shared.h): the
/// level in the low bits, the publication's ticket, then the millisecond until which it holds.
/// </summary>
internal static class MisDefconView
{
    internal const int LevelBits = 3;
    internal const int GenBits = 16;
    internal const int UntilShift = LevelBits + GenBits;
    internal const ulong UntilNever = (1UL << (64 - UntilShift)) - 1;

    /// <summary>The word user space writes for a new cgroup: DEFCON 5, ticket 0, held until a violation.</summary>
    internal static ulong Fresh => 5UL | (UntilNever << UntilShift);

    /// <summary>
    /// The level the word states at CLOCK_MONOTONIC <paramref name="nowNs"/>, or null when it
    /// states none then (0: slot not in use; decay due at or before this millisecond).
    /// </summary>
    internal static int? LevelAt(ulong word, ulong nowNs)
    {
        int level = (int)(word & ((1UL << LevelBits) - 1));
        if (level is < 1 or > 5)
            return null;
        ulong untilMs = word >> UntilShift;
        return untilMs == UntilNever || nowNs / 1_000_000 < untilMs ? level : null;
    }
}

/// <summary>Mirror of <c>struct mis_event</c>, one ring-buffer record.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct MisEvent
{
    /// <summary>CLOCK_MONOTONIC time of the event (bpf_ktime_get_ns).</summary>
    public ulong TimestampNs;
    /// <summary>The cgroup the event belongs to.</summary>
    public ulong CgroupId;
    /// <summary>The cgroup's counted violations after this event.</summary>
    public ulong Violations;
    /// <summary>The syscall number (SYSCALL), the slowdown total (SLOWDOWN_TOTAL), else 0.</summary>
    public ulong Value;
    /// <summary>The event kind (<c>MIS_EV_*</c>).</summary>
    public uint Type;
    /// <summary>The task group id, 0 when not known.</summary>
    public uint Pid;
    /// <summary>The thread id.</summary>
    public uint Tid;
    /// <summary>The operation (<c>MIS_OP_*</c>).</summary>
    public uint Op;
    /// <summary>The decision (<c>MIS_DECISION_*</c>).</summary>
    public uint Decision;
    /// <summary>The DEFCON level after the event.</summary>
    public uint Defcon;
    /// <summary>The DEFCON level before the event.</summary>
    public uint PrevDefcon;
    /// <summary>The cgroup's <c>MIS_CG_*</c> flags at the time.</summary>
    public uint Flags;
    /// <summary>The task's command name, NUL-padded.</summary>
    public fixed byte Comm[16];
    /// <summary>The path, or <c>addr:port</c> for network operations, NUL-terminated.</summary>
    public fixed byte Target[256];

    /// <summary>MIS_EVENT_HEADER_SIZE: the length of records without a target.</summary>
    public const int HeaderSize = 80;
}

/// <summary>Mirror of <c>struct mis_report_ctx</c>, the context of the <c>mis_report</c> program.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct MisReportCtx
{
    internal ulong CgroupId;
    internal ulong NowNs;
    internal uint Command;
    internal uint Op;
    internal uint Pid;
    internal uint Tid;
    internal uint Arg;
    internal uint Result;
    internal ulong Violations;
    internal ulong LearningViolations;
    internal ulong SlowdownNsTotal;
    internal ulong Syscalls;
    internal uint DefconBefore;
    internal uint DefconAfter;
    internal uint Flags;
    internal uint PolicyId;
    internal fixed byte Comm[16];
    internal fixed byte Target[256];
}

/// <summary>Mirror of <c>struct mis_net_key</c>, the key of the <c>mis_net_rules</c> LPM trie.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct MisNetKey
{
    /// <summary>Bits of the key that count (LPM), <c>prefixlen</c>.</summary>
    public uint Prefixlen;
    internal uint PolicyId;
    /// <summary><c>family</c>: AF_INET or AF_INET6.</summary>
    public byte Family;
    /// <summary><c>protocol</c>: IPPROTO_TCP, IPPROTO_UDP or 0 for any.</summary>
    public byte Protocol;
    /// <summary><c>port</c>, network byte order; 0 for any.</summary>
    public ushort Port;
    /// <summary><c>addr</c>: the IPv4 or IPv6 address, network byte order.</summary>
    public fixed byte Addr[16];

    /// <summary>MIS_NET_FIXED_PREFIX: bits of policy, family, protocol and port before the address.</summary>
    public const uint FixedPrefix = 64;
}

/// <summary>Mirror of <c>struct mis_net_value</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct MisNetValue
{
    /// <summary><c>action</c>: MIS_ACTION_*.</summary>
    public uint Action;
    internal uint RuleId;
}

/// <summary>Mirror of <c>struct mis_unix_key</c>, the key of <c>mis_unix_rules</c> (scope = policy id) and <c>mis_unix_own</c> (scope = cgroup id).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct MisUnixKey
{
    internal ulong Scope;
    internal uint Len;
    internal fixed byte Name[108];

    /// <summary>MIS_UNIX_NAME_MAX.</summary>
    internal const int NameMax = 108;
}

/// <summary>Mirror of <c>struct mis_exec_key</c>, the key of the <c>mis_exec_deny</c> set.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct MisExecKey
{
    internal ulong Dev;
    internal ulong Ino;
    internal uint PolicyId;
    internal uint Pad;
}

/// <summary>Mirror of <c>struct mis_exec_approval</c>, the value of the <c>mis_exec_approved</c> map (key: the thread id).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct MisExecApproval
{
    internal ulong Dev;
    internal ulong Ino;
    internal ulong CgroupId;
}

/// <summary><c>enum mis_event_type</c>: what a ring-buffer record reports.</summary>
public enum KernelEventType
{
    /// <summary>A denied operation.</summary>
    Violation = 1,
    /// <summary>A DEFCON level change (escalation or decay).</summary>
    Defcon = 2,
    /// <summary>DEFCON 1 entered with kill_at_level_1: the cgroup is being killed.</summary>
    Kill = 3,
    /// <summary>A syscall of a cgroup in learning mode (Value = syscall number).</summary>
    Syscall = 4,
    /// <summary>The cgroup's cumulative slowdown crossed another 100 ms (Value = total ns).</summary>
    SlowdownTotal = 5,
    /// <summary>An operation a trace rule let through.</summary>
    Trace = 6,
}

/// <summary><c>enum mis_cgroup_flags</c>.</summary>
[Flags]
public enum MisCgroupFlags : uint
{
    /// <summary>No flag.</summary>
    None = 0,
    /// <summary>Learning mode: violations are reported but do not escalate.</summary>
    Learning = 1,
    /// <summary>DEFCON 1 reached with kill_at_level_1.</summary>
    Killed = 2,
    /// <summary>Its opens and execs are decided by the BPF LSM hooks.</summary>
    LsmFiles = 4,
}

/// <summary><c>enum mis_decided_by</c>: the deny point a violation or trace record names in its value.</summary>
public enum MisDecidedBy : ulong
{
    /// <summary>A kernel hook of its own: sys_enter, the cgroup socket hooks, the exec backstop.</summary>
    Hook = 0,
    /// <summary>The BPF LSM file hooks.</summary>
    Lsm = 1,
    /// <summary>User space through <c>mis_report</c>: the seccomp supervisor.</summary>
    Supervisor = 2,
}

/// <summary><c>enum mis_command</c>: what a <c>mis_report</c> run does.</summary>
public enum MisCommand : uint
{
    /// <summary>Apply decay and return the state.</summary>
    Query = 0,
    /// <summary>Count one violation.</summary>
    Violation = 1,
    /// <summary>Set (Arg = 1) or clear (Arg = 0) learning mode.</summary>
    SetLearning = 2,
    /// <summary>Set the violation count to the entry count of level Arg (1..5): the manual DEFCON override.</summary>
    SetDefcon = 3,
    /// <summary>Emit a trace event of type Op for Target (a trace rule let it through).</summary>
    Trace = 4,
}

/// <summary><c>enum mis_result</c>.</summary>
public enum MisResult : uint
{
    /// <summary>Done.</summary>
    Ok = 0,
    /// <summary>The cgroup is not managed.</summary>
    NoCgroup = 1,
    /// <summary>Unknown command.</summary>
    BadCommand = 2,
}

/// <summary><c>enum mis_stat</c>: indices of the per-CPU <c>mis_stats</c> array.</summary>
public enum MisStat : uint
{
    /// <summary>Events lost because the ring buffer was full.</summary>
    RingbufDrops = 0,
    /// <summary>SIGKILLs sent by the kernel programs.</summary>
    KillSignals = 1,
    /// <summary>Denials counted by the state machine (every deny point, learning mode included).</summary>
    Violations = 2,
    /// <summary>DEFCON levels lost to escalation (a jump from 5 to 3 counts 2).</summary>
    Escalations = 3,
    /// <summary>Number of slots.</summary>
    Count = 4,
}

/// <summary>Helpers for the fixed-size C strings in the mirrors.</summary>
public static class KernelStrings
{
    /// <summary>Decodes a NUL-terminated (or full-length) UTF-8 field.</summary>
    internal static string Decode(ReadOnlySpan<byte> field)
    {
        int end = field.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? field : field[..end]);
    }

    /// <summary>Encodes <paramref name="text"/> into a field, truncated to leave room for the NUL.</summary>
    internal static void Encode(string text, Span<byte> field)
    {
        field.Clear();
        int max = field.Length - 1;
        var bytes = Encoding.UTF8.GetBytes(text);
        bytes.AsSpan(0, Math.Min(max, bytes.Length)).CopyTo(field);
    }
}

/// <summary>Mirror of <c>struct mis_glob_key</c>, the key of the <c>mis_globs</c> map.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct MisGlobKey
{
    internal uint PolicyId;
    internal uint Word;
}

/// <summary>Mirror of <c>struct mis_glob_word</c>: one word of a policy's compiled path globs (see <see cref="Policy.PathAutomaton"/>).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MisGlobWord
{
    internal fixed ulong Adv[256];
    internal fixed ulong Loop[256];
    internal ulong Start;
    internal ulong Eps1;
    internal ulong Eps3;
    internal ulong Final;
    internal ulong Tree;
    internal fixed byte Rule[64];
}

/// <summary>Mirror of <c>struct mis_glob_match_ctx</c>, the context of the <c>mis_glob_match</c> program.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MisGlobMatchCtx
{
    internal uint PolicyId;
    internal uint Words;
    internal fixed ulong Matched[4];
    internal fixed byte Path[256];
}

/// <summary>Mirror of <c>struct mis_rule_set</c>: bit r for file rule r.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MisRuleSet
{
    internal fixed ulong Bits[4];

    internal void Add(int rule) => Bits[rule >> 6] |= 1UL << (rule & 63);
}

/// <summary>Mirror of <c>struct mis_file_policy</c>: a policy's file rules as the LSM hooks decide with them.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MisFilePolicy
{
    internal uint Rules;
    internal uint DefaultAction;
    internal uint ExecAllowList;
    internal uint Generation;
    internal uint InodeRules;
    internal uint Pad;
    internal MisRuleSet AppliesRead;
    internal MisRuleSet AppliesWrite;
    internal MisRuleSet AppliesExec;
    internal fixed byte Action[256];
}

/// <summary>Mirror of <c>struct mis_exact_key</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MisExactKey
{
    internal uint PolicyId;
    internal fixed byte Path[256];
}

/// <summary>Mirror of <c>struct mis_object_key</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct MisObjectKey
{
    internal ulong Dev;
    internal ulong Ino;
    internal uint PolicyId;
    internal uint Pad;
}

/// <summary>Mirror of <c>struct mis_inode_key</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct MisInodeKey
{
    internal ulong Dev;
    internal ulong Ino;
    internal uint PolicyId;
    internal uint Syscall;
}
