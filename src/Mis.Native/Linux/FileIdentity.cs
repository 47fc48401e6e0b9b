using System.Runtime.InteropServices;

namespace Mis.Native;

/// <summary>
/// The (device, inode) pair that names a file whatever path reached it (symlink, hard link,
/// <c>/proc/self/root/...</c>). Device is the kernel's <c>st_dev</c> as user space sees it.
/// </summary>
public readonly record struct FileIdentity(ulong Device, ulong Inode)
{
    /// <summary>The identity of the file at <paramref name="path"/> (symlinks followed), or null if it does not exist.</summary>
    public static FileIdentity? Of(string path)
    {
        var buffer = new StatBuffer();
        return Stat(path, ref buffer) == 0 ? new FileIdentity(buffer.Device, buffer.Inode) : null;
    }

    // struct stat on x86-64 and arm64 starts with st_dev (u64) and st_ino (u64); the remaining
    // 128 bytes are not read. The buffer is sized for the largest (144 bytes on x86-64).
    [StructLayout(LayoutKind.Sequential, Size = 256)]
    private struct StatBuffer
    {
        internal ulong Device;
        internal ulong Inode;
    }

    [DllImport("libc", EntryPoint = "stat", SetLastError = true)]
    private static extern int Stat([MarshalAs(UnmanagedType.LPUTF8Str)] string path, ref StatBuffer buffer);
}
