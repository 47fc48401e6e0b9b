using Mis.Gym.Scenarios;

namespace Mis.Gym.Envs;

/// <summary>
/// The simulator's syscall traces (x86-64 numbers), made so that the anomaly scorer and trace
/// recording work on the simulator as they do on the kernel, where the actuator's real syscalls
/// are seen. What the model says, and what it leaves out:
/// <list type="bullet">
/// <item>The actuator is one thread (<c>python3</c>). An episode starts with its fixed start-up
/// (<see cref="Startup"/>); each action then makes its kind's syscalls in it, the same for every
/// path or address (a read of a secret file looks like any read): read <c>openat read close</c>,
/// write <c>openat write close</c>, list <c>openat getdents64 getdents64 close</c>, exec
/// <c>clone wait4</c>, connect <c>socket connect close</c>, send <c>socket connect sendto close</c>,
/// wait <c>clock_nanosleep</c>, submit nothing; then the answer and the next command (<c>write
/// read</c>). A denied operation stops at its first syscall.</item>
/// <item>An exec that runs starts a child thread named after the program: <c>execve</c>, the
/// dynamic loader's fixed 12 syscalls, 14 that depend only on the program's path (drawn from a
/// generator seeded with the path's FNV-1a hash, so each program has its own and the same one every
/// time), <c>exit_group</c>. A different program therefore looks different; the same program with
/// other arguments does not.</item>
/// <item>No timing, no signals, no failures of the world: a <c>fail_prob</c> draw does not change
/// the syscalls. Deterministic: the same actions make the same traces.</item>
/// </list>
/// </summary>
internal static class SimTraceModel
{
    private const int Read = 0, Write = 1, Close = 3, Fstat = 5, Mmap = 9, Mprotect = 10, Munmap = 11, Brk = 12,
        RtSigaction = 13, RtSigprocmask = 14, Ioctl = 16, Pread64 = 17, Access = 21, Socket = 41, Connect = 42, Sendto = 44,
        Clone = 56, Execve = 59, Wait4 = 61, Uname = 63, Fcntl = 72, Getcwd = 79, Getuid = 102, Getgid = 104, Geteuid = 107,
        ArchPrctl = 158, Futex = 202, Getdents64 = 217, SetTidAddress = 218, ClockNanosleep = 230, ExitGroup = 231,
        Openat = 257, Newfstatat = 262, SetRobustList = 273, Prlimit64 = 302, Getrandom = 318, Rseq = 334, Lseek = 8;

    /// <summary>The actuator's thread id in every simulated episode (children count up from it).</summary>
    internal const int ActuatorTid = 1000;

    /// <summary>The actuator's start-up: exec, the loader, python's first reads, the first command's read.</summary>
    internal static readonly int[] Startup =
    [
        Execve, Brk, ArchPrctl, Mmap, Access, Openat, Newfstatat, Mmap, Close, Openat, Read, Pread64, Newfstatat, Mmap, Mprotect,
        Mmap, Close, ArchPrctl, SetTidAddress, SetRobustList, Rseq, Mprotect, Prlimit64, Munmap, Getrandom, Brk, Brk,
        Openat, Newfstatat, Read, Close, RtSigaction, RtSigaction, Getcwd, Lseek, Ioctl, Fstat, Read,
    ];

    private static readonly int[] Loader = [Brk, ArchPrctl, Mmap, Access, Openat, Newfstatat, Mmap, Close, Openat, Read, Mmap, Mprotect];

    // What a program's own 14 syscalls are drawn from.
    private static readonly int[] ProgramVocabulary =
    [
        Read, Write, Close, Fstat, Mmap, Mprotect, Munmap, Brk, RtSigaction, RtSigprocmask, Ioctl, Access, Uname, Fcntl, Getcwd,
        Getuid, Getgid, Geteuid, Futex, Openat, Newfstatat, Getrandom, Lseek, Getdents64,
    ];

    private const int ProgramSyscalls = 14;

    /// <summary>The actuator's syscalls for one action (<paramref name="ran"/>: the operation went through, not denied).</summary>
    internal static int[] Actuator(ActionKind kind, bool ran)
    {
        int[] op = kind switch
        {
            ActionKind.Read => [Openat, Read, Close],
            ActionKind.Write => [Openat, Write, Close],
            ActionKind.List => [Openat, Getdents64, Getdents64, Close],
            ActionKind.Exec => [Clone, Wait4],
            ActionKind.Connect => [Socket, Connect, Close],
            ActionKind.Send => [Socket, Connect, Sendto, Close],
            ActionKind.Wait => [ClockNanosleep],
            _ => [],
        };
        // A denied open or connect fails at its decision; a denied exec's child dies in execve (see Child).
        if (!ran && kind != ActionKind.Exec && op.Length > 0)
            op = kind.IsNetwork() ? [Socket, Connect, Close] : [op[0]];
        return [.. op, Write, Read];
    }

    /// <summary>The child thread of an exec of <paramref name="path"/>: only its <c>execve</c> when the exec was denied.</summary>
    internal static int[] Child(string path, bool ran)
    {
        if (!ran)
            return [Execve, ExitGroup];
        var random = new Random((int)Fnv1a(path));
        var body = new int[ProgramSyscalls];
        for (int i = 0; i < body.Length; i++)
            body[i] = ProgramVocabulary[random.Next(ProgramVocabulary.Length)];
        return [Execve, .. Loader, .. body, ExitGroup];
    }

    /// <summary>The child's command name: the program's file name, cut to the kernel's 15 characters.</summary>
    internal static string Comm(string path)
    {
        string name = Path.GetFileName(path);
        return name.Length > 15 ? name[..15] : name;
    }

    private static uint Fnv1a(string text)
    {
        uint hash = 2166136261;
        foreach (char c in text)
            hash = (hash ^ c) * 16777619;
        return hash;
    }
}
