using System.Text;
using Mis.Enforcer.Policy;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>
/// Every syscall that creates, removes, renames or links a name, or changes a file or its metadata
/// (see Syscalls.FileChanges): decided as a write on each name and each object it touches — the
/// source and the destination of a link or a rename, every file under a renamed directory — and
/// then done by the supervisor itself, as the workload (its fs ids and groups, no capabilities),
/// on the directory and the object it resolved and decided: the kernel never resolves the
/// workload's path again, so a thread rewriting it meanwhile gains nothing (as for opens).
/// Each is decided and done alone (the supervisor's names lock, held for writing; opens and execs
/// hold it for reading): no other notified syscall of the workload can rename or link behind a
/// decision while it is being made.
/// </summary>
public sealed unsafe partial class SeccompSupervisor
{
    private const int AT_REMOVEDIR = 0x200;
    private const int AT_SYMLINK_FOLLOW = 0x400;
    private const int RENAME_EXCHANGE = 2;
    private const int SO_DOMAIN = 39;
    private const long SYS_chroot = 161;

    private int _ownRoot = -1;

    /// <summary>An O_PATH fd of the enforcer's own root, to return to after <see cref="EnterRoot"/>.</summary>
    private int OwnRoot
    {
        get
        {
            if (Volatile.Read(ref _ownRoot) < 0)
            {
                int fd;
                fixed (byte* root = "/\0"u8)
                    fd = Libc.Open(root, Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0);
                if (Interlocked.CompareExchange(ref _ownRoot, fd, -1) != -1 && fd >= 0)
                    Libc.Close(fd); // another thread was first
            }
            return _ownRoot;
        }
    }

    /// <summary>Sets this thread's root and working directory (its fs_struct is its own: unshare(CLONE_FS) in Run).</summary>
    private static void EnterRoot(int root, int cwd)
    {
        byte dot = (byte)'.';
        byte* here = stackalloc byte[2] { dot, 0 };
        if (Libc.Syscall(SYS_fchdir, root, 0, 0) != 0 || Libc.Syscall(SYS_chroot, (long)here, 0, 0) != 0 || Libc.Syscall(SYS_fchdir, cwd, 0, 0) != 0)
            throw new IOException($"cannot enter the workload's root and working directory: {Errno.Describe(Libc.LastErrno)}");
    }
    private const long SYS_truncate = 76, SYS_fchdir = 81, SYS_chmod = 90, SYS_fchmod = 91, SYS_fchown = 93, SYS_setxattr = 188,
        SYS_fsetxattr = 190, SYS_removexattr = 197, SYS_fremovexattr = 199, SYS_mkdirat = 258, SYS_mknodat = 259,
        SYS_fchownat = 260, SYS_newfstatat = 262, SYS_unlinkat = 263, SYS_linkat = 265, SYS_symlinkat = 266,
        SYS_utimensat = 280, SYS_renameat2 = 316, SYS_fchmodat2 = 452, SYS_file_setattr = 469,
        SYS_bind = 49, SYS_getsockopt = 55, SYS_ioctl = 16;
    private const int XattrSizeMax = 65536;
    private const int XattrNameMax = 256;

    /// <summary>Files under a directory decided one by one before it is renamed; a larger tree is answered EXDEV.</summary>
    internal const int MaxRenamedTree = 10_000;

    private void HandleChange(in SeccompNotify.Notification n, WorkloadTask task)
    {
        var a = new long[6];
        for (int i = 0; i < 6; i++)
            a[i] = (long)n.Args[i];
        int cwd = Libc.AT_FDCWD;
        switch (n.Nr)
        {
            case Syscalls.Unlink: RemoveEntry(n, task, cwd, a[0], 0); break;
            case Syscalls.Rmdir: RemoveEntry(n, task, cwd, a[0], AT_REMOVEDIR); break;
            case Syscalls.Unlinkat: RemoveEntry(n, task, (int)a[0], a[1], (int)a[2]); break;
            case Syscalls.Mkdir: MakeEntry(n, task, cwd, a[0], SYS_mkdirat, a[1], 0, 0); break;
            case Syscalls.Mkdirat: MakeEntry(n, task, (int)a[0], a[1], SYS_mkdirat, a[2], 0, 0); break;
            case Syscalls.Mknod: MakeEntry(n, task, cwd, a[0], SYS_mknodat, a[1], a[2], 0); break;
            case Syscalls.Mknodat: MakeEntry(n, task, (int)a[0], a[1], SYS_mknodat, a[2], a[3], 0); break;
            case Syscalls.Symlink: MakeEntry(n, task, cwd, a[1], SYS_symlinkat, 0, 0, a[0]); break;
            case Syscalls.Symlinkat: MakeEntry(n, task, (int)a[1], a[2], SYS_symlinkat, 0, 0, a[0]); break;
            case Syscalls.Link: LinkEntry(n, task, cwd, a[0], cwd, a[1], 0); break;
            case Syscalls.Linkat: LinkEntry(n, task, (int)a[0], a[1], (int)a[2], a[3], (int)a[4]); break;
            case Syscalls.Rename: RenameEntry(n, task, cwd, a[0], cwd, a[1], 0); break;
            case Syscalls.Renameat: RenameEntry(n, task, (int)a[0], a[1], (int)a[2], a[3], 0); break;
            case Syscalls.Renameat2: RenameEntry(n, task, (int)a[0], a[1], (int)a[2], a[3], (uint)a[4]); break;
            case Syscalls.Bind: Bind(n, task, (int)a[0], a[1], (uint)a[2]); break;
            default: ChangeMetadata(n, task, a); break;
        }
    }

