using System.Text;
using Mis.Enforcer.Policy;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>open, openat, openat2, creat, execve, execveat.</summary>
internal sealed unsafe partial class SeccompSupervisor
{
    private const int EBADF = 9;
    private const int EEXIST = 17;
    private const int EISDIR = 21;
    private const int EINVAL = 22;
    private const int E2BIG = 7;
    private const int ELOOP = 40;
    private const int AT_SYMLINK_NOFOLLOW = 0x100;
    private const int AT_EMPTY_PATH = 0x1000;
    private const int CreateRetries = 8;

    /// <summary>VALID_OPEN_FLAGS (include/linux/fcntl.h): what open/openat keep of their flags.</summary>
    private const int ValidOpenFlags = Libc.O_ACCMODE | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOCTTY | Libc.O_TRUNC
        | Libc.O_APPEND | Libc.O_NONBLOCK | Libc.O_SYNC_BIT | Libc.O_DSYNC | Libc.FASYNC | Libc.O_DIRECT
        | Libc.O_LARGEFILE | Libc.O_DIRECTORY | Libc.O_NOFOLLOW | Libc.O_NOATIME | Libc.O_CLOEXEC | Libc.O_PATH
        | Libc.O_TMPFILE_BIT;

    private const int OPathFlags = Libc.O_DIRECTORY | Libc.O_NOFOLLOW | Libc.O_PATH | Libc.O_CLOEXEC;
    private const int WriteFlags = Libc.O_WRONLY | Libc.O_RDWR | Libc.O_CREAT | Libc.O_TRUNC | Libc.O_TMPFILE_BIT;

    private void HandleOpen(in SeccompNotify.Notification n, WorkloadTask task)
    {
        ulong* a = stackalloc ulong[6];
        for (int i = 0; i < 6; i++)
            a[i] = n.Args[i];
        int dirFd = Libc.AT_FDCWD;
        ulong pathAddress;
        Libc.OpenHow how;
        int errno;
        switch (n.Nr)
        {
            case Syscalls.Open:
                (pathAddress, how) = (a[0], LegacyHow((int)a[1], (uint)a[2]));
                break;
            case Syscalls.Creat:
                (pathAddress, how) = (a[0], LegacyHow(Libc.O_CREAT | Libc.O_WRONLY | Libc.O_TRUNC, (uint)a[1]));
                break;
            case Syscalls.Openat:
                (dirFd, pathAddress, how) = ((int)a[0], a[1], LegacyHow((int)a[2], (uint)a[3]));
                break;
            default:
                (dirFd, pathAddress) = ((int)a[0], a[1]);
                if ((errno = ReadOpenHow(task.Tid, a[2], a[3], out how)) != 0)
                {
                    FailIfValid(n.Id, errno);
                    return;
                }
                break;
        }
        if ((errno = ReadPath(task.Tid, pathAddress, out int length)) != 0 || !IdValid(n.Id))
        {
            FailIfValid(n.Id, errno);
            return;
        }
        int flags = (int)how.Flags;
        // open/openat flags were sanitised like build_open_how; only creating ones can still be
        // invalid (O_TMPFILE without write access, O_CREAT|O_DIRECTORY). openat2 is checked fully.
        if ((n.Nr == Syscalls.Openat2 || (flags & (Libc.O_CREAT | Libc.O_TMPFILE_BIT)) != 0) && (errno = Validate(how)) != 0)
        {
            Fail(n.Id, errno);
            return;
        }
        bool create = (flags & Libc.O_CREAT) != 0;
        bool exclusive = create && (flags & Libc.O_EXCL) != 0;
        var op = (flags & WriteFlags) != 0 ? FileOp.Write : FileOp.Read;
        // As the kernel: O_NOFOLLOW, and O_CREAT|O_EXCL, do not follow a final symlink.
        int finalFlags = Libc.O_PATH | Libc.O_CLOEXEC | (flags & Libc.O_DIRECTORY)
            | ((flags & Libc.O_NOFOLLOW) != 0 || exclusive ? Libc.O_NOFOLLOW : 0);

        byte[] path = RewriteProcSelf(_path, length, task);
        for (int attempt = 0; ; attempt++)
        {
            var early = new EarlyOpen(op == FileOp.Read && !exclusive && (flags & Libc.O_PATH) == 0 ? ReopenFlags(flags) : -1);
            var resolution = ResolveAsWorkload(n.Id, task, dirFd, path, finalFlags, how.Resolve, create, emptyPathAllowed: false, ref early);
            if (resolution is not Resolution r)
                return; // already answered
            switch (r.Status)
            {
                case ResolveStatus.Failed:
                    Fail(n.Id, r.Errno);
                    return;
                case ResolveStatus.ProcDenied:
                    Deny(n.Id, op == FileOp.Write ? ViolationOp.FileWrite : ViolationOp.FileRead, task, r.Denied!);
                    return;
                case ResolveStatus.Existing:
                    OpenExisting(n.Id, n.Nr, task, r.Fd, flags, (uint)how.Mode, op, exclusive, early);
                    return;
            }
            // Missing: decide on the name before anything exists, then create exactly that name.
            string parent = _resolver.CanonicalPath(r.Fd);
            string target = (parent == "/" ? "/" : parent + "/") + Encoding.UTF8.GetString(r.Name!, 0, r.Name!.Length - 1);
            if (Decide(new FileRequest(FileOp.Write, target, 0, 0) { SyscallNr = n.Nr }) == Verdict.Deny)
            {
                Libc.Close(r.Fd);
                Deny(n.Id, ViolationOp.FileWrite, task, target);
                return;
            }
            int fd = CreateAsWorkload(task, r.Fd, r.Name!, flags, how, out errno);
            Libc.Close(r.Fd);
            if (fd >= 0)
            {
                ReplyFd(n.Id, fd, (flags & Libc.O_CLOEXEC) != 0);
                return;
            }
            // EEXIST without O_EXCL: the name appeared meanwhile; resolve again and decide on it.
            if (errno != EEXIST || exclusive || attempt >= CreateRetries)
            {
                Fail(n.Id, errno);
                return;
            }
        }
    }

