using Mis.Enforcer.Defcon;

namespace Mis.Enforcer.Policy;

/// <summary>What a workload tried to do to a file.</summary>
public enum FileOp
{
    /// <summary>open for reading (O_RDONLY).</summary>
    Read = 1,
    /// <summary>
    /// open for writing, creating or truncating (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC), and every
    /// change to the file tree or to a file's metadata: truncate, unlink, rmdir, mkdir, mknod,
    /// symlink, link and rename (each name and object they touch), chmod, chown, utimes, xattrs,
    /// file attributes, bind of a Unix socket.
    /// </summary>
    Write = 2,
    /// <summary>execve / execveat of the file.</summary>
    Exec = 3,
}

/// <summary>A rule's or the policy's answer. The numbers are the seed's AddRule actions.</summary>
public enum Verdict
{
    /// <summary>Let it happen.</summary>
    Allow = 0,
    /// <summary>Refuse with EPERM and count a violation.</summary>
    Deny = 1,
    /// <summary>Let it happen and emit an event.</summary>
    Trace = 2,
}

/// <summary>
/// A file operation as the kernel will actually perform it: <see cref="Path"/> is the canonical
/// path of the file that was (or would be) opened, and <see cref="Device"/>/<see cref="Inode"/>
/// identify it regardless of which name (symlink, hard link, /proc/self/root/...) reached it.
/// Inode and device are 0 when the file does not exist (e.g. O_CREAT of a new file).
/// </summary>
public sealed record FileRequest(FileOp Op, string Path, ulong Device, ulong Inode)
{
    /// <summary>The syscall number that asked (e.g. 257 for openat), or 0 when unknown; seed-shaped inode rules may name one.</summary>
    public int SyscallNr { get; init; }

    /// <summary>The file's hard-link count (st_nlink) when it exists: above 1 it has other names the path does not show.</summary>
    internal ulong Links { get; init; }

    /// <summary>
    /// The file is a directory: its link count counts its subdirectories, not other names
    /// (directories cannot be hard-linked), so it never hides a file an exact-path rule names.
    /// </summary>
    internal bool Directory { get; init; }

    /// <summary>
    /// The operation gives the file another name (the source of a link or a rename, or a file
    /// under a renamed directory): rules that match it by path must follow it to the new name.
    /// </summary>
    internal bool NewName { get; init; }

    /// <summary>An exec of this file as an ELF program's interpreter (PT_INTERP, e.g. ld.so), loaded by the kernel for a program that was itself decided.</summary>
    internal bool Interpreter { get; init; }

    /// <summary>An exec of a file changed since the workload started (its ctime), or of one with no name (memfd, O_TMPFILE, deleted).</summary>
    internal bool WrittenDuringRun { get; init; }
}

/// <summary>Decides file operations of a managed workload (implemented by the policy).</summary>
public interface IFileDecider
{
    /// <summary>The verdict for <paramref name="access"/> by a workload currently at DEFCON <paramref name="defcon"/> (5..1).</summary>
    Verdict Decide(FileRequest access, int defcon);
}

/// <summary>The kind of operation a violation was about (mirrors MIS_OP_* in bpf/include/mis_shared.h).</summary>
public enum ViolationOp
{
    /// <summary>A denied open for reading.</summary>
    FileRead = 1,
    /// <summary>A denied open for writing.</summary>
    FileWrite = 2,
    /// <summary>A denied exec.</summary>
    Exec = 3,
    /// <summary>A denied outbound connect.</summary>
    Connect = 4,
    /// <summary>A denied send to an address.</summary>
    Send = 5,
    /// <summary>A denied escape-class syscall (ptrace, mount, bpf, ...).</summary>
    EscapeSyscall = 6,
}

/// <summary>A denial decided in user space (the seccomp supervisor), reported to the kernel's DEFCON state machine.</summary>
public sealed record ViolationReport(ulong CgroupId, ViolationOp Op, int Pid, int Tid, string Target);

/// <summary>What the state machine did with a reported violation.</summary>
/// <param name="Violations">The cgroup's violation count after this one.</param>
/// <param name="DefconBefore">Level before.</param>
/// <param name="DefconAfter">Level after; 1 with kill_at_level_1 means the cgroup is being killed.</param>
public sealed record ViolationOutcome(ulong Violations, DefconLevel DefconBefore, DefconLevel DefconAfter);

/// <summary>The one place every deny point reports to: the DEFCON state machine (kernel-resident).</summary>
public interface IViolationSink
{
    /// <summary>Counts a violation for the cgroup and returns the resulting state.</summary>
    ViolationOutcome Report(ViolationReport report);

    /// <summary>An operation a trace rule let through: an event, counted as nothing (the kernel's hooks emit the same).</summary>
    void Trace(ViolationReport report)
    {
    }

    /// <summary>The cgroup's current DEFCON level, decay applied.</summary>
    /// <exception cref="KeyNotFoundException">
    /// The cgroup is not managed: no level applies to it, and guessing one would decide its
    /// operations at whatever level was guessed (the supervisor answers EPERM instead).
    /// </exception>
    DefconLevel Defcon(ulong cgroupId);

    /// <summary>
    /// Tells the kernel what thread <paramref name="tid"/>'s allowed exec must end up running (the
    /// binary, or the last #! interpreter): the exec is then continued and the kernel resolves the
    /// path again, so anything else it runs — a path rewritten by another thread meanwhile — is a
    /// violation and a kill. Without a kernel (tests, simulators) there is nothing to tell.
    /// </summary>
    void ApproveExec(ulong cgroupId, int tid, ulong device, ulong inode)
    {
    }
}
