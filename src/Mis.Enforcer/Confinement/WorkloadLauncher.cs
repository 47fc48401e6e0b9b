using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>
/// Starts workloads through <c>mis-launch</c> (native/launcher), which confines itself and then
/// becomes the workload. posix_spawn, not System.Diagnostics.Process: Process would reap the child
/// in its own SIGCHLD handling, pass the enforcer's environment, and cannot place one chosen fd
/// (the launcher's socket) at a known number while keeping every other fd from the child.
/// Every fd of the enforcer is close-on-exec (.NET opens them so), the socket is dup2'ed to
/// fd 3 in the child only, and the launcher closes everything above stdio and the socket.
/// </summary>
public sealed unsafe class WorkloadLauncher
{
    /// <summary>Where the child finds the socket to the enforcer (--sock-fd).</summary>
    private const int ChildSocketFd = 3;

    /// <summary>Uses <paramref name="launcherPath"/>, default <c>mis-launch</c> beside the assemblies (see native/native.targets).</summary>
    internal WorkloadLauncher(string? launcherPath = null)
    {
        LauncherPath = launcherPath ?? Path.Combine(AppContext.BaseDirectory, "mis-launch");
        if (!File.Exists(LauncherPath))
            throw new FileNotFoundException($"mis-launch not found at {LauncherPath} (the build puts it beside the assemblies: native/native.targets)", LauncherPath);
    }

    /// <summary>The launcher binary.</summary>
    internal string LauncherPath { get; }

    /// <summary>
    /// Spawns the launcher, which joins <see cref="LaunchSpec.CgroupPath"/>, drops identity and
    /// capabilities, installs the seccomp filter and hands its listener over; then it waits for
    /// <see cref="Workload.Go"/>. Throws <see cref="WorkloadLaunchException"/> with the launcher's
    /// own message when setup fails.
    /// </summary>
    internal Workload Launch(LaunchSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Command.Count == 0)
            throw new ArgumentException("the command is empty", nameof(spec));
        if (!File.Exists(Path.Combine(spec.CgroupPath, "cgroup.procs")))
            throw new ArgumentException($"{spec.CgroupPath} is not a cgroup v2 directory (no cgroup.procs)", nameof(spec));
        var identity = spec.Identity ?? WorkloadIdentity.Default;
        string[] argv =
        [
            LauncherPath, "--cgroup", spec.CgroupPath, .. identity.LauncherArguments(),
            "--sock-fd", "3", "--chdir", spec.WorkingDirectory, .. CapTasks(spec),
            .. (spec.FilesInKernel ? ["--files-in-kernel"] : Array.Empty<string>()), "--", .. spec.Command,
        ];

