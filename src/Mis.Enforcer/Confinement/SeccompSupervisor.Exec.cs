using System.Buffers.Binary;
using Mis.Enforcer.Policy;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>
/// execve/execveat, decided on what the kernel will really run: the file; for a #! script every
/// interpreter of its chain (the kernel opens them itself, so each is decided as an exec of its
/// own); for an ELF its program interpreter (PT_INTERP). Exec cannot be done on the workload's
/// behalf the way open is, so the syscall is continued and the kernel resolves the path again;
/// what it must end up running is handed to the kernel first (<see cref="IViolationSink.ApproveExec"/>),
/// whose sched_process_exec hook kills the task if a rewritten path or a swapped file made it run
/// anything else. Files changed during the run and nameless ones (memfd, O_TMPFILE) are flagged,
/// so an exec allow-list can refuse them (see <see cref="WorkloadPolicy.ExecAllowList"/>).
/// </summary>
public sealed unsafe partial class SeccompSupervisor
{
    private const int MaxInterpreters = 4; // the kernel's BINPRM_MAX_RECURSION
    private const int HeaderSize = 256;    // the kernel's BINPRM_BUF_SIZE

    /// <summary>Unix time (ns) before which a file's ctime means "not changed during this run" (a little before the supervisor started, for the kernel's coarse clock).</summary>
    private readonly long _runStartedNs = (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 50) * 1_000_000;

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
        byte[] path = OpenArguments.RewriteProcSelf(PathBuffer, length, task);
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
        var opened = new List<int> { r.Fd };
        try
        {
            int current = r.Fd;
            if (!MayExec(n.Id, n.Nr, task, current, interpreter: false, out var currentStat))
                return;
            for (int depth = 0; ; depth++)
            {
                var (interpreter, isElf) = ReadInterpreter(current, currentStat);
                if (interpreter is null)
                    break;
                if (depth >= MaxInterpreters)
                {
                    Fail(n.Id, Errno.ELOOP); // the kernel refuses a longer #! chain the same way
                    return;
                }
                // The kernel opens the interpreter relative to the caller's working directory.
                var next = ResolveAsWorkload(n.Id, task, Libc.AT_FDCWD, interpreter, Libc.O_PATH | Libc.O_CLOEXEC, 0, create: false, emptyPathAllowed: false, ref none);
                if (next is not Resolution nr)
                    return;
                if (nr.Status != ResolveStatus.Existing)
                {
                    if (nr.Status == ResolveStatus.ProcDenied)
                        Deny(n.Id, ViolationOp.Exec, task, nr.Denied!);
                    else
                        Fail(n.Id, nr.Errno);
                    return;
                }
                opened.Add(nr.Fd);
                if (!MayExec(n.Id, n.Nr, task, nr.Fd, interpreter: isElf, out currentStat))
                    return;
                if (isElf)
                    break; // ld.so: mapped by the kernel beside the program, which stays what runs
                current = nr.Fd;
            }
            if (KernelIdentity(task, current) is not var (device, inode))
            {
                Fail(n.Id, Errno.EPERM); // cannot say what the kernel must run: refuse, as an error
                return;
            }
            _sink.ApproveExec(_cgroupId, task.Tid, device, inode);
            if (IdValid(n.Id))
                Continue(n.Id);
        }
        finally
        {
            foreach (int fd in opened)
                Libc.Close(fd);
        }
    }

    /// <summary>Mount ids seen: the device of each one's superblock (the kernel's s_dev, in st_dev encoding), and whether it is an overlay.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, (ulong Device, bool Overlay)> _mounts = [];

    /// <summary>
    /// The (device, inode) the kernel will see as the executed file's: its superblock's device and
    /// its inode number. statx gives the mount and, except on an overlay (where stat reports the
    /// file below), the kernel's inode number; the overlay's own inode comes from fdinfo.
    /// </summary>
    private (ulong Device, ulong Inode)? KernelIdentity(WorkloadTask task, int fd)
    {
        if (!Libc.MountAndInode(fd, out ulong mountId, out ulong inode))
            return null;
        int mount = (int)mountId;
        if (!_mounts.TryGetValue(mount, out var facts))
        {
            // A kernel-internal mount (memfd's, pipes') is in no namespace's mountinfo: there
            // stat's device is the superblock's own.
            Libc.Stat st;
            if (ProcFacts.MountDevice(task.Tid, mount) is not { } found)
                return Libc.FStat(fd, &st) == 0 ? (st.Dev, inode) : null;
            if (_mounts.Count >= 4096)
                _mounts.Clear(); // mount ids come and go; keep the cache bounded
            _mounts[mount] = facts = found; // several threads may find the same: same answer
        }
        if (facts.Overlay)
        {
            if (ProcFacts.FdInfo(fd) is not var (_, overlayInode))
                return null;
            inode = overlayInode;
        }
        return (facts.Device, inode);
    }

    /// <summary>The policy's verdict on running the file behind our fd; false when refused (answered, counted).</summary>
    private bool MayExec(ulong id, int nr, WorkloadTask task, int fd, bool interpreter, out Libc.Stat st)
    {
        fixed (Libc.Stat* s = &st)
        {
            if (Libc.FStat(fd, s) != 0)
            {
                Fail(id, Libc.LastErrno);
                return false;
            }
        }
        string canonical = _resolver.CanonicalPath(fd);
        bool nameless = st.Nlink == 0 || canonical.StartsWith("/memfd:", StringComparison.Ordinal);
        var request = new FileRequest(FileOp.Exec, canonical, st.Dev, st.Ino)
        {
            SyscallNr = nr,
            Links = st.Nlink,
            Interpreter = interpreter,
            WrittenDuringRun = nameless || st.CtimeSec * 1_000_000_000 + st.CtimeNsec >= _runStartedNs,
        };
        if (Decide(request, task) != Verdict.Deny)
            return true;
        Deny(id, ViolationOp.Exec, task, canonical);
        return false;
    }

    /// <summary>
    /// The interpreter the kernel would open for the file behind our O_PATH fd (<paramref name="st"/>
    /// its fstat, from <see cref="MayExec"/>): a #! script's
    /// (isElf false) or a 64-bit ELF's PT_INTERP (isElf true), NUL-terminated; null for neither.
    /// Read by the enforcer itself (an exec needs no read permission, and nothing read is given
    /// to the workload).
    /// </summary>
    private (byte[]? Path, bool IsElf) ReadInterpreter(int opath, in Libc.Stat st)
    {
        if ((st.Mode & Libc.S_IFMT) != Libc.S_IFREG)
            return (null, false);
        int fd = Reopen(opath, Libc.O_RDONLY | Libc.O_CLOEXEC | Libc.O_NONBLOCK | Libc.O_NOCTTY, 0);
        if (fd < 0)
            return (null, false);
        try
        {
            var header = new byte[HeaderSize];
            int n = PRead(fd, header, 0);
            if (n >= 2 && header[0] == '#' && header[1] == '!')
                return (ScriptInterpreter(header.AsSpan(2, n - 2)), false);
            if (n >= 64 && header.AsSpan(0, 4).SequenceEqual("\u007fELF"u8) && header[4] == 2 /* ELFCLASS64 */)
                return (ElfInterpreter(fd, header), true);
            return (null, false);
        }
        finally
        {
            Libc.Close(fd);
        }
    }

    /// <summary>The first word after "#!" on the first line (as binfmt_script reads it).</summary>
    private static byte[]? ScriptInterpreter(ReadOnlySpan<byte> line)
    {
        int end = line.IndexOfAny((byte)'\n', (byte)0);
        if (end >= 0)
            line = line[..end];
        line = line.TrimStart(" \t"u8);
        int stop = line.IndexOfAny((byte)' ', (byte)'\t');
        var word = stop < 0 ? line : line[..stop];
        return word.IsEmpty ? null : [.. word, 0];
    }

    /// <summary>The PT_INTERP path of a 64-bit ELF, NUL-terminated, or null.</summary>
    private static byte[]? ElfInterpreter(int fd, byte[] header)
    {
        const uint PtInterp = 3;
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(32));
        int phentsize = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(54));
        int phnum = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(56));
        if (phentsize < 56 || phnum == 0 || phnum > 4096)
            return null;
        var headers = new byte[phentsize * phnum];
        if (PRead(fd, headers, (long)phoff) != headers.Length)
            return null;
        for (int i = 0; i < phnum; i++)
        {
            var ph = headers.AsSpan(i * phentsize, phentsize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(ph) != PtInterp)
                continue;
            ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(ph[8..]);
            ulong size = BinaryPrimitives.ReadUInt64LittleEndian(ph[32..]);
            if (size < 2 || size > ProcFacts.PathMax)
                return null;
            var path = new byte[size];
            if (PRead(fd, path, (long)offset) != path.Length)
                return null;
            int nul = Array.IndexOf(path, (byte)0);
            return nul > 0 ? path[..(nul + 1)] : null;
        }
        return null;
    }

    private static int PRead(int fd, byte[] buffer, long offset)
    {
        fixed (byte* b = buffer)
            return (int)Libc.PRead(fd, b, buffer.Length, offset);
    }
}
