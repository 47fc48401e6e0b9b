using System.Runtime.InteropServices;

namespace Mis.Native;

internal static unsafe partial class Libc
{
    // struct stat is 144 bytes on x86-64 and 128 on arm64; st_ino is the second field (offset 8)
    // on both. A generous buffer avoids depending on the rest of the layout.
    private const int StatBufferSize = 256;
    private const int StatInoOffset = 8;

    [LibraryImport(Library, EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int StatRaw(string path, byte* buffer);

    /// <summary>The inode number of <paramref name="path"/> (following symlinks).</summary>
    internal static ulong InodeOf(string path)
    {
        byte* buffer = stackalloc byte[StatBufferSize];
        if (StatRaw(path, buffer) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"cannot stat {path}: {Errno.Describe(errno)}", errno);
        }
        return *(ulong*)(buffer + StatInoOffset);
    }
}