        int* pair = stackalloc int[2];
        if (Libc.SocketPair(Libc.AF_UNIX, Libc.SOCK_SEQPACKET | Libc.SOCK_CLOEXEC, 0, pair) != 0)
            throw new WorkloadLaunchException($"socketpair: {Errno.Describe(Libc.LastErrno)}");
        var ours = new SafeFileHandle(pair[0], ownsHandle: true);
        int pid;
        SafeFileHandle? pidFd = null;
        try
        {
            using (var devNull = File.OpenHandle("/dev/null", FileMode.Open, FileAccess.ReadWrite))
            {
                try
                {
                    SafeFileHandle[] stdio = [spec.Stdin ?? devNull, spec.Stdout ?? devNull, spec.Stderr ?? devNull];
                    int theirs = pair[1];
                    pid = SpawnThread.Run(() => MountNamespace.SpawnIn(spec.MountNamespace?.Handle, () => Spawn(argv, spec.Environment, stdio, theirs)));
                }
                finally
                {
                    Libc.Close(pair[1]);
                }
            }
            int fd = (int)Libc.Syscall(Libc.SYS_pidfd_open, pid, 0, 0);
            if (fd < 0) // cannot happen for an unreaped child; without a pidfd it cannot be managed
            {
                int errno = Libc.LastErrno;
                _ = Signals.Send(pid, Signals.SIGKILL);
                throw new WorkloadLaunchException($"pidfd_open({pid}): {Errno.Describe(errno)}");
            }
            pidFd = new SafeFileHandle(fd, ownsHandle: true);
            var listener = ReceiveListener(ours, pid, pidFd, spec.HandoffTimeout);
            try
            {
                string cgroupName = ProcFacts.CgroupOf(pid) ?? throw new WorkloadLaunchException($"mis-launch (pid {pid}) vanished after the handoff");
                var credentials = ProcFacts.Credentials(pid);
                ulong cgroupId = CgroupId(spec.CgroupPath);
                return new Workload(pid, pidFd, listener, ours, spec.CgroupPath, cgroupName, cgroupId, credentials);
            }
            catch
            {
                listener.Dispose();
                throw;
            }
        }
        catch
        {
            ours.Dispose(); // the launcher reads EOF instead of go and exits 127
            if (pidFd is not null)
            {
                Libc.Syscall(Libc.SYS_pidfd_send_signal, pidFd.DangerousGetHandle(), Signals.SIGKILL, 0, 0);
                Libc.SigInfo info;
                Libc.Syscall(Libc.SYS_waitid, Libc.P_PIDFD, pidFd.DangerousGetHandle(), (long)&info, Libc.WEXITED, 0);
                pidFd.Dispose();
            }
            throw;
        }
    }

    /// <summary>Caps the cgroup's tasks; the launcher's arguments that join the v1 mirror cgroup where that is how.</summary>
    private static string[] CapTasks(LaunchSpec spec)
    {
        Cgroups.PidsCapResult cap;
        try
        {
            cap = Cgroups.PidsCap.Apply(spec.CgroupPath, spec.MaxTasks);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            throw new WorkloadLaunchException($"cannot cap the tasks of {spec.CgroupPath}: {e.Message}", inner: e);
        }
        return cap.V1Path is string v1 ? ["--pids-cgroup", v1] : [];
    }

    private static int Spawn(string[] argv, IReadOnlyList<string> environment, SafeFileHandle[] stdio, int socket)
    {
        byte* actions = stackalloc byte[Libc.SpawnFileActionsSize];
        byte* attributes = stackalloc byte[Libc.SpawnAttrSize];
        byte* empty = stackalloc byte[Libc.SigSetSize];
        byte* all = stackalloc byte[Libc.SigSetSize];
        var strings = new List<nint>();
        try
        {
            Check(Libc.PosixSpawnFileActionsInit(actions), "posix_spawn_file_actions_init");
            Check(Libc.PosixSpawnAttrInit(attributes), "posix_spawnattr_init");
            for (int i = 0; i < 3; i++)
                Check(Libc.PosixSpawnFileActionsAddDup2(actions, (int)stdio[i].DangerousGetHandle(), i), "posix_spawn_file_actions_adddup2");
            // dup2 clears close-on-exec on the copy only: the socket reaches this child, at fd 3, and no other.
            Check(Libc.PosixSpawnFileActionsAddDup2(actions, socket, ChildSocketFd), "posix_spawn_file_actions_adddup2");
            // .NET ignores SIGPIPE and may block signals on the calling thread; a workload starts
            // with every signal at its default and none blocked, as from a shell.
            Libc.SigEmptySet(empty);
            Libc.SigFillSet(all);
            Check(Libc.PosixSpawnAttrSetSigMask(attributes, empty), "posix_spawnattr_setsigmask");
            Check(Libc.PosixSpawnAttrSetSigDefault(attributes, all), "posix_spawnattr_setsigdefault");
            Check(Libc.PosixSpawnAttrSetFlags(attributes, Libc.POSIX_SPAWN_SETSIGMASK | Libc.POSIX_SPAWN_SETSIGDEF), "posix_spawnattr_setflags");

            byte** args = (byte**)NativeMemory.AllocZeroed((nuint)(argv.Length + 1), (nuint)sizeof(nint));
            byte** env = (byte**)NativeMemory.AllocZeroed((nuint)(environment.Count + 1), (nuint)sizeof(nint));
            strings.Add((nint)args);
            strings.Add((nint)env);
            for (int i = 0; i < argv.Length; i++)
                strings.Add((nint)(args[i] = Utf8(argv[i])));
            for (int i = 0; i < environment.Count; i++)
                strings.Add((nint)(env[i] = Utf8(environment[i])));
            int pid;
            int rc = Libc.PosixSpawn(&pid, args[0], actions, attributes, args, env);
            if (rc != 0)
                throw new WorkloadLaunchException($"posix_spawn {argv[0]}: {Errno.Describe(rc)}");
            return pid;
        }
        finally
        {
            Libc.PosixSpawnFileActionsDestroy(actions);
            Libc.PosixSpawnAttrDestroy(attributes);
            foreach (nint p in strings)
                NativeMemory.Free((void*)p);
        }
    }

    private static byte* Utf8(string s)
    {
        int n = Encoding.UTF8.GetByteCount(s);
        if (s.Contains('\0'))
            throw new ArgumentException($"argument or environment entry contains NUL: {s}");
        byte* p = (byte*)NativeMemory.Alloc((nuint)n + 1);
        Encoding.UTF8.GetBytes(s, new Span<byte>(p, n));
        p[n] = 0;
        return p;
    }

    private static void Check(int rc, string what)
    {
        if (rc != 0)
            throw new WorkloadLaunchException($"{what}: {Errno.Describe(rc)}");
    }

    /// <summary>Waits for the launcher's one message: "L" with the listener fd, or "E" with its error.</summary>
    private static SafeFileHandle ReceiveListener(SafeFileHandle socket, int pid, SafeFileHandle pidFd, TimeSpan timeout)
    {
        int fd = (int)socket.DangerousGetHandle();
        var poll = new Libc.PollFd { Fd = fd, Events = Libc.POLLIN };
        int ready;
        while ((ready = Libc.Poll(&poll, 1, (int)timeout.TotalMilliseconds)) < 0 && Libc.LastErrno == Errno.EINTR)
        {
        }
        if (ready == 0)
            throw new WorkloadLaunchException($"mis-launch (pid {pid}) did not hand its seccomp listener over within {timeout}");

        byte* data = stackalloc byte[1024];
        const int controlSize = 24; // CMSG_SPACE(sizeof(int))
        byte* control = stackalloc byte[controlSize];
        new Span<byte>(control, controlSize).Clear();
        var iov = new Libc.IoVec { Base = data, Length = 1023 };
        var msg = new Libc.MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = controlSize };
        nint n;
        while ((n = Libc.RecvMsg(fd, &msg, Libc.MSG_CMSG_CLOEXEC)) < 0 && Libc.LastErrno == Errno.EINTR)
        {
        }
        int received = -1;
        // struct cmsghdr { size_t len; int level; int type; } then the data.
        if (msg.ControlLength >= 20 && *(int*)(control + 8) == Libc.SOL_SOCKET && *(int*)(control + 12) == Libc.SCM_RIGHTS)
            received = *(int*)(control + 16);
        if (n > 0 && data[0] == 'L' && received >= 0)
            return new SafeFileHandle(received, ownsHandle: true);
        if (received >= 0)
            Libc.Close(received);
        if (n > 0 && data[0] == 'E')
            throw new WorkloadLaunchException($"mis-launch (pid {pid}) failed", Encoding.UTF8.GetString(data + 1, (int)n - 1));
        Libc.SigInfo info;
        string status = Libc.Syscall(Libc.SYS_waitid, Libc.P_PIDFD, pidFd.DangerousGetHandle(), (long)&info, Libc.WEXITED, 0) == 0
            ? info.Code == Libc.CLD_EXITED ? $"exited with {info.Status}" : $"killed by signal {info.Status}"
            : "status unknown";
        throw new WorkloadLaunchException($"mis-launch (pid {pid}) ended before handing its seccomp listener over ({status}); see its stderr");
    }

    private static ulong CgroupId(string cgroupPath)
    {
        Libc.Stat st;
        byte[] path = Encoding.UTF8.GetBytes(cgroupPath + "\0");
        fixed (byte* p = path)
            if (Libc.StatPath(p, &st) != 0)
                throw new WorkloadLaunchException($"stat {cgroupPath}: {Errno.Describe(Libc.LastErrno)}");
        return st.Ino; // a cgroup's id is its directory's inode number (kernfs)
    }
}
