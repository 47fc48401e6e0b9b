using System.Runtime.InteropServices;

namespace Mis.Native;

/// <summary>Process creation, sockets, pidfds and waiting, for the workload launcher (raw, errno-returning).</summary>
public static unsafe partial class Libc
{
    public const int AF_UNIX = 1;
    public const int SOCK_SEQPACKET = 5;
    public const int SOCK_CLOEXEC = 0x80000;
    public const int SOL_SOCKET = 1;
    public const int SCM_RIGHTS = 1;
    public const int MSG_CMSG_CLOEXEC = 0x40000000;
    public const int MSG_NOSIGNAL = 0x4000;

    public const short POLLIN = 0x1;
    public const short POLLERR = 0x8;
    public const short POLLHUP = 0x10;
    public const short POLLNVAL = 0x20;

    public const long SYS_waitid = 247;
    public const long SYS_pidfd_send_signal = 424;
    public const long SYS_pidfd_open = 434;
    public const long SYS_pidfd_getfd = 438;
    public const int PIDFD_THREAD = 0x80; // O_EXCL: a pidfd for one thread (6.9+)
    public const int P_PIDFD = 3;
    public const int WEXITED = 4;
    internal const int WNOHANG = 1;
    public const int CLD_EXITED = 1;
    internal const int CLD_KILLED = 2;
    internal const int CLD_DUMPED = 3;

    public const short POSIX_SPAWN_SETSIGDEF = 0x4;
    public const short POSIX_SPAWN_SETSIGMASK = 0x8;

    public const int EFD_CLOEXEC = 0x80000;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    /// <summary>
    /// process_vm_readv(2): copies from another process's memory in one syscall (no /proc file to
    /// open). Respects page protections, as the kernel's own copy from the caller would; a remote
    /// element that meets an unmapped page ends the transfer with what was copied before it.
    /// </summary>
    [LibraryImport(Library, EntryPoint = "process_vm_readv", SetLastError = true)]
    public static partial nint ProcessVmReadv(int pid, IoVec* local, nuint localCount, IoVec* remote, nuint remoteCount, nuint flags);

    /// <summary>Bytes of the CPU masks passed to <see cref="SchedGetAffinity"/> and <see cref="SchedSetAffinity"/> (1024 CPUs, glibc's cpu_set_t).</summary>
    public const int CpuMaskBytes = 128;

    /// <summary>sched_getaffinity(2): the CPUs thread <paramref name="tid"/> may run on; bytes written or -1.</summary>
    [LibraryImport(Library, EntryPoint = "sched_getaffinity", SetLastError = true)]
    public static partial int SchedGetAffinity(int tid, nint size, byte* mask);

    /// <summary>sched_setaffinity(2): restricts thread <paramref name="tid"/> to the CPUs of <paramref name="mask"/>; 0 or -1.</summary>
    [LibraryImport(Library, EntryPoint = "sched_setaffinity", SetLastError = true)]
    public static partial int SchedSetAffinity(int tid, nint size, byte* mask);

    /// <summary>sched_getcpu(3): the CPU the calling thread runs on now (rseq, no syscall), or -1.</summary>
    [LibraryImport(Library, EntryPoint = "sched_getcpu")]
    public static partial int SchedGetCpu();

    [StructLayout(LayoutKind.Sequential)]
    public struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    /// <summary>The SIGCHLD part of siginfo_t (128 bytes on x86-64).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 128)]
    public struct SigInfo
    {
        [FieldOffset(0)] public int Signo;
        [FieldOffset(8)] public int Code;
        [FieldOffset(16)] public int Pid;
        [FieldOffset(24)] public int Status;
    }

    /// <summary>struct group (x86-64).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct GroupEntry
    {
        public byte* Name;
        public byte* Password;
        public uint Gid;
        public byte** Members;
    }

