using Microsoft.Win32.SafeHandles;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Policy;
using Mis.Native.Bpf;

namespace Mis.Enforcer.Kernel;

/// <summary>Settings of the kernel backend fixed at load time.</summary>
public sealed record KernelEnforcerOptions
{
    /// <summary>Ring-buffer size in bytes, a power of two of at least a page. Default 4 MiB (~45,000 syscall records).</summary>
    public uint RingBufferBytes { get; init; } = 4u << 20;

    /// <summary>Decoded events buffered for the reader of <see cref="KernelEnforcer.Events"/>; beyond it events are dropped and counted. Default 65,536.</summary>
    public int EventCapacity { get; init; } = 65_536;

    /// <summary>The cgroup v2 mount; null finds it in /proc/self/mountinfo.</summary>
    public string? CgroupMount { get; init; }

    /// <summary>MIS's own cgroup, below which every managed cgroup lives ([paths] cgroup_root); null is <c>&lt;mount&gt;/mis</c>.</summary>
    public string? CgroupRoot { get; init; }

    /// <summary>Decide Unix socket connects and sends (null: where the kernel has the hooks, 6.7+; false skips them).</summary>
    public bool? UnixHooks { get; init; }

    /// <summary>
    /// Load the BPF LSM file hooks (bpf/include/mis_lsm.h), so that cgroups managed with
    /// <c>lsmFiles</c> have their opens, execs, file changes and signals decided in the kernel.
    /// Only where the kernel allows <c>lsm/</c> programs (<c>mis doctor</c>); elsewhere loading
    /// the object fails.
    /// </summary>
    public bool LsmFiles { get; init; }
}

/// <summary>A cgroup's enforcement state as the kernel holds it, decay applied.</summary>
/// <param name="CgroupId">The cgroup id (inode of its directory).</param>
/// <param name="Violations">Counted violations.</param>
/// <param name="Defcon">Level, decay applied.</param>
/// <param name="SlowdownNsTotal">Busy-wait spent in the cgroup's syscalls so far.</param>
/// <param name="Syscalls">Syscalls entered by the cgroup's tasks while the syscall hook was attached.</param>
/// <param name="Learning">Learning mode is on.</param>
/// <param name="Killed">DEFCON 1 was entered with kill: the cgroup is being killed.</param>
/// <param name="LearningViolations">Denials seen in learning mode (not counted).</param>
/// <param name="PolicyId">The policy whose network and exec rules apply.</param>
public sealed record CgroupState(
    ulong CgroupId, ulong Violations, DefconLevel Defcon, ulong SlowdownNsTotal, ulong Syscalls,
    bool Learning, bool Killed, ulong LearningViolations, uint PolicyId);

/// <summary>One decoded ring-buffer record (see <c>struct mis_event</c>).</summary>
/// <param name="Type">What happened.</param>
/// <param name="TimestampNs">CLOCK_MONOTONIC nanoseconds.</param>
/// <param name="CgroupId">The cgroup it happened in.</param>
/// <param name="Pid">Process id of the task (0 when not known).</param>
/// <param name="Tid">Thread id of the task.</param>
/// <param name="Comm">The task's command name.</param>
/// <param name="Op">The operation, for violations and traces.</param>
/// <param name="Target">Path or "addr:port", for violations and traces; empty otherwise.</param>
/// <param name="Decision">Deny for violations, Trace for traces.</param>
/// <param name="Defcon">Level after the event.</param>
/// <param name="PrevDefcon">Level before the event.</param>
/// <param name="Violations">The cgroup's counted violations after the event.</param>
/// <param name="Value">Syscall number (Syscall), total slowdown ns (SlowdownTotal), the deny point (Violation, Trace: <see cref="MisDecidedBy"/>).</param>
/// <param name="Learning">The cgroup was in learning mode.</param>
public sealed record KernelEvent(
    KernelEventType Type, ulong TimestampNs, ulong CgroupId, int Pid, int Tid, string Comm,
    ViolationOp? Op, string Target, Verdict Decision, int Defcon, int PrevDefcon,
    ulong Violations, ulong Value, bool Learning)
{
    /// <summary>Decodes a record; false for a record too short to be one.</summary>
    public static unsafe bool TryDecode(ReadOnlySpan<byte> record, out KernelEvent? decoded)
    {
        decoded = null;
        if (record.Length < MisEvent.HeaderSize)
            return false;
        MisEvent e = default;
        record[..Math.Min(record.Length, sizeof(MisEvent))].CopyTo(new Span<byte>(&e, sizeof(MisEvent)));
        string target = record.Length >= sizeof(MisEvent)
            ? KernelStrings.Decode(new ReadOnlySpan<byte>(e.Target, 256)) : "";
        decoded = new KernelEvent(
            (KernelEventType)e.Type, e.TimestampNs, e.CgroupId, (int)e.Pid, (int)e.Tid,
            KernelStrings.Decode(new ReadOnlySpan<byte>(e.Comm, 16)),
            e.Op == 0 ? null : (ViolationOp)e.Op, target, (Verdict)e.Decision,
            (int)e.Defcon, (int)e.PrevDefcon, e.Violations, e.Value,
            (e.Flags & (uint)MisCgroupFlags.Learning) != 0);
        return true;
    }
}

/// <summary>A cgroup under kernel enforcement: what <see cref="KernelEnforcer.Manage"/> set up.</summary>
public sealed class ManagedCgroup
{
    internal ManagedCgroup(ulong cgroupId, string path, uint policyId, DefconConfig config,
                           SafeFileHandle fd, List<BpfLink> links)
    {
        CgroupId = cgroupId;
        Path = path;
        PolicyId = policyId;
        Config = config;
        Fd = fd;
        Links = links;
    }

    /// <summary>The cgroup id (inode of its directory).</summary>
    public ulong CgroupId { get; }

    /// <summary>The cgroup's directory.</summary>
    public string Path { get; }

    /// <summary>The policy whose network and exec rules apply.</summary>
    public uint PolicyId { get; }

    /// <summary>The DEFCON configuration the kernel runs for it.</summary>
    public DefconConfig Config { get; }

    internal SafeFileHandle Fd { get; }

    internal List<BpfLink> Links { get; }

    internal void Release()
    {
        foreach (var link in Links)
            link.Dispose();
        Fd.Dispose();
    }
}