    /// <summary>
    /// A read-only open of a regular file or directory has no side effect worth deciding before
    /// (no truncation, creation, blocking or device action), so it is done in the same credential
    /// scope as the resolution and simply closed if the decision is deny: one credential switch
    /// instead of two on the most frequent path. <see cref="Flags"/> -1: not eligible.
    /// </summary>
    private struct EarlyOpen(int flags)
    {
        internal readonly int Flags = flags;
        internal int Fd = -1;
        internal int Errno;
        internal Libc.Stat Stat;
        internal bool HaveStat;
    }

    private void OpenExisting(ulong id, int nr, WorkloadTask task, int opath, int flags, uint mode, FileOp op, bool exclusive, EarlyOpen early)
    {
        try
        {
            Libc.Stat st = early.Stat;
            if (!early.HaveStat && Libc.FStat(opath, &st) != 0)
            {
                Fail(id, Libc.LastErrno);
                return;
            }
            uint type = st.Mode & Libc.S_IFMT;
            bool tmpFile = (flags & Libc.O_TMPFILE_BIT) != 0;
            if (exclusive)
            {
                Fail(id, EEXIST);
                return;
            }
            if (type == Libc.S_IFDIR && !tmpFile && ((flags & Libc.O_CREAT) != 0 || (flags & Libc.O_ACCMODE) != 0))
            {
                Fail(id, EISDIR);
                return;
            }
            string canonical = _resolver.CanonicalPath(opath);
            var violation = op == FileOp.Write ? ViolationOp.FileWrite : ViolationOp.FileRead;
            if (st.Dev == _procDev && ProcRefusal(canonical, op) is string why)
            {
                _log($"mis-seccomp: {_cgroupName}: {why}: {canonical}");
                Deny(id, violation, task, canonical);
                return;
            }
            if (Decide(new FileRequest(op, canonical, st.Dev, st.Ino) { SyscallNr = nr }) == Verdict.Deny)
            {
                Deny(id, violation, task, canonical);
                return;
            }
            bool closeOnExec = (flags & Libc.O_CLOEXEC) != 0;
            // The policy decides on every object the path reaches, before DAC has its say
            // (consistently with writes, which must be decided before they happen): an attempt
            // on /etc/shadow is a violation even where its mode would refuse the workload anyway.
            if (early.Errno != 0)
            {
                Fail(id, early.Errno);
                return;
            }
            if (early.Fd >= 0)
            {
                ReplyFd(id, early.Fd, closeOnExec);
                early.Fd = -1;
                return;
            }
            if ((flags & Libc.O_PATH) != 0)
            {
                ReplyFd(id, opath, closeOnExec); // the O_PATH fd is what was asked for
                opath = -1;
                return;
            }
            if (type == Libc.S_IFLNK) // reached with O_NOFOLLOW: open(2) refuses a symlink
            {
                Fail(id, ELOOP);
                return;
            }
            if (type == Libc.S_IFIFO && (flags & Libc.O_NONBLOCK) == 0 && (flags & Libc.O_ACCMODE) != Libc.O_RDWR)
            {
                _fifos.Start(id, opath, ReopenFlags(flags), closeOnExec); // blocks until the other end opens
                opath = -1;
                return;
            }
            int fd;
            using (_credentials.Assume())
                fd = Reopen(opath, ReopenFlags(flags), mode);
            if (fd < 0)
                Fail(id, Libc.LastErrno);
            else
                ReplyFd(id, fd, closeOnExec);
        }
        finally
        {
            if (opath >= 0)
                Libc.Close(opath);
            if (early.Fd >= 0)
                Libc.Close(early.Fd); // denied, or failed before the answer: never handed out
        }
    }

