using Microsoft.Win32.SafeHandles;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>
/// A started, confined workload: the launcher process (which becomes the workload's first
/// process at <see cref="Go"/>), its pidfd, its seccomp listener and its cgroup. The exit status is
/// collected with waitid(P_PIDFD), never by pid, so a reused pid cannot be confused with it; if
/// something else in the process reaped the child first (.NET reaps every child when SIGCHLD was
/// ignored at startup), the status is read back from the pidfd (PIDFD_GET_INFO, Linux 6.15+).
/// </summary>
public sealed unsafe class Workload : IDisposable
{
    private const ulong PidfdGetInfo = 0xC040FF0B; // _IOWR(PIDFS_IOCTL_MAGIC, 11, struct pidfd_info v0)
    private const ulong PidfdInfoExit = 1UL << 3;

    private readonly SafeFileHandle _socket;
    private readonly object _gate = new();
    private readonly object _waitGate = new(); // apart from _gate: a waiter must not hold up Go
    private WorkloadExit? _exit;
    private bool _started;

    internal Workload(int pid, SafeFileHandle pidFd, SafeFileHandle listener, SafeFileHandle socket,
        string cgroupPath, string cgroupName, ulong cgroupId, WorkloadCredentials credentials)
    {
        Pid = pid;
        PidFd = pidFd;
        Listener = listener;
        _socket = socket;
        CgroupPath = cgroupPath;
        CgroupName = cgroupName;
        CgroupId = cgroupId;
        Credentials = credentials;
    }

    /// <summary>The workload's first process (the launcher until <see cref="Go"/>, then the command).</summary>
    internal int Pid { get; }

    /// <summary>A pidfd of <see cref="Pid"/>.</summary>
    internal SafeFileHandle PidFd { get; }

    /// <summary>The seccomp user-notification listener of the workload's filter (see <see cref="SeccompSupervisor"/>).</summary>
    internal SafeFileHandle Listener { get; }

    /// <summary>The cgroup directory.</summary>
    internal string CgroupPath { get; }

    /// <summary>The cgroup as /proc/PID/cgroup names it (e.g. "/mis/job-1").</summary>
    internal string CgroupName { get; }

    /// <summary>The cgroup id (the directory's inode number), the key of all per-cgroup state.</summary>
    internal ulong CgroupId { get; }

    /// <summary>Who the workload's processes are, read back after the launcher dropped its identity.</summary>
    internal WorkloadCredentials Credentials { get; }

    /// <summary>
    /// Lets the workload exec its command. Call it after everything that must watch the workload's
    /// first instruction is in place (its supervisor, BPF programs attached to its cgroup).
    /// </summary>
    internal void Go()
    {
        lock (_gate)
        {
            if (_started)
                throw new InvalidOperationException("the workload was already started");
            _started = true;
            byte go = (byte)'G';
            nint sent = Libc.Send((int)_socket.DangerousGetHandle(), &go, 1, Libc.MSG_NOSIGNAL);
            int errno = Libc.LastErrno;
            _socket.Dispose(); // the launcher needs nothing more; its exec closes its end
            if (sent != 1)
                throw new WorkloadLaunchException($"cannot tell mis-launch (pid {Pid}) to go: {Errno.Describe(errno)}");
        }
    }

    /// <summary>Waits for the workload's first process to end; null when <paramref name="timeout"/> passed first.</summary>
    internal WorkloadExit? WaitForExit(TimeSpan timeout)
    {
        lock (_waitGate)
        {
            if (_exit is not null)
                return _exit;
            var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
            var poll = new Libc.PollFd { Fd = (int)PidFd.DangerousGetHandle(), Events = Libc.POLLIN };
            while (true)
            {
                long left = timeout == Timeout.InfiniteTimeSpan ? -1 : Math.Max(0, deadline - Environment.TickCount64);
                int rc = Libc.Poll(&poll, 1, (int)Math.Min(left, int.MaxValue));
                if (rc > 0)
                    break;
                if (rc == 0)
                    return null;
                if (Libc.LastErrno != Errno.EINTR)
                    throw new IOException($"poll on the pidfd of {Pid}: {Errno.Describe(Libc.LastErrno)}");
            }
            return _exit = Reap();
        }
    }

    /// <summary>Waits without a limit.</summary>
    internal WorkloadExit WaitForExit() => WaitForExit(Timeout.InfiniteTimeSpan)!;

    /// <summary>Waits on a dedicated thread (the wait blocks in the kernel).</summary>
    internal Task<WorkloadExit> WaitForExitAsync(CancellationToken cancellationToken = default) =>
        Task.Factory.StartNew(() =>
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (WaitForExit(TimeSpan.FromMilliseconds(200)) is WorkloadExit exit)
                    return exit;
            }
        }, cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private WorkloadExit Reap()
    {
        Libc.SigInfo info = default;
        while (true)
        {
            long rc = Libc.Syscall(Libc.SYS_waitid, Libc.P_PIDFD, PidFd.DangerousGetHandle(), (long)&info, Libc.WEXITED, 0);
            if (rc == 0)
                return info.Code == Libc.CLD_EXITED ? new WorkloadExit(info.Status, null) : new WorkloadExit(null, info.Status);
            int errno = Libc.LastErrno;
            if (errno == Errno.EINTR)
                continue;
            if (errno == Errno.ECHILD && ExitFromPidfd() is WorkloadExit stolen)
                return stolen;
            throw new IOException($"waitid(P_PIDFD) for {Pid}: {Errno.Describe(errno)}");
        }
    }

    /// <summary>struct pidfd_info, first version: exit_code is at offset 60.</summary>
    private WorkloadExit? ExitFromPidfd()
    {
        byte* info = stackalloc byte[64];
        new Span<byte>(info, 64).Clear();
        *(ulong*)info = PidfdInfoExit;
        if (Libc.Ioctl((int)PidFd.DangerousGetHandle(), PidfdGetInfo, info) != 0 || (*(ulong*)info & PidfdInfoExit) == 0)
            return null;
        return WorkloadExit.FromWaitStatus(*(int*)(info + 60));
    }

    /// <summary>SIGKILLs every process of the workload's cgroup (cgroup.kill), or the first process where cgroup.kill is missing.</summary>
    internal void Kill()
    {
        string kill = Path.Combine(CgroupPath, "cgroup.kill");
        if (File.Exists(kill))
        {
            File.WriteAllText(kill, "1");
            return;
        }
        Libc.Syscall(Libc.SYS_pidfd_send_signal, PidFd.DangerousGetHandle(), Signals.SIGKILL, 0, 0);
    }

    /// <summary>Kills the workload if it still runs, reaps it, and closes its fds.</summary>
    public void Dispose()
    {
        if (!_socket.IsClosed)
            _socket.Dispose(); // before go: the launcher reads EOF and exits 127
        if (_exit is null && !PidFd.IsClosed)
        {
            if (WaitForExit(TimeSpan.Zero) is null)
            {
                try
                {
                    Kill();
                }
                catch (IOException)
                {
                    // the cgroup is already gone; the pidfd signal below still reaches the process
                }
                Libc.Syscall(Libc.SYS_pidfd_send_signal, PidFd.DangerousGetHandle(), Signals.SIGKILL, 0, 0);
                WaitForExit(TimeSpan.FromSeconds(10));
            }
        }
        Listener.Dispose();
        PidFd.Dispose();
    }
}
