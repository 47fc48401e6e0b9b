using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Mis.Native;

/// <summary>The few libc calls MIS needs that .NET does not expose.</summary>
public static unsafe partial class Libc
{
    private const string Library = "libc";

    public const int O_RDONLY = 0;
    public const int O_DIRECTORY = 0x10000;
    public const int O_CLOEXEC = 0x80000;

    /// <summary>x86-64 syscall numbers (MIS targets x86-64 hosts; see ARCHITECTURE).</summary>
    internal const long SYS_seccomp = 317;
    internal const long SYS_landlock_create_ruleset = 444;

    [LibraryImport(Library, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenRaw(string path, int flags);

    [LibraryImport(Library, EntryPoint = "syscall", SetLastError = true)]
    public static partial long Syscall(long number, long a1, long a2, long a3);

    /// <summary>Opens a directory read-only (e.g. a cgroup, for attaching programs to it).</summary>
    public static SafeFileHandle OpenDirectory(string path)
    {
        int fd = OpenRaw(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"cannot open directory {path}: {Errno.Describe(errno)}", errno);
        }
        return new SafeFileHandle(fd, ownsHandle: true);
    }
}
