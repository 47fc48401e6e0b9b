using System.Runtime.InteropServices;

namespace Mis.Native;

/// <summary>File, path and per-thread credential calls for the seccomp supervisor (raw, errno-returning).</summary>
public static unsafe partial class Libc
{
    public const int AT_FDCWD = -100;
    public const int O_WRONLY = 0x1;
    public const int O_RDWR = 0x2;
    public const int O_ACCMODE = 0x3;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_NOCTTY = 0x100;
    public const int O_TRUNC = 0x200;
    public const int O_APPEND = 0x400;
    public const int O_NONBLOCK = 0x800;
    public const int O_DSYNC = 0x1000;
    public const int FASYNC = 0x2000;
    public const int O_DIRECT = 0x4000;
    /// <summary>The kernel's value (glibc defines O_LARGEFILE as 0 on x86-64).</summary>
    public const int O_LARGEFILE = 0x8000;
    public const int O_NOFOLLOW = 0x20000;
    public const int O_NOATIME = 0x40000;
    public const int O_PATH = 0x200000;
    public const int O_SYNC_BIT = 0x100000; // __O_SYNC
    public const int O_TMPFILE_BIT = 0x400000; // __O_TMPFILE (O_TMPFILE = __O_TMPFILE | O_DIRECTORY)

    public const int PROT_READ = 0x1;
    public const int MAP_SHARED = 0x01;

    /// <summary>mmap(2); <see cref="MapFailed"/> on failure.</summary>
    [LibraryImport(Library, EntryPoint = "mmap", SetLastError = true)]
    public static partial void* Mmap(void* address, nuint length, int protection, int flags, int fd, long offset);

    /// <summary>munmap(2).</summary>
    [LibraryImport(Library, EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(void* address, nuint length);

    /// <summary>What <see cref="Mmap"/> returns on failure.</summary>
    public static void* MapFailed => (void*)-1;

    public const ulong RESOLVE_NO_XDEV = 0x01;
    public const ulong RESOLVE_NO_MAGICLINKS = 0x02;
    public const ulong RESOLVE_NO_SYMLINKS = 0x04;
    public const ulong RESOLVE_BENEATH = 0x08;
    public const ulong RESOLVE_IN_ROOT = 0x10;

    public const long SYS_getgroups = 115;
    public const long SYS_setgroups = 116;
    public const long SYS_setfsuid = 122;
    public const long SYS_setfsgid = 123;
    public const long SYS_capget = 125;
    public const long SYS_capset = 126;
    internal const long SYS_gettid = 186;
    public const long SYS_unshare = 272;
    internal const long SYS_openat2 = 437;
    internal const long SYS_statx = 332;
    public const int CLONE_FS = 0x200;

    /// <summary>struct open_how (linux/openat2.h).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    /// <summary>The fields of struct stat (x86-64, 144 bytes) MIS reads.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 144)]
    public struct Stat
    {
        [FieldOffset(0)] public ulong Dev;
        [FieldOffset(8)] public ulong Ino;
        [FieldOffset(16)] public ulong Nlink;
        [FieldOffset(24)] public uint Mode;
        /// <summary>The device a character or block special file stands for (major/minor as the kernel's new_encode_dev).</summary>
        [FieldOffset(40)] public ulong Rdev;
        [FieldOffset(104)] public long CtimeSec;
        [FieldOffset(112)] public long CtimeNsec;
    }

    public const uint S_IFMT = 0xF000;
    public const uint S_IFIFO = 0x1000;
    public const uint S_IFCHR = 0x2000;
    public const uint S_IFDIR = 0x4000;
    public const uint S_IFREG = 0x8000;
    public const uint S_IFLNK = 0xA000;

    [LibraryImport(Library, EntryPoint = "syscall", SetLastError = true)]
    public static partial long Syscall(long number, long a1, long a2, long a3, long a4);

    [LibraryImport(Library, EntryPoint = "syscall", SetLastError = true)]
    public static partial long Syscall(long number, long a1, long a2, long a3, long a4, long a5);

    [LibraryImport(Library, EntryPoint = "open", SetLastError = true)]
    public static partial int Open(byte* path, int flags, int mode);

    [LibraryImport(Library, EntryPoint = "openat", SetLastError = true)]
    public static partial int OpenAt(int dirfd, byte* path, int flags, int mode);

    [LibraryImport(Library, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Library, EntryPoint = "dup", SetLastError = true)]
    public static partial int Dup(int fd);

    [LibraryImport(Library, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buffer, nint count);

    [LibraryImport(Library, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buffer, nint count);

    [LibraryImport(Library, EntryPoint = "pread", SetLastError = true)]
    public static partial nint PRead(int fd, byte* buffer, nint count, long offset);

    [LibraryImport(Library, EntryPoint = "readlinkat", SetLastError = true)]
    public static partial nint ReadLinkAt(int dirfd, byte* path, byte* buffer, nint size);

    [LibraryImport(Library, EntryPoint = "fstat", SetLastError = true)]
    public static partial int FStat(int fd, Stat* stat);

    /// <summary>
    /// The mount id and inode number of an open file (statx with AT_EMPTY_PATH, STATX_MNT_ID:
    /// Linux 5.8+); false when the kernel cannot say (errno set, or no mount id reported).
    /// </summary>
    public static bool MountAndInode(int fd, out ulong mountId, out ulong inode)
    {
        const int AtEmptyPath = 0x1000, StatxIno = 0x100, StatxMntId = 0x1000;
        byte* buffer = stackalloc byte[256]; // struct statx
        byte* empty = stackalloc byte[1];
        empty[0] = 0;
        mountId = inode = 0;
        if (Syscall(SYS_statx, fd, (long)empty, AtEmptyPath, StatxIno | StatxMntId, (long)buffer) != 0
            || (*(uint*)buffer & StatxMntId) == 0)
            return false;
        inode = *(ulong*)(buffer + 32);   // stx_ino
        mountId = *(ulong*)(buffer + 144); // stx_mnt_id
        return true;
    }

    [LibraryImport(Library, EntryPoint = "stat", SetLastError = true)]
    public static partial int StatPath(byte* path, Stat* stat);

    [LibraryImport(Library, EntryPoint = "fcntl", SetLastError = true)]
    internal static partial int Fcntl(int fd, int cmd, long arg);

    [LibraryImport(Library, EntryPoint = "umask")]
    public static partial uint Umask(uint mask);

    [LibraryImport(Library, EntryPoint = "lstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int LStat(string path, Stat* stat);

    [LibraryImport(Library, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int OpenPath(string path, int flags, int mode);

    [LibraryImport(Library, EntryPoint = "flock", SetLastError = true)]
    internal static partial int Flock(int fd, int operation);

    /// <summary>realpath(3) with a NULL buffer: the result is malloc'ed and must go to <see cref="Free"/>.</summary>
    [LibraryImport(Library, EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint RealPath(string path, nint resolved);

    [LibraryImport(Library, EntryPoint = "free")]
    internal static partial void Free(nint pointer);

    /// <summary>openat2(2): returns the fd or -1 with errno.</summary>
    public static int OpenAt2(int dirfd, byte* path, in OpenHow how)
    {
        fixed (OpenHow* h = &how)
            return (int)Syscall(SYS_openat2, dirfd, (long)path, (long)h, sizeof(OpenHow));
    }

    /// <summary>The thread's own id (what seccomp notifications and /proc/PID/task name).</summary>
    internal static int GetTid() => (int)Syscall(SYS_gettid, 0, 0, 0);

    /// <summary>errno of the last failed call on this thread.</summary>
    public static int LastErrno => Marshal.GetLastPInvokeError();
}
