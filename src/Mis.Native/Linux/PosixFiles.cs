using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Mis.Native;

/// <summary>
/// File calls .NET does not expose, or exposes with behaviour MIS cannot use: the process umask,
/// lstat's file type, realpath(3), open(2) without .NET's own advisory lock, and flock(2).
/// Failures come back as errno values, for callers that word their own messages.
/// </summary>
public static unsafe class PosixFiles
{
    /// <summary>flock(2): exclusive lock.</summary>
    public const int LOCK_EX = 2;
    /// <summary>flock(2): fail with <see cref="Errno.EWOULDBLOCK"/> instead of waiting.</summary>
    public const int LOCK_NB = 4;
    /// <summary>flock(2): release.</summary>
    public const int LOCK_UN = 8;

    /// <summary>Sets the process umask (process-wide: every thread's file creation sees it); returns the previous one.</summary>
    public static uint SetUmask(uint mask) => Libc.Umask(mask);

    /// <summary>
    /// The file type bits (<c>st_mode &amp; S_IFMT</c>) of <paramref name="path"/> itself, a
    /// symbolic link not followed (lstat); null when it does not exist or cannot be examined.
    /// </summary>
    public static UnixFileType? TypeOf(string path)
    {
        Libc.Stat stat;
        return Libc.LStat(path, &stat) == 0 ? (UnixFileType)(stat.Mode & Libc.S_IFMT) : null;
    }

    /// <summary>Every component resolved (symbolic links included), as the kernel will open it; null when it does not exist.</summary>
    public static string? RealPath(string path)
    {
        nint resolved = Libc.RealPath(path, 0);
        if (resolved == 0)
            return null;
        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            Libc.Free(resolved);
        }
    }

    /// <summary>
    /// open(2) read-write, created with <paramref name="mode"/> when missing, close-on-exec. Not
    /// FileStream: .NET takes a shared flock of its own on open, which a holder's exclusive lock
    /// would refuse. Null with <paramref name="errno"/> set when the open failed.
    /// </summary>
    public static SafeFileHandle? OpenOrCreate(string path, UnixFileMode mode, out int errno)
    {
        int fd = Libc.OpenPath(path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_CLOEXEC, (int)mode);
        errno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
        return fd < 0 ? null : new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>flock(2) with <see cref="LOCK_EX"/>, <see cref="LOCK_NB"/>, <see cref="LOCK_UN"/>; returns 0 or the errno.</summary>
    public static int Flock(SafeFileHandle file, int operation) =>
        Libc.Flock((int)file.DangerousGetHandle(), operation) == 0 ? 0 : Marshal.GetLastPInvokeError();
}

/// <summary>The file type bits of <c>st_mode</c> (<c>S_IFMT</c>).</summary>
public enum UnixFileType : uint
{
    /// <summary>A named pipe.</summary>
    Fifo = 0x1000,
    /// <summary>A character device.</summary>
    CharacterDevice = 0x2000,
    /// <summary>A directory.</summary>
    Directory = 0x4000,
    /// <summary>A block device.</summary>
    BlockDevice = 0x6000,
    /// <summary>A regular file.</summary>
    RegularFile = 0x8000,
    /// <summary>A symbolic link.</summary>
    SymbolicLink = 0xA000,
    /// <summary>A Unix-domain socket.</summary>
    Socket = 0xC000,
}