    /// <summary>struct passwd (x86-64).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Passwd
    {
        public byte* Name;
        public byte* Password;
        public uint Uid;
        public uint Gid;
        public byte* Gecos;
        public byte* Dir;
        public byte* Shell;
    }

    [LibraryImport(Library, EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport(Library, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, ulong request, void* argument);

    [LibraryImport(Library, EntryPoint = "socketpair", SetLastError = true)]
    public static partial int SocketPair(int domain, int type, int protocol, int* fds);

    [LibraryImport(Library, EntryPoint = "recvmsg", SetLastError = true)]
    public static partial nint RecvMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport(Library, EntryPoint = "send", SetLastError = true)]
    public static partial nint Send(int fd, byte* buffer, nint length, int flags);

    [LibraryImport(Library, EntryPoint = "pipe2", SetLastError = true)]
    public static partial int Pipe2(int* fds, int flags);

    [LibraryImport(Library, EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initial, int flags);

    [LibraryImport(Library, EntryPoint = "getpwnam_r")]
    public static partial int GetPwNamR(byte* name, Passwd* entry, byte* buffer, nint length, Passwd** result);

    [LibraryImport(Library, EntryPoint = "getpwuid_r")]
    public static partial int GetPwUidR(uint uid, Passwd* entry, byte* buffer, nint length, Passwd** result);

    [LibraryImport(Library, EntryPoint = "getgrnam_r")]
    public static partial int GetGrNamR(byte* name, GroupEntry* entry, byte* buffer, nint length, GroupEntry** result);

    [LibraryImport(Library, EntryPoint = "chown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Chown(string path, uint owner, uint group);

    // posix_spawn returns an errno value instead of setting errno.
    [LibraryImport(Library, EntryPoint = "posix_spawn")]
    public static partial int PosixSpawn(int* pid, byte* path, void* fileActions, void* attributes, byte** argv, byte** envp);

    [LibraryImport(Library, EntryPoint = "posix_spawn_file_actions_init")]
    public static partial int PosixSpawnFileActionsInit(void* actions);

    [LibraryImport(Library, EntryPoint = "posix_spawn_file_actions_adddup2")]
    public static partial int PosixSpawnFileActionsAddDup2(void* actions, int fd, int newFd);

    [LibraryImport(Library, EntryPoint = "posix_spawn_file_actions_destroy")]
    public static partial int PosixSpawnFileActionsDestroy(void* actions);

    [LibraryImport(Library, EntryPoint = "posix_spawnattr_init")]
    public static partial int PosixSpawnAttrInit(void* attributes);

    [LibraryImport(Library, EntryPoint = "posix_spawnattr_setflags")]
    public static partial int PosixSpawnAttrSetFlags(void* attributes, short flags);

    [LibraryImport(Library, EntryPoint = "posix_spawnattr_setsigmask")]
    public static partial int PosixSpawnAttrSetSigMask(void* attributes, void* sigset);

    [LibraryImport(Library, EntryPoint = "posix_spawnattr_setsigdefault")]
    public static partial int PosixSpawnAttrSetSigDefault(void* attributes, void* sigset);

    [LibraryImport(Library, EntryPoint = "posix_spawnattr_destroy")]
    public static partial int PosixSpawnAttrDestroy(void* attributes);

    [LibraryImport(Library, EntryPoint = "kill", SetLastError = true)]
    internal static partial int Kill(int pid, int signal);

    [LibraryImport(Library, EntryPoint = "geteuid")]
    public static partial uint Geteuid();

    [LibraryImport(Library, EntryPoint = "sigemptyset")]
    public static partial int SigEmptySet(void* set);

    [LibraryImport(Library, EntryPoint = "sigfillset")]
    public static partial int SigFillSet(void* set);

    /// <summary>Sizes of glibc's opaque spawn types on x86-64 (80, 336, 128 bytes), rounded up for headroom.</summary>
    public const int SpawnFileActionsSize = 128;
    public const int SpawnAttrSize = 512;
    public const int SigSetSize = 128;
}