    // ---- names: unlink, rmdir, mkdir, mknod, symlink, link, rename -------------------------

    /// <summary>
    /// A name in a directory as an operation on the name sees it: the directory resolved as the
    /// workload (an O_PATH fd), the final component as written (trailing slashes kept, so the
    /// kernel applies its own rules for them), and what is there now, if anything.
    /// </summary>
    private sealed class Entry(int parent, byte[] name, string path, bool exists, Libc.Stat stat, bool dots) : IDisposable
    {
        internal int Parent { get; } = parent;
        internal byte[] Name { get; } = name;
        internal string Path { get; } = path;
        internal bool Exists { get; } = exists;
        internal Libc.Stat Stat { get; } = stat;
        /// <summary>The name is "." or "..": every operation on it fails in the kernel; nothing to decide.</summary>
        internal bool Dots { get; } = dots;
        internal bool IsDirectory => Exists && (Stat.Mode & Libc.S_IFMT) == Libc.S_IFDIR;
        public void Dispose() => Libc.Close(Parent);
    }

    private void RemoveEntry(in SeccompNotify.Notification n, WorkloadTask task, int dirFd, long address, int flags)
    {
        using var entry = ReadEntry(n.Id, task, dirFd, address);
        if (entry is null)
            return;
        if (entry.Exists && !entry.Dots && !MayWrite(n.Id, n.Nr, task, entry.Path, entry.Stat, newName: false))
            return;
        fixed (byte* name = entry.Name)
            Answer(n.Id, AsWorkload(SYS_unlinkat, entry.Parent, (long)name, flags));
    }

    /// <summary>mkdir, mknod and symlink: a new name, decided as a write before it exists.</summary>
    private void MakeEntry(in SeccompNotify.Notification n, WorkloadTask task, int dirFd, long address, long nr, long mode, long device, long symlinkTarget)
    {
        byte[]? target = null; // a symlink's text: never resolved here, it is resolved where it is used
        if (nr == SYS_symlinkat && (target = ReadPathCopy(n.Id, task, symlinkTarget, rewriteProcSelf: false)) is null)
            return;
        using var entry = ReadEntry(n.Id, task, dirFd, address);
        if (entry is null)
            return;
        // An existing name makes the kernel say EEXIST: nothing is created, nothing to decide.
        if (!entry.Exists && !entry.Dots && !MayWrite(n.Id, n.Nr, task, entry.Path, null, newName: false))
            return;
        SetUmask(task);
        fixed (byte* name = entry.Name)
        fixed (byte* linkTarget = target)
        {
            long rc = nr switch
            {
                SYS_symlinkat => AsWorkload(nr, (long)linkTarget, entry.Parent, (long)name),
                SYS_mkdirat => AsWorkload(nr, entry.Parent, (long)name, mode),
                _ => AsWorkload(nr, entry.Parent, (long)name, mode, device),
            };
            Answer(n.Id, rc);
        }
    }

