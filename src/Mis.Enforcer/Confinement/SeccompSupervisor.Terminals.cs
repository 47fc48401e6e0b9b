using System.Globalization;
using Mis.Enforcer.Policy;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>
/// Terminals. The supervisor opens files in its own context, and for terminals that context
/// decides what is opened: /dev/tty is the *opener's* controlling terminal (opened here it would be
/// the enforcer's, the operator's), and a /dev/pts/N name reaches any pty of the host, the
/// operator's included. So /dev/tty yields the workload's own controlling terminal or ENXIO, as the
/// kernel answers a process without one (the launcher's setsid leaves it none); and a pty slave is
/// opened only when a process of the workload holds it or its master (a pty it made through
/// /dev/ptmx, as openpty and Python's pty do). Any other pty is refused as a violation.
/// </summary>
public sealed unsafe partial class SeccompSupervisor
{
    private const uint TtyMajor = 5; // /dev/tty is 5:0, /dev/ptmx 5:2
    private const uint PtmxMinor = 2;
    private const uint PtsFirstMajor = 136; // UNIX98_PTY_SLAVE_MAJOR, 8 majors of 256 ptys
    private const uint PtsLastMajor = 143;
    private const ulong TIOCGPTPEER = 0x5441;

    private static readonly Lazy<string?> s_cgroupMount = new(() => CgroupV2.FindMount());

    /// <summary>
    /// Answers an open of /dev/tty or of a pty slave (after the policy allowed it); false for any
    /// other character device, which is then opened as usual.
    /// </summary>
    private bool AnswerTerminalOpen(ulong id, WorkloadTask task, in Libc.Stat st, int flags, FileOp op, string canonical, bool closeOnExec)
    {
        uint major = Major(st.Rdev);
        bool controlling = major == TtyMajor && Minor(st.Rdev) == 0;
        if (!controlling && major is < PtsFirstMajor or > PtsLastMajor)
            return false;
        int fd;
        bool held;
        if (controlling)
        {
            // Its controlling terminal can only be a pty it holds: it may make one of its own
            // ptys its controlling terminal (TIOCSCTTY), and can steal no other without CAP_SYS_ADMIN.
            ulong ctty = ProcFacts.ControllingTerminal(task.Tid) ?? 0;
            fd = ctty == 0 ? -1 : OpenHeldPty(null, ctty, flags, out held);
            if (fd < 0)
            {
                Fail(id, Errno.ENXIO);
                return true;
            }
        }
        else
        {
            fd = OpenHeldPty(st.Dev, st.Rdev, flags, out held);
            if (!held)
            {
                _log($"mis-seccomp: {_cgroupName}: {canonical} is not a terminal of the workload's own");
                Deny(id, op == FileOp.Write ? ViolationOp.FileWrite : ViolationOp.FileRead, task, canonical);
                return true;
            }
            if (fd < 0)
            {
                Fail(id, -fd);
                return true;
            }
        }
        ReplyFd(id, fd, closeOnExec, task.Tid);
        return true;
    }

    /// <summary>
    /// Opens the pty slave <paramref name="rdev"/> (on devpts instance <paramref name="dev"/>, when
    /// given) through what a process of the workload holds: its master (TIOCGPTPEER opens exactly
    /// that master's peer) or the slave itself (reopened as the workload). Returns the fd, or
    /// -errno when held but the open failed (a locked pty: EIO); <paramref name="held"/> false when
    /// no process of the workload holds either.
    /// </summary>
    private int OpenHeldPty(ulong? dev, ulong rdev, int flags, out bool held)
    {
        held = false;
        if (s_cgroupMount.Value is not string mount)
            return -Errno.ENOENT;
        string[] pids;
        try
        {
            pids = File.ReadAllLines($"{mount}{_cgroupName}/cgroup.procs");
        }
        catch (IOException)
        {
            return -Errno.ENOENT;
        }
        foreach (string line in pids)
        {
            if (!int.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
                continue;
            foreach (int fd in OpenFds(pid))
            {
                if (!StatFollow($"/proc/{pid}/fd/{fd}", out var st) || (st.Mode & Libc.S_IFMT) != Libc.S_IFCHR)
                    continue;
                bool slave = st.Rdev == rdev && (dev is null || st.Dev == dev);
                bool master = Major(st.Rdev) == TtyMajor && Minor(st.Rdev) == PtmxMinor && PtyIndex(pid, fd) is uint index && PtsRdev(index) == rdev;
                if (!slave && !master)
                    continue;
                int ours = DupWorkloadFd(pid, fd);
                if (ours < 0)
                    continue; // gone meanwhile
                try
                {
                    int opened = slave ? ReopenAsWorkload(ours, flags) : OpenPeer(ours, flags);
                    if (opened < 0)
                    {
                        held = true; // its own, but the kernel refuses it (a master not unlocked yet: EIO)
                        return opened;
                    }
                    Libc.Stat got;
                    if (Libc.FStat(opened, &got) == 0 && got.Rdev == rdev && (dev is null || got.Dev == dev))
                    {
                        held = true;
                        return opened;
                    }
                    Libc.Close(opened); // another devpts instance's pty of the same number
                }
                finally
                {
                    Libc.Close(ours);
                }
            }
        }
        return -Errno.ENOENT;
    }

    private int ReopenAsWorkload(int fd, int flags)
    {
        using (_credentials.Assume())
        {
            int opened = Reopen(fd, ReopenFlags(flags), 0);
            return opened >= 0 ? opened : -Libc.LastErrno;
        }
    }

    /// <summary>The slave of the master <paramref name="master"/>; never our controlling terminal (O_NOCTTY).</summary>
    private static int OpenPeer(int master, int flags)
    {
        int peerFlags = (flags & (Libc.O_ACCMODE | Libc.O_NONBLOCK)) | Libc.O_NOCTTY | Libc.O_CLOEXEC;
        int fd = Libc.Ioctl(master, TIOCGPTPEER, (void*)peerFlags);
        return fd >= 0 ? fd : -Libc.LastErrno;
    }

    private static IEnumerable<int> OpenFds(int pid)
    {
        string[] names;
        try
        {
            names = Directory.GetFileSystemEntries($"/proc/{pid}/fd");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            yield break; // gone
        }
        foreach (string name in names)
            if (int.TryParse(Path.GetFileName(name), NumberStyles.None, CultureInfo.InvariantCulture, out int fd))
                yield return fd;
    }

    /// <summary>"tty-index:" of a ptmx master's fdinfo (only masters have it), or null.</summary>
    private static uint? PtyIndex(int pid, int fd)
    {
        try
        {
            foreach (string line in File.ReadLines($"/proc/{pid}/fdinfo/{fd}"))
                if (line.StartsWith("tty-index:", StringComparison.Ordinal))
                    return uint.Parse(line.AsSpan(10).Trim(), CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
        }
        return null;
    }

    private static bool StatFollow(string path, out Libc.Stat st)
    {
        byte* p = stackalloc byte[64];
        ProcFacts.Ascii(path, new Span<byte>(p, 64));
        fixed (Libc.Stat* s = &st)
            return Libc.StatPath(p, s) == 0;
    }

    // The kernel's new_encode_dev, as in st_rdev and /proc/PID/stat's tty_nr.
    private static uint Major(ulong rdev) => (uint)(((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~0xfffUL));

    private static uint Minor(ulong rdev) => (uint)((rdev & 0xff) | ((rdev >> 12) & ~0xffUL));

    private static ulong PtsRdev(uint index)
    {
        ulong major = PtsFirstMajor + index / 256, minor = index % 256;
        return minor | (major << 8);
    }
}
