using System.Text;
using Mis.Enforcer.Policy;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>open, openat, openat2, creat: resolved, decided and opened by the supervisor, the fd injected.</summary>
public sealed unsafe partial class SeccompSupervisor
{
    private const int CreateRetries = 8;
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
                (pathAddress, how) = (a[0], OpenArguments.LegacyHow((int)a[1], (uint)a[2]));
                break;
            case Syscalls.Creat:
                (pathAddress, how) = (a[0], OpenArguments.LegacyHow(Libc.O_CREAT | Libc.O_WRONLY | Libc.O_TRUNC, (uint)a[1]));
                break;
            case Syscalls.Openat:
                (dirFd, pathAddress, how) = ((int)a[0], a[1], OpenArguments.LegacyHow((int)a[2], (uint)a[3]));
                break;
            default:
                (dirFd, pathAddress) = ((int)a[0], a[1]);
                if ((errno = OpenArguments.ReadOpenHow(task.Tid, a[2], a[3], out how)) != 0)
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
        if ((n.Nr == Syscalls.Openat2 || (flags & (Libc.O_CREAT | Libc.O_TMPFILE_BIT)) != 0) && (errno = OpenArguments.Validate(how)) != 0)
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

        byte[] path = OpenArguments.RewriteProcSelf(PathBuffer, length, task);
        for (int attempt = 0; ; attempt++)
        {
            var early = new EarlyOpen(!exclusive && (flags & Libc.O_PATH) == 0 ? ReopenFlags(flags) : -1, op == FileOp.Read);
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
                    OpenExisting(n.Id, n.Nr, task, r.Fd, r.Canonical, flags, (uint)how.Mode, op, exclusive, early);
                    return;
            }
            // Missing: decide on the name before anything exists, then create exactly that name.
            string parent = _resolver.CanonicalPath(r.Fd);
            string target = (parent == "/" ? "/" : parent + "/") + Encoding.UTF8.GetString(r.Name!, 0, r.Name!.Length - 1);
            if (Decide(new FileRequest(FileOp.Write, target, 0, 0) { SyscallNr = n.Nr }, task) == Verdict.Deny)
            {
                Libc.Close(r.Fd);
                Deny(n.Id, ViolationOp.FileWrite, task, target);
                return;
            }
            int fd = CreateAsWorkload(task, r.Fd, r.Name!, flags, how, out errno);
            Libc.Close(r.Fd);
            if (fd >= 0)
            {
                ReplyFd(n.Id, fd, (flags & Libc.O_CLOEXEC) != 0, task.Tid);
                return;
            }
            // EEXIST without O_EXCL: the name appeared meanwhile; resolve again and decide on it.
            if (errno != Errno.EEXIST || exclusive || attempt >= CreateRetries)
            {
                Fail(n.Id, errno);
                return;
            }
        }
    }

    /// <summary>
    /// A read-only open of a regular file or directory, and any open of /dev/null, zero, full,
    /// random or urandom, has no side effect worth deciding before (no truncation, creation,
    /// blocking or device action), so it is done in the same credential scope as the resolution
    /// and simply closed if the decision is deny: one credential switch instead of two on the most
    /// frequent paths. <see cref="Flags"/> -1: not eligible.
    /// </summary>
    private struct EarlyOpen(int flags, bool readOnly = false)
    {
        internal readonly int Flags = flags;
        internal readonly bool ReadOnly = readOnly;
        internal int Fd = -1;
        internal int Errno;
        internal Libc.Stat Stat;
        internal bool HaveStat;
    }

    private void OpenExisting(ulong id, int nr, WorkloadTask task, int opath, string? knownCanonical, int flags, uint mode, FileOp op, bool exclusive, EarlyOpen early)
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
                Fail(id, Errno.EEXIST);
                return;
            }
            if (type == Libc.S_IFDIR && !tmpFile && ((flags & Libc.O_CREAT) != 0 || (flags & Libc.O_ACCMODE) != 0))
            {
                Fail(id, Errno.EISDIR);
                return;
            }
            string canonical = knownCanonical ?? _resolver.CanonicalPath(opath);
            var violation = op == FileOp.Write ? ViolationOp.FileWrite : ViolationOp.FileRead;
            if (st.Dev == _procDev && ProcRefusal(canonical, op) is string why)
            {
                _log($"mis-seccomp: {_cgroupName}: {why}: {canonical}");
                Deny(id, violation, task, canonical);
                return;
            }
            if (Decide(new FileRequest(op, canonical, st.Dev, st.Ino) { SyscallNr = nr, Links = st.Nlink, Directory = type == Libc.S_IFDIR }, task) == Verdict.Deny)
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
                ReplyFd(id, early.Fd, closeOnExec, task.Tid);
                early.Fd = -1;
                return;
            }
            if ((flags & Libc.O_PATH) != 0)
            {
                // ADDFD cannot carry an O_PATH file (the kernel's fget refuses them), so the kernel
                // opens it again itself. The race this leaves is harmless: an O_PATH fd gives no
                // access to data, and every way to get some through it (reopen via /proc/self/fd,
                // openat relative to it, execveat) is notified and decided on its own.
                ContinueIfValid(id);
                return;
            }
            if (type == Libc.S_IFCHR && AnswerTerminalOpen(id, task, st, flags, op, canonical, closeOnExec))
                return; // SeccompSupervisor.Terminals.cs: never the enforcer's terminal, nor the operator's
            if (type == Libc.S_IFLNK) // reached with O_NOFOLLOW: open(2) refuses a symlink
            {
                Fail(id, Errno.ELOOP);
                return;
            }
            if (type == Libc.S_IFIFO && (flags & Libc.O_NONBLOCK) == 0 && (flags & Libc.O_ACCMODE) != Libc.O_RDWR)
            {
                ReleaseCpu(); // the FIFO's opener thread must not inherit a held CPU
                _fifos.Start(id, opath, ReopenFlags(flags), closeOnExec); // blocks until the other end opens
                opath = -1;
                return;
            }
            if (tmpFile)
                SetUmask(task);
            int fd, errno;
            using (_credentials.Assume())
            {
                fd = Reopen(opath, ReopenFlags(flags), mode);
                errno = Libc.LastErrno; // now: restoring the credentials makes calls of its own
            }
            if (fd < 0)
                Fail(id, errno);
            else
                ReplyFd(id, fd, closeOnExec, task.Tid);
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

    /// <summary>Whether an object of this type may be opened before it is decided (<see cref="EarlyOpen"/>).</summary>
    private static bool OpensWithoutEffect(in EarlyOpen early, in Libc.Stat st)
    {
        uint type = st.Mode & Libc.S_IFMT;
        if (type is Libc.S_IFREG or Libc.S_IFDIR)
            return early.ReadOnly;
        // The memory devices (major 1) null 3, zero 5, full 7, random 8, urandom 9: opening one
        // reaches no hardware and changes nothing. /dev/mem, kmem and port need capabilities the
        // workload does not have; kmsg is left to the decision-first path.
        return type == Libc.S_IFCHR && Major(st.Rdev) == 1 && Minor(st.Rdev) is 3 or 5 or 7 or 8 or 9;
    }

    /// <summary>Creation is done (O_CREAT, O_EXCL) once the name was found missing; following is done by the resolver.</summary>
    private static int ReopenFlags(int flags) =>
        (flags & ~(Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW)) | Libc.O_NOCTTY | Libc.O_CLOEXEC;

    /// <summary>New files get the workload's umask: this thread's fs_struct is its own (unshare(CLONE_FS) in Run).</summary>
    private void SetUmask(WorkloadTask task)
    {
        if (t_umaskPrivate && ProcFacts.Umask(task.Tid) is uint umask)
            Libc.Umask(umask);
    }

    private int CreateAsWorkload(WorkloadTask task, int parent, byte[] name, int flags, in Libc.OpenHow how, out int errno)
    {
        SetUmask(task);
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
}
