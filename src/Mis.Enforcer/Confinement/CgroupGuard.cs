using Microsoft.Win32.SafeHandles;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>
/// The dead-man switch for one cgroup parent (e.g. "&lt;mount&gt;/mis"): a <c>mis-launch --guard</c>
/// process whose stdin is a pipe only this object writes to. However the enforcer ends — even
/// SIGKILL — the kernel closes the write end, the guard reads EOF, writes "1" to cgroup.kill of
/// every child cgroup and removes them. PDEATHSIG alone covers only each launcher itself, not what
/// the workload forked. Disposing this object triggers the same (the normal shutdown path).
/// Limitation: a guard killed together with the enforcer (same cgroup killed by a service
/// manager, or the whole process group SIGKILLed) cannot act; it runs in its own session so a
/// terminal's ^C does not reach it.
/// </summary>
public sealed unsafe class CgroupGuard : IDisposable
{

    private readonly SafeFileHandle _pidFd;
    private readonly int _writeEnd;
    private int _released;

    private CgroupGuard(int pid, SafeFileHandle pidFd, int writeEnd, string parent)
    {
        Pid = pid;
        _pidFd = pidFd;
        _writeEnd = writeEnd;
        Parent = parent;
    }

    /// <summary>The guard process.</summary>
    internal int Pid { get; }

    /// <summary>The cgroup parent it guards.</summary>
    internal string Parent { get; }

    /// <summary>Starts a guard for <paramref name="cgroupParent"/> (which must exist).</summary>
    internal static CgroupGuard Start(string cgroupParent, string? launcherPath = null)
    {
        if (!Directory.Exists(cgroupParent))
            throw new ArgumentException($"{cgroupParent} does not exist", nameof(cgroupParent));
        string launcher = new WorkloadLauncher(launcherPath).LauncherPath;
        int* pipe = stackalloc int[2];
        if (Libc.Pipe2(pipe, Libc.O_CLOEXEC) != 0)
            throw new IOException($"pipe2: {Errno.Describe(Libc.LastErrno)}");
        int readEnd = pipe[0], writeEnd = pipe[1];
        int pid;
        try
        {
            pid = SpawnThread.Run(() => Spawn(launcher, cgroupParent, readEnd));
        }
        catch
        {
            Libc.Close(writeEnd);
            throw;
        }
        finally
        {
            Libc.Close(readEnd);
        }
        int pidFd = (int)Libc.Syscall(Libc.SYS_pidfd_open, pid, 0, 0);
        return new CgroupGuard(pid, new SafeFileHandle(pidFd, ownsHandle: true), writeEnd, cgroupParent);
    }

    /// <summary>
    /// Closes the guard's stdin — it kills and removes every child cgroup of <see cref="Parent"/> —
    /// and waits for it up to <paramref name="timeout"/>; returns its exit code (0: all removed), or
    /// null on timeout.
    /// </summary>
    internal int? Release(TimeSpan timeout)
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
            Libc.Close(_writeEnd);
        if (_pidFd.IsInvalid)
            return null;
        var poll = new Libc.PollFd { Fd = (int)_pidFd.DangerousGetHandle(), Events = Libc.POLLIN };
        int ready;
        while ((ready = Libc.Poll(&poll, 1, (int)timeout.TotalMilliseconds)) < 0 && Libc.LastErrno == Errno.EINTR)
        {
        }
        if (ready <= 0)
            return null;
        Libc.SigInfo info;
        return Libc.Syscall(Libc.SYS_waitid, Libc.P_PIDFD, _pidFd.DangerousGetHandle(), (long)&info, Libc.WEXITED, 0) == 0
            && info.Code == Libc.CLD_EXITED ? info.Status : null;
    }

    /// <summary>Same as <see cref="Release"/> with a 10 s wait.</summary>
    public void Dispose()
    {
        Release(TimeSpan.FromSeconds(10));
        _pidFd.Dispose();
    }

    private static int Spawn(string launcher, string cgroupParent, int stdin)
    {
        byte* fa = stackalloc byte[Libc.SpawnFileActionsSize];
        byte* attr = stackalloc byte[Libc.SpawnAttrSize];
        byte* all = stackalloc byte[Libc.SigSetSize];
        byte* none = stackalloc byte[Libc.SigSetSize];
        byte*[] strings = [Utf8(launcher), Utf8("--guard"), Utf8(cgroupParent)];
        try
        {
            Libc.PosixSpawnFileActionsInit(fa);
            Libc.PosixSpawnAttrInit(attr);
            Libc.PosixSpawnFileActionsAddDup2(fa, stdin, 0);
            Libc.SigFillSet(all);
            Libc.SigEmptySet(none);
            Libc.PosixSpawnAttrSetSigDefault(attr, all);
            Libc.PosixSpawnAttrSetSigMask(attr, none);
            Libc.PosixSpawnAttrSetFlags(attr, Libc.POSIX_SPAWN_SETSIGDEF | Libc.POSIX_SPAWN_SETSIGMASK);
            byte** argv = stackalloc byte*[4] { strings[0], strings[1], strings[2], null };
            byte** envp = stackalloc byte*[1] { null };
            int pid;
            int rc = Libc.PosixSpawn(&pid, argv[0], fa, attr, argv, envp);
            if (rc != 0)
                throw new IOException($"posix_spawn {launcher} --guard: {Errno.Describe(rc)}");
            return pid;
        }
        finally
        {
            Libc.PosixSpawnFileActionsDestroy(fa);
            Libc.PosixSpawnAttrDestroy(attr);
            foreach (byte* s in strings)
                System.Runtime.InteropServices.NativeMemory.Free(s);
        }
    }

    private static byte* Utf8(string s)
    {
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(s + "\0");
        byte* p = (byte*)System.Runtime.InteropServices.NativeMemory.Alloc((nuint)bytes.Length);
        bytes.AsSpan().CopyTo(new Span<byte>(p, bytes.Length));
        return p;
    }
}