    /// <summary>
    /// Opens the object behind an O_PATH fd with the workload's flags through /proc/self/fd/N:
    /// the same inode, permission-checked again for the requested access (as the caller runs this
    /// under the workload's credentials). O_NOCTTY: a tty must never become the enforcer's
    /// controlling terminal.
    /// </summary>
    internal int Reopen(int opath, int flags, uint mode)
    {
        byte* name = stackalloc byte[16];
        PathResolver.FdName(opath, name);
        return Libc.OpenAt(_selfFdDir, name, flags, (int)mode);
    }

    /// <summary>Creation is done (O_CREAT, O_EXCL) once the name was found missing; following is done by the resolver.</summary>
    private static int ReopenFlags(int flags) =>
        (flags & ~(Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW)) | Libc.O_NOCTTY | Libc.O_CLOEXEC;

    private int CreateAsWorkload(WorkloadTask task, int parent, byte[] name, int flags, in Libc.OpenHow how, out int errno)
    {
        if (_umaskPrivate && ProcFacts.Umask(task.Tid) is uint umask)
            Libc.Umask(umask);
        var create = new Libc.OpenHow
        {
            Flags = (ulong)(flags | Libc.O_EXCL | Libc.O_NOCTTY | Libc.O_CLOEXEC),
            Mode = how.Mode,
            Resolve = Libc.RESOLVE_NO_SYMLINKS | (how.Resolve & Libc.RESOLVE_NO_XDEV),
        };
        int fd;
        using (_credentials.Assume())
        {
            fixed (byte* n = name)
                fd = Libc.OpenAt2(parent, n, create);
            errno = fd < 0 ? Libc.LastErrno : 0;
        }
        return fd;
    }

    private void HandleExec(in SeccompNotify.Notification n, WorkloadTask task)
    {
        bool at = n.Nr == Syscalls.Execveat;
        int dirFd = at ? (int)n.Args[0] : Libc.AT_FDCWD;
        int atFlags = at ? (int)n.Args[4] : 0;
        int errno = ReadPath(task.Tid, at ? n.Args[1] : n.Args[0], out int length);
        if (errno != 0 || !IdValid(n.Id))
        {
            FailIfValid(n.Id, errno);
            return;
        }
        int finalFlags = Libc.O_PATH | Libc.O_CLOEXEC | ((atFlags & AT_SYMLINK_NOFOLLOW) != 0 ? Libc.O_NOFOLLOW : 0);
        byte[] path = RewriteProcSelf(_path, length, task);
        var none = new EarlyOpen(-1);
        if (ResolveAsWorkload(n.Id, task, dirFd, path, finalFlags, 0, create: false, emptyPathAllowed: (atFlags & AT_EMPTY_PATH) != 0, ref none) is not Resolution r)
            return;
        if (r.Status == ResolveStatus.Failed)
        {
            Fail(n.Id, r.Errno);
            return;
        }
        if (r.Status == ResolveStatus.ProcDenied)
        {
            Deny(n.Id, ViolationOp.Exec, task, r.Denied!);
            return;
        }
        try
        {
            Libc.Stat st;
            if (Libc.FStat(r.Fd, &st) != 0)
            {
                Fail(n.Id, Libc.LastErrno);
                return;
            }
            string canonical = _resolver.CanonicalPath(r.Fd);
            if (Decide(new FileRequest(FileOp.Exec, canonical, st.Dev, st.Ino) { SyscallNr = n.Nr }) == Verdict.Deny)
            {
                Deny(n.Id, ViolationOp.Exec, task, canonical);
                return;
            }
            // Residual race: CONTINUE lets the kernel resolve the path again, so a file swapped in
            // between this check and the kernel's lookup runs undecided. A kernel backstop
            // (sched_process_exec comparing the exec'd inode with this decision) closes it.
            if (IdValid(n.Id))
                Continue(n.Id);
        }
        finally
        {
            Libc.Close(r.Fd);
        }
    }

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
            Fail(id, ENOENT);
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
                    uint type = early.Stat.Mode & Libc.S_IFMT;
                    if (early.HaveStat && (type == Libc.S_IFREG || type == Libc.S_IFDIR))
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