    /// <summary>link/linkat: the source gets a new name (decided on the object, whatever name reached it), and the new name is a write.</summary>
    private void LinkEntry(in SeccompNotify.Notification n, WorkloadTask task, int oldDir, long oldAddress, int newDir, long newAddress, int flags)
    {
        if ((flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH)) != 0)
        {
            Fail(n.Id, Errno.EINVAL);
            return;
        }
        if (ReadPathCopy(n.Id, task, oldAddress, rewriteProcSelf: true) is not { } oldPath)
            return;
        bool emptyPath = oldPath[0] == 0 && (flags & AT_EMPTY_PATH) != 0;
        int source = ResolveObject(n.Id, task, oldDir, oldPath, follow: (flags & AT_SYMLINK_FOLLOW) != 0, emptyPathAllowed: (flags & AT_EMPTY_PATH) != 0);
        if (source < 0)
            return;
        try
        {
            using var entry = ReadEntry(n.Id, task, newDir, newAddress);
            if (entry is null || !MayChange(n.Id, n.Nr, task, source, newName: true))
                return;
            if (!entry.Exists && !entry.Dots && !MayWrite(n.Id, n.Nr, task, entry.Path, null, newName: false))
                return;
            byte* procName = stackalloc byte[40];
            byte empty = 0;
            fixed (byte* name = entry.Name)
            {
                // AT_EMPTY_PATH is the kernel's to allow (it wants CAP_DAC_READ_SEARCH, which the
                // workload lacks); a path is linked through our fd of what was decided.
                long rc = emptyPath
                    ? AsWorkload(SYS_linkat, source, (long)&empty, entry.Parent, (long)name, AT_EMPTY_PATH)
                    : AsWorkload(SYS_linkat, Libc.AT_FDCWD, (long)SelfFdPath(source, procName), entry.Parent, (long)name, AT_SYMLINK_FOLLOW);
                Answer(n.Id, rc);
            }
        }
        finally
        {
            Libc.Close(source);
        }
    }

    /// <summary>
    /// rename/renameat/renameat2: the source is a write that gives the file a new name; so is every
    /// file under a renamed directory (their paths change with it); the destination is a write
    /// (replaced, or exchanged: then a new name for it too).
    /// </summary>
    private void RenameEntry(in SeccompNotify.Notification n, WorkloadTask task, int oldDir, long oldAddress, int newDir, long newAddress, uint flags)
    {
        using var source = ReadEntry(n.Id, task, oldDir, oldAddress);
        if (source is null)
            return;
        using var destination = ReadEntry(n.Id, task, newDir, newAddress);
        if (destination is null)
            return;
        bool exchange = (flags & RENAME_EXCHANGE) != 0;
        if (source.Exists && !source.Dots)
        {
            if (!MayWrite(n.Id, n.Nr, task, source.Path, source.Stat, newName: true))
                return;
            if (source.IsDirectory && !MayMoveTree(n.Id, n.Nr, task, source))
                return;
        }
        if (!destination.Dots)
        {
            if (!MayWrite(n.Id, n.Nr, task, destination.Path, destination.Exists ? destination.Stat : null, newName: exchange))
                return;
            if (exchange && destination.IsDirectory && !MayMoveTree(n.Id, n.Nr, task, destination))
                return;
        }
        fixed (byte* from = source.Name)
        fixed (byte* to = destination.Name)
            Answer(n.Id, AsWorkload(SYS_renameat2, source.Parent, (long)from, destination.Parent, (long)to, flags));
    }

    /// <summary>
    /// Decides every file under a directory about to be renamed, as a write that gives it a new
    /// name: a protected file anywhere below refuses the rename (and counts), and a file a rule
    /// names only for reading or running is followed to its new name by identity. A tree larger
    /// than <see cref="MaxRenamedTree"/>, or with a name that cannot be read back, is answered
    /// EXDEV, no violation: movers then copy and delete, one decided operation at a time.
    /// </summary>
    private bool MayMoveTree(ulong id, int nr, WorkloadTask task, Entry directory)
    {
        int fd;
        fixed (byte* name = directory.Name)
            fd = Libc.OpenAt(directory.Parent, name, Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
        if (fd < 0)
            return true; // gone or not a directory now: the rename itself fails or renames no tree
        try
        {
            string procRoot = $"/proc/self/fd/{fd}";
            var pending = new Stack<(string Proc, string Canonical)>();
            pending.Push((procRoot, directory.Path));
            int seen = 0;
            while (pending.TryPop(out var dir))
            {
                // Lazily, so a huge directory costs no more than the bound before it is refused.
                using var children = Directory.EnumerateFileSystemEntries(dir.Proc).GetEnumerator();
                while (true)
                {
                    string? child = null;
                    try
                    {
                        if (children.MoveNext())
                            child = children.Current;
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    {
                        child = "";
                    }
                    if (child is null)
                        break;
                    Libc.Stat st;
                    if (++seen > MaxRenamedTree || child.Length == 0 || LStat(child, &st) != 0)
                    {
                        _log($"mis-seccomp: {_cgroupName}: rename of {directory.Path} answered EXDEV ({(seen > MaxRenamedTree ? $"more than {MaxRenamedTree} files below it" : $"{(child.Length == 0 ? dir.Canonical : child)} cannot be examined")})");
                        Fail(id, Errno.EXDEV);
                        return false;
                    }
                    string canonical = dir.Canonical + child[dir.Proc.Length..];
                    if (!MayWrite(id, nr, task, canonical, st, newName: true))
                        return false;
                    if ((st.Mode & Libc.S_IFMT) == Libc.S_IFDIR)
                        pending.Push((child, canonical));
                }
            }
            return true;
        }
        finally
        {
            Libc.Close(fd);
        }
    }

    /// <summary>bind() of a Unix socket to a path creates a file there: decided as a write, then bound by the supervisor on the workload's own socket.</summary>
    private void Bind(in SeccompNotify.Notification n, WorkloadTask task, int socketFd, long address, uint length)
    {
        int socket = DupWorkloadFd(task.Tid, socketFd);
        if (socket < 0)
        {
            FailIfValid(n.Id, -socket);
            return;
        }
        try
        {
            int domain = 0, size = sizeof(int);
            if (Libc.Syscall(SYS_getsockopt, socket, Libc.SOL_SOCKET, SO_DOMAIN, (long)&domain, (long)&size) < 0)
            {
                Fail(n.Id, Libc.LastErrno); // ENOTSOCK: what the kernel says
                return;
            }
            if (domain != Libc.AF_UNIX)
            {
                // The family belongs to the socket, not to the (rewritable) address: an IP bind
                // can reach no file, and the kernel's cgroup hooks judge it.
                ContinueIfValid(n.Id);
                return;
            }
            const int SockaddrUnSize = 110;
            if (length < 2 || length > SockaddrUnSize)
            {
                Fail(n.Id, Errno.EINVAL);
                return;
            }
            byte* sa = stackalloc byte[SockaddrUnSize + 1];
            new Span<byte>(sa, SockaddrUnSize + 1).Clear();
            int errno = ProcFacts.ReadBytes(task.Tid, (ulong)address, new Span<byte>(sa, (int)length));
            if (errno != 0 || !IdValid(n.Id))
            {
                FailIfValid(n.Id, errno);
                return;
            }
            bool pathname = length > 2 && sa[2] != 0 && *(ushort*)sa == Libc.AF_UNIX;
            if (!pathname) // abstract, autobind, or a wrong family the kernel refuses: no file either way
            {
                Answer(n.Id, AsWorkload(SYS_bind, socket, (long)sa, length));
                return;
            }
            var sunPath = new ReadOnlySpan<byte>(sa + 2, (int)length - 2);
            int end = sunPath.IndexOf((byte)0);
            byte[] path = [.. end < 0 ? sunPath : sunPath[..end], 0];
            using var entry = ResolveEntry(n.Id, task, Libc.AT_FDCWD, path);
            if (entry is null)
                return;
            if (!entry.Exists && !entry.Dots && !MayWrite(n.Id, n.Nr, task, entry.Path, null, newName: false))
                return;
            if (!t_umaskPrivate)
            {
                Fail(n.Id, Errno.EPERM); // binding from the workload's root and cwd needs this thread's own
                return;
            }
            // Bound with the workload's own spelling (getsockname returns it, and the kernel's Unix
            // hooks know the workload's servers by it), from the workload's root and working
            // directory, set for this thread alone. Nothing the workload does can move a name
            // between the decision and the bind: its renames and links wait for this thread.
            int cwd = OpenCwd(task.Tid);
            if (cwd < 0)
            {
                Fail(n.Id, -cwd);
                return;
            }
            SetUmask(task);
            int own = OwnRoot; // opened while this thread's root is still the enforcer's
            long rc;
            try
            {
                EnterRoot(_rootFd, cwd);
                rc = AsWorkload(SYS_bind, socket, (long)sa, length);
            }
            finally
            {
                EnterRoot(own, own);
                Libc.Close(cwd);
            }
            Answer(n.Id, rc);
        }
        finally
        {
            Libc.Close(socket);
        }
    }

    // ---- metadata: truncate, chmod, chown, utimes, xattrs, file attributes ------------------

    private void ChangeMetadata(in SeccompNotify.Notification n, WorkloadTask task, long[] a)
    {
        int nr = n.Nr;
        // Where the object is: a descriptor the workload holds, or a path (with its dirfd and flags).
        bool byFd = nr is Syscalls.Fchmod or Syscalls.Fchown or Syscalls.Fsetxattr or Syscalls.Fremovexattr or Syscalls.Ioctl
            || (nr is Syscalls.Utimensat or Syscalls.Futimesat && a[1] == 0);
        bool at = nr is Syscalls.Fchownat or Syscalls.Fchmodat or Syscalls.Fchmodat2 or Syscalls.Futimesat or Syscalls.Utimensat
            or Syscalls.Setxattrat or Syscalls.Removexattrat or Syscalls.FileSetattr;
        (int dirFd, long pathAddress) = at ? ((int)a[0], a[1]) : (Libc.AT_FDCWD, a[0]);
        int atFlags = nr switch
        {
            Syscalls.Fchownat => (int)a[4],
            Syscalls.Fchmodat2 or Syscalls.Utimensat => (int)a[3],
            Syscalls.Setxattrat or Syscalls.Removexattrat => (int)a[2],
            Syscalls.FileSetattr => (int)a[4],
            Syscalls.Lchown or Syscalls.Lsetxattr or Syscalls.Lremovexattr => AT_SYMLINK_NOFOLLOW,
            _ => 0,
        };

        // The syscall's other arguments, copied out of the workload's memory before the decision.
        byte[]? name = null, value = null, times = null;
        long size = 0, flags = 0;
        int errno = 0;
        switch (nr)
        {
            case Syscalls.Setxattr or Syscalls.Lsetxattr or Syscalls.Fsetxattr:
                (size, flags) = (a[3], a[4]);
                errno = ReadXattr(task, a[1], a[2], size, out name, out value);
                break;
            case Syscalls.Setxattrat:
                errno = ReadXattrArgs(task, a[3], a[4], a[5], out name, out value, out size, out flags);
                break;
            case Syscalls.Removexattr or Syscalls.Lremovexattr or Syscalls.Fremovexattr:
                errno = ReadXattr(task, a[1], 0, 0, out name, out _);
                break;
            case Syscalls.Removexattrat:
                errno = ReadXattr(task, a[3], 0, 0, out name, out _);
                break;
            case Syscalls.Utimensat:
                errno = a[2] == 0 ? 0 : ReadCopy(task, a[2], 32, out times);
                break;
            case Syscalls.Utime or Syscalls.Utimes or Syscalls.Futimesat:
                errno = ReadTimes(task, nr, nr == Syscalls.Futimesat ? a[2] : a[1], out times);
                break;
            case Syscalls.FileSetattr:
                size = a[3];
                errno = size > 4096 ? Errno.E2BIG : ReadCopy(task, a[2], (int)Math.Max(size, 0), out value);
                break;
            case Syscalls.Ioctl:
                errno = ReadCopy(task, a[2], (uint)a[1] == Syscalls.FsIocFssetxattr ? 28 : sizeof(int), out value);
                break;
        }
        if (errno != 0 || !IdValid(n.Id))
        {
            FailIfValid(n.Id, errno);
            return;
        }

        int target;
        if (byFd)
        {
            target = DupWorkloadFd(task.Tid, nr is Syscalls.Utimensat or Syscalls.Futimesat ? dirFd : (int)a[0]);
            if (target < 0)
            {
                FailIfValid(n.Id, -target);
                return;
            }
        }
        else
        {
            if (ReadPathCopy(n.Id, task, pathAddress, rewriteProcSelf: true) is not { } path)
                return;
            target = ResolveObject(n.Id, task, dirFd, path, follow: (atFlags & AT_SYMLINK_NOFOLLOW) == 0, emptyPathAllowed: (atFlags & AT_EMPTY_PATH) != 0);
            if (target < 0)
                return;
        }
        try
        {
            if (!MayChange(n.Id, nr, task, target, newName: false))
                return;
            byte* procName = stackalloc byte[40];
            long rc;
            fixed (byte* nm = name)
            fixed (byte* v = value)
            fixed (byte* t = times)
            {
                long procPath = (long)SelfFdPath(target, procName);
                byte empty = 0;
                long here = (long)&empty;
                rc = nr switch
                {
                    Syscalls.Truncate => AsWorkload(SYS_truncate, procPath, a[1]),
                    Syscalls.Chmod or Syscalls.Fchmodat => ChmodAsWorkload(target, here, procPath, a[nr == Syscalls.Chmod ? 1 : 2]),
                    Syscalls.Fchmodat2 => AsWorkload(SYS_fchmodat2, target, here, a[2], AT_EMPTY_PATH | (atFlags & AT_SYMLINK_NOFOLLOW)),
                    Syscalls.Fchmod => AsWorkload(SYS_fchmod, target, a[1]),
                    Syscalls.Chown or Syscalls.Lchown => AsWorkload(SYS_fchownat, target, here, a[1], a[2], AT_EMPTY_PATH),
                    Syscalls.Fchownat => AsWorkload(SYS_fchownat, target, here, a[2], a[3], AT_EMPTY_PATH),
                    Syscalls.Fchown => AsWorkload(SYS_fchown, target, a[1], a[2]),
                    Syscalls.Utime or Syscalls.Utimes or Syscalls.Futimesat or Syscalls.Utimensat when byFd =>
                        AsWorkload(SYS_utimensat, target, 0, (long)t, nr == Syscalls.Utimensat ? atFlags : 0),
                    Syscalls.Utime or Syscalls.Utimes or Syscalls.Futimesat or Syscalls.Utimensat =>
                        AsWorkload(SYS_utimensat, target, here, (long)t, AT_EMPTY_PATH | (atFlags & AT_SYMLINK_NOFOLLOW)),
                    Syscalls.Setxattr or Syscalls.Lsetxattr or Syscalls.Setxattrat => AsWorkload(SYS_setxattr, procPath, (long)nm, (long)v, size, flags),
                    Syscalls.Fsetxattr => AsWorkload(SYS_fsetxattr, target, (long)nm, (long)v, size, flags),
                    Syscalls.Removexattr or Syscalls.Lremovexattr or Syscalls.Removexattrat => AsWorkload(SYS_removexattr, procPath, (long)nm),
                    Syscalls.Fremovexattr => AsWorkload(SYS_fremovexattr, target, (long)nm),
                    Syscalls.FileSetattr => AsWorkload(SYS_file_setattr, Libc.AT_FDCWD, procPath, (long)v, size, 0),
                    Syscalls.Ioctl => AsWorkload(SYS_ioctl, target, a[1], (long)v),
                    _ => -Errno.ENOSYS,
                };
            }
            Answer(n.Id, rc);
        }
        finally
        {
            Libc.Close(target);
        }
    }

    // ---- shared pieces ----------------------------------------------------------------------

    /// <summary>A NUL-terminated copy of the path at <paramref name="address"/> (the shared buffer is reused by the next read), or null when answered.</summary>
    private byte[]? ReadPathCopy(ulong id, WorkloadTask task, long address, bool rewriteProcSelf)
    {
        int errno = ReadPath(task.Tid, (ulong)address, out int length);
        if (errno != 0 || !IdValid(id))
        {
            FailIfValid(id, errno);
            return null;
        }
        byte[] path = rewriteProcSelf ? OpenArguments.RewriteProcSelf(PathBuffer, length, task) : PathBuffer;
        int end = Array.IndexOf(path, (byte)0);
        return path.AsSpan(0, end + 1).ToArray();
    }

    private Entry? ReadEntry(ulong id, WorkloadTask task, int dirFd, long address) =>
        ReadPathCopy(id, task, address, rewriteProcSelf: true) is { } path ? ResolveEntry(id, task, dirFd, path) : null;

    /// <summary>Resolves the directory part of <paramref name="path"/> as the workload and looks at its final name (not followed); null when answered.</summary>
    private Entry? ResolveEntry(ulong id, WorkloadTask task, int dirFd, byte[] path)
    {
        int length = Array.IndexOf(path, (byte)0);
        if (length == 0)
        {
            Fail(id, Errno.ENOENT);
            return null;
        }
        int end = length;
        while (end > 1 && path[end - 1] == '/')
            end--;
        int slash = Array.LastIndexOf(path, (byte)'/', end - 1);
        byte[] directory = slash < 0 ? ".\0"u8.ToArray() : slash == 0 ? "/\0"u8.ToArray() : [.. path.AsSpan(0, slash), 0];
        byte[] name = slash < 0 ? [.. path.AsSpan(0, length), 0] : [.. path.AsSpan(slash + 1, length - slash - 1), 0];
        string bare = Encoding.UTF8.GetString(path, slash + 1, end - slash - 1);
        if (name[0] == 0) // the path is "/" (or slashes): the root itself
        {
            name = ".\0"u8.ToArray();
            bare = ".";
        }
        var none = new EarlyOpen(-1);
        if (ResolveAsWorkload(id, task, dirFd, directory, Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0, create: false, emptyPathAllowed: false, ref none) is not Resolution r)
            return null;
        switch (r.Status)
        {
            case ResolveStatus.ProcDenied:
                Deny(id, ViolationOp.FileWrite, task, r.Denied!);
                return null;
            case ResolveStatus.Failed:
                Fail(id, r.Errno);
                return null;
        }
        Libc.Stat st = default;
        long found;
        using (_credentials.Assume())
        {
            fixed (byte* n = name)
                found = Libc.Syscall(SYS_newfstatat, r.Fd, (long)n, (long)&st, AT_SYMLINK_NOFOLLOW);
        }
        string parent = _resolver.CanonicalPath(r.Fd);
        string canonical = bare is "." or ".." ? parent : (parent == "/" ? "/" : parent + "/") + bare;
        return new Entry(r.Fd, name, canonical, found == 0, st, bare is "." or "..");
    }

    /// <summary>Resolves the object a metadata change acts on, as the workload; an O_PATH fd (or a dup of the workload's own fd for an empty path), or -1 when answered.</summary>
    private int ResolveObject(ulong id, WorkloadTask task, int dirFd, byte[] path, bool follow, bool emptyPathAllowed)
    {
        var none = new EarlyOpen(-1);
        int flags = Libc.O_PATH | Libc.O_CLOEXEC | (follow ? 0 : Libc.O_NOFOLLOW);
        if (ResolveAsWorkload(id, task, dirFd, path, flags, 0, create: false, emptyPathAllowed, ref none) is not Resolution r)
            return -1;
        switch (r.Status)
        {
            case ResolveStatus.Existing:
                return r.Fd;
            case ResolveStatus.ProcDenied:
                Deny(id, ViolationOp.FileWrite, task, r.Denied!);
                return -1;
            default:
                Fail(id, r.Errno);
                return -1;
        }
    }

    /// <summary>Decides a write on the object behind our fd <paramref name="fd"/>; false when refused (answered, counted).</summary>
    private bool MayChange(ulong id, int nr, WorkloadTask task, int fd, bool newName)
    {
        Libc.Stat st;
        if (Libc.FStat(fd, &st) != 0)
        {
            Fail(id, Libc.LastErrno);
            return false;
        }
        return MayWrite(id, nr, task, _resolver.CanonicalPath(fd), st, newName);
    }

    /// <summary>
    /// The policy's verdict on writing <paramref name="path"/> (the file <paramref name="st"/>, or a
    /// name with nothing there yet); false when refused: the violation is counted and EPERM answered.
    /// </summary>
    private bool MayWrite(ulong id, int nr, WorkloadTask task, string path, Libc.Stat? st, bool newName)
    {
        var request = st is { } s
            ? new FileRequest(FileOp.Write, path, s.Dev, s.Ino) { SyscallNr = nr, Links = s.Nlink, NewName = newName, Directory = (s.Mode & Libc.S_IFMT) == Libc.S_IFDIR }
            : new FileRequest(FileOp.Write, path, 0, 0) { SyscallNr = nr };
        if (st is { } p && p.Dev == _procDev && ProcRefusal(path, FileOp.Write) is string why)
        {
            _log($"mis-seccomp: {_cgroupName}: {why}: {path}");
            Deny(id, ViolationOp.FileWrite, task, path);
            return false;
        }
        if (Decide(request, task) != Verdict.Deny)
            return true;
        Deny(id, ViolationOp.FileWrite, task, path);
        return false;
    }

    // fchmodat2 (with AT_EMPTY_PATH: the object behind an O_PATH fd) is Linux 6.6+; before, the
    // object is reached through its /proc/self/fd link, which chmod follows to it.
    private static volatile bool s_noFchmodat2;

    /// <summary>chmod of the object behind our fd <paramref name="target"/> (<paramref name="procPath"/> its /proc/self/fd link), as the workload.</summary>
    private long ChmodAsWorkload(int target, long empty, long procPath, long mode)
    {
        if (!s_noFchmodat2)
        {
            long rc = AsWorkload(SYS_fchmodat2, target, empty, mode, AT_EMPTY_PATH);
            if (rc != -Errno.ENOSYS)
                return rc;
            s_noFchmodat2 = true;
        }
        return AsWorkload(SYS_chmod, procPath, mode);
    }

    /// <summary>Runs one syscall as the workload (see <see cref="ThreadCredentials"/>); its result, or -errno.</summary>
    private long AsWorkload(long nr, long a1, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0)
    {
        using (_credentials.Assume())
        {
            long rc = Libc.Syscall(nr, a1, a2, a3, a4, a5);
            return rc < 0 ? -Libc.LastErrno : rc;
        }
    }

    /// <summary>Answers with a syscall's outcome: its value, or its error (no violation: the kernel said it).</summary>
    private void Answer(ulong id, long rc)
    {
        if (rc < 0)
        {
            Fail(id, (int)-rc);
            return;
        }
        Interlocked.Increment(ref Stats.Allowed);
        byte* buffer = stackalloc byte[_responseSize];
        SeccompNotify.Respond(_listener, buffer, _responseSize, new SeccompNotify.Response { Id = id, Value = rc });
    }

    /// <summary>"/proc/self/fd/N" of one of our fds, NUL-terminated, in <paramref name="buffer"/> (40 bytes): the object itself for path-only syscalls.</summary>
    private static byte* SelfFdPath(int fd, byte* buffer)
    {
        ProcFacts.Ascii($"/proc/self/fd/{fd}", new Span<byte>(buffer, 40));
        return buffer;
    }

    private static int LStat(string path, Libc.Stat* st)
    {
        byte[] bytes = [.. Encoding.UTF8.GetBytes(path), 0];
        fixed (byte* p = bytes)
            return (int)Libc.Syscall(SYS_newfstatat, Libc.AT_FDCWD, (long)p, (long)st, AT_SYMLINK_NOFOLLOW);
    }

    private static int ReadCopy(WorkloadTask task, long address, int length, out byte[] copy)
    {
        copy = new byte[Math.Max(length, 1)];
        return length == 0 ? 0 : ProcFacts.ReadBytes(task.Tid, (ulong)address, copy.AsSpan(0, length));
    }

    /// <summary>An xattr name (and value, when <paramref name="size"/> &gt; 0) from the workload; the kernel's errors for bad ones.</summary>
    private int ReadXattr(WorkloadTask task, long nameAddress, long valueAddress, long size, out byte[]? name, out byte[]? value)
    {
        name = value = null;
        if (size < 0 || size > XattrSizeMax)
            return Errno.E2BIG;
        var buffer = new byte[ProcFacts.PathMax];
        int errno = ProcFacts.ReadString(task.Tid, (ulong)nameAddress, buffer, out int length);
        if (errno != 0)
            return errno;
        if (length == 0 || length >= XattrNameMax)
            return length == 0 ? Errno.EINVAL : Errno.ERANGE;
        name = buffer.AsSpan(0, length + 1).ToArray();
        if (size == 0 || valueAddress == 0)
            return 0;
        return ReadCopy(task, valueAddress, (int)size, out value);
    }

    /// <summary>setxattrat's struct xattr_args { u64 value; u32 size; u32 flags; }.</summary>
    private int ReadXattrArgs(WorkloadTask task, long nameAddress, long argsAddress, long argsSize, out byte[]? name, out byte[]? value, out long size, out long flags)
    {
        name = value = null;
        size = flags = 0;
        if (argsSize < 16)
            return Errno.EINVAL;
        if (argsSize > 4096)
            return Errno.E2BIG;
        Span<byte> args = stackalloc byte[16];
        int errno = ProcFacts.ReadBytes(task.Tid, (ulong)argsAddress, args);
        if (errno != 0)
            return errno;
        long valueAddress = BitConverter.ToInt64(args);
        size = BitConverter.ToUInt32(args[8..]);
        flags = BitConverter.ToUInt32(args[12..]);
        return ReadXattr(task, nameAddress, valueAddress, size, out name, out value);
    }

    /// <summary>utime's struct utimbuf or utimes'/futimesat's struct timeval[2], as utimensat's struct timespec[2] (null: now).</summary>
    private static int ReadTimes(WorkloadTask task, int nr, long address, out byte[]? times)
    {
        times = null;
        if (address == 0)
            return 0;
        Span<long> ts = stackalloc long[4];
        Span<byte> raw = stackalloc byte[32];
        int length = nr == Syscalls.Utime ? 16 : 32;
        int errno = ProcFacts.ReadBytes(task.Tid, (ulong)address, raw[..length]);
        if (errno != 0)
            return errno;
        for (int i = 0; i < 2; i++)
        {
            if (nr == Syscalls.Utime)
            {
                ts[2 * i] = BitConverter.ToInt64(raw[(8 * i)..]);
                continue;
            }
            long sec = BitConverter.ToInt64(raw[(16 * i)..]), usec = BitConverter.ToInt64(raw[(16 * i + 8)..]);
            if (usec < 0 || usec >= 1_000_000)
                return Errno.EINVAL;
            (ts[2 * i], ts[2 * i + 1]) = (sec, usec * 1000);
        }
        times = System.Runtime.InteropServices.MemoryMarshal.AsBytes(ts).ToArray();
        return 0;
    }
}
