using Mis.Enforcer.Policy;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>What opens, execs and file changes share: where a path starts, resolution as the workload, /proc limits.</summary>
public sealed unsafe partial class SeccompSupervisor
{
    private const int AT_SYMLINK_NOFOLLOW = 0x100;
    private const int AT_EMPTY_PATH = 0x1000;

    /// <summary>
    /// The start directory as the workload has it (its cwd, or its dirfd duplicated with
    /// pidfd_getfd), then the resolution under the workload's credentials. Null when the
    /// notification was answered (or its caller is gone).
    /// </summary>
    private Resolution? ResolveAsWorkload(ulong id, WorkloadTask task, int dirFd, byte[] path, int finalFlags, ulong resolve, bool create, bool emptyPathAllowed, ref EarlyOpen early)
    {
        bool empty = path[0] == 0;
        if (empty && !emptyPathAllowed)
        {
            Fail(id, Errno.ENOENT);
            return null;
        }
        int start = -1;
        // RESOLVE_IN_ROOT makes even an absolute path start at the dirfd.
        if (path[0] != '/' || (resolve & Libc.RESOLVE_IN_ROOT) != 0)
        {
            start = dirFd == Libc.AT_FDCWD ? OpenCwd(task.Tid) : DupWorkloadFd(task.Tid, dirFd);
            if (start < 0)
            {
                FailIfValid(id, -start);
                return null;
            }
            if (empty) // AT_EMPTY_PATH: the dirfd itself is the object
                return new Resolution(ResolveStatus.Existing, start);
        }
        try
        {
            using (_credentials.Assume())
            {
                var r = _resolver.Resolve(start < 0 ? _rootFd : start, path, finalFlags, resolve, create, task);
                if (early.Flags >= 0 && r.Status == ResolveStatus.Existing)
                {
                    fixed (Libc.Stat* st = &early.Stat)
                        early.HaveStat = Libc.FStat(r.Fd, st) == 0;
                    if (early.HaveStat && OpensWithoutEffect(early, early.Stat))
                    {
                        early.Fd = Reopen(r.Fd, early.Flags, 0);
                        early.Errno = early.Fd < 0 ? Libc.LastErrno : 0;
                    }
                }
                return r;
            }
        }
        finally
        {
            if (start >= 0)
                Libc.Close(start);
        }
    }

    private static int OpenCwd(int tid)
    {
        byte* path = stackalloc byte[32];
        ProcFacts.Ascii($"/proc/{tid}/cwd", new Span<byte>(path, 32));
        int fd = Libc.Open(path, Libc.O_PATH | Libc.O_CLOEXEC, 0);
        return fd >= 0 ? fd : -Errno.ESRCH;
    }

    // pidfd_open(PIDFD_THREAD) is Linux 6.9+; before, a thread's fd is taken through its thread
    // group's pidfd (the table threads share, unless one was cloned without CLONE_FILES: then
    // the leader's fd of that number is the one decided and acted on, an object of the workload's
    // own either way).
    private static volatile bool s_noPidfdThread;

    /// <summary>The workload's fd <paramref name="fd"/> as ours (pidfd_getfd), or -errno (EBADF as the kernel would say).</summary>
    private static int DupWorkloadFd(int tid, int fd)
    {
        if (fd < 0)
            return -Errno.EBADF;
        int pidfd = -1;
        if (!s_noPidfdThread)
        {
            pidfd = (int)Libc.Syscall(Libc.SYS_pidfd_open, tid, Libc.PIDFD_THREAD, 0);
            if (pidfd < 0 && Libc.LastErrno == Errno.EINVAL)
                s_noPidfdThread = true;
        }
        if (s_noPidfdThread && ProcFacts.Tgid(tid) is int tgid)
            pidfd = (int)Libc.Syscall(Libc.SYS_pidfd_open, tgid, 0, 0);
        if (pidfd < 0)
            return -Errno.ESRCH;
        try
        {
            int ours = (int)Libc.Syscall(Libc.SYS_pidfd_getfd, pidfd, fd, 0);
            return ours >= 0 ? ours : -Libc.LastErrno;
        }
        finally
        {
            Libc.Close(pidfd);
        }
    }

    private int ReadPath(int tid, ulong address, out int length) => ProcFacts.ReadString(tid, address, PathBuffer, out length);

    /// <summary>Answers with errno, unless the caller is already gone (then nobody is waiting).</summary>
    private void FailIfValid(ulong id, int errno)
    {
        if (IdValid(id))
            Fail(id, errno == 0 ? Errno.ESRCH : errno);
    }

    /// <summary>
    /// The supervisor opens /proc entries as a thread of the enforcer: the kernel's same-thread-group
    /// exemptions then apply to the enforcer's own entries, and its ptrace relationship (parent of
    /// every workload) to other processes'. Refuse what that would lend the workload: anything of
    /// the enforcer beyond what `ps` reads, and another cgroup's process memory or writable entries.
    /// </summary>
    private string? ProcRefusal(string canonical, FileOp op)
    {
        int pid = PathResolver.ProcPid(canonical, out string rest);
        if (pid == 0)
            return null;
        int self = Environment.ProcessId;
        if (pid == self || Directory.Exists($"/proc/{self}/task/{pid}"))
        {
            string entry = rest.StartsWith("task/", StringComparison.Ordinal) && rest.IndexOf('/', 5) is int slash and > 0 ? rest[(slash + 1)..] : rest;
            return op == FileOp.Read && entry is "" or "task" or "stat" or "status" or "statm" or "cmdline" or "comm" or "cgroup"
                ? null : "the enforcer's own /proc entry";
        }
        if (InWorkload(pid))
            return null;
        return op == FileOp.Write || rest == "mem" || rest.EndsWith("/mem", StringComparison.Ordinal)
            ? "another cgroup's process" : null;
    }
}