    /// <summary>The workload's fd <paramref name="fd"/> as ours (pidfd_getfd), or -errno (EBADF as the kernel would say).</summary>
    private static int DupWorkloadFd(int tid, int fd)
    {
        if (fd < 0)
            return -EBADF;
        int pidfd = (int)Libc.Syscall(Libc.SYS_pidfd_open, tid, Libc.PIDFD_THREAD, 0);
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

    private int ReadPath(int tid, ulong address, out int length) => ProcFacts.ReadString(tid, address, _path, out length);

    /// <summary>Answers with errno, unless the caller is already gone (then nobody is waiting).</summary>
    private void FailIfValid(ulong id, int errno)
    {
        if (IdValid(id))
            Fail(id, errno == 0 ? Errno.ESRCH : errno);
    }

    /// <summary>build_open_how (fs/open.c): what open/openat/creat hand to the common open path.</summary>
    private static Libc.OpenHow LegacyHow(int flags, uint mode)
    {
        ulong f = (ulong)(flags & ValidOpenFlags);
        if ((f & Libc.O_PATH) != 0)
            f &= OPathFlags;
        else
            f |= Libc.O_LARGEFILE; // force_o_largefile() on 64-bit
        bool creates = (f & (Libc.O_CREAT | Libc.O_TMPFILE_BIT)) != 0;
        return new Libc.OpenHow { Flags = f, Mode = creates ? mode & 0xFFF : 0 };
    }

    /// <summary>Copies openat2's struct open_how like copy_struct_from_user: larger structs must be zero-padded.</summary>
    private static int ReadOpenHow(int tid, ulong address, ulong size, out Libc.OpenHow how)
    {
        how = default;
        if (size < (ulong)sizeof(Libc.OpenHow))
            return EINVAL;
        if (size > 4096)
            return E2BIG;
        Span<byte> bytes = stackalloc byte[(int)size];
        int errno = ProcFacts.ReadBytes(tid, address, bytes);
        if (errno != 0)
            return errno;
        if (bytes[sizeof(Libc.OpenHow)..].ContainsAnyExcept((byte)0))
            return E2BIG;
        how = System.Runtime.InteropServices.MemoryMarshal.Read<Libc.OpenHow>(bytes);
        if ((how.Flags & Libc.O_PATH) == 0)
            how.Flags |= Libc.O_LARGEFILE;
        return 0;
    }

    /// <summary>
    /// Lets the kernel validate the flags, mode and resolve combination exactly as it would have
    /// (EINVAL, EAGAIN for RESOLVE_CACHED with O_CREAT, ...): it checks them before it looks at the
    /// dirfd, so a relative open from fd -1 answers EBADF for every valid combination.
    /// </summary>
    private static int Validate(in Libc.OpenHow how)
    {
        fixed (byte* x = "x\0"u8)
        {
            int fd = Libc.OpenAt2(-1, x, how);
            if (fd >= 0)
            {
                Libc.Close(fd);
                return 0;
            }
            int errno = Libc.LastErrno;
            return errno == EBADF ? 0 : errno;
        }
    }

    /// <summary>"/proc/self[/...]" and "/proc/thread-self[/...]" → the workload's own entries (fast path; the resolver handles the rest).</summary>
    private static byte[] RewriteProcSelf(byte[] path, int length, WorkloadTask task)
    {
        var span = path.AsSpan(0, length);
        int prefix = Prefix(span, "/proc/self"u8) ? 10 : Prefix(span, "/proc/thread-self"u8) ? 17 : 0;
        if (prefix == 0 || task.Tgid is not int tgid)
            return path;
        string replacement = prefix == 10 ? $"/proc/{tgid}" : $"/proc/{tgid}/task/{task.Tid}";
        return [.. Encoding.ASCII.GetBytes(replacement), .. span[prefix..], 0];
    }

    private static bool Prefix(ReadOnlySpan<byte> path, ReadOnlySpan<byte> prefix) =>
        path.StartsWith(prefix) && (path.Length == prefix.Length || path[prefix.Length] == '/');

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
