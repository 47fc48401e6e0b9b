using System.Runtime.InteropServices;
using System.Text;

namespace Mis.Native;

/// <summary>
/// Look-ups in the user and group databases through NSS (getpwuid_r, getgrnam_r), and chown(2),
/// for the enforcer's socket and its callers. Thread-safe: the reentrant calls only.
/// </summary>
public static unsafe class Accounts
{
    private const int BufferSize = 16384;

    /// <summary>The account name of <paramref name="uid"/>, or null when the passwd database has none.</summary>
    /// <exception cref="IOException">The database could not be read.</exception>
    public static string? UserName(uint uid)
    {
        byte[] buffer = new byte[BufferSize];
        Libc.Passwd entry;
        Libc.Passwd* result = null;
        int rc;
        fixed (byte* b = buffer)
            rc = Libc.GetPwUidR(uid, &entry, b, buffer.Length, &result);
        if (rc != 0)
            throw new IOException($"cannot look up uid {uid}: {Errno.Describe(rc)}");
        return result == null ? null : Marshal.PtrToStringUTF8((nint)entry.Name);
    }

    /// <summary>The gid of the group called <paramref name="name"/>, or null when the group database has none.</summary>
    /// <exception cref="IOException">The database could not be read.</exception>
    public static uint? GroupId(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        byte[] cname = Encoding.UTF8.GetBytes(name + "\0");
        byte[] buffer = new byte[BufferSize * 4]; // a group entry lists its members
        Libc.GroupEntry entry;
        Libc.GroupEntry* result = null;
        int rc;
        fixed (byte* n = cname)
        fixed (byte* b = buffer)
            rc = Libc.GetGrNamR(n, &entry, b, buffer.Length, &result);
        if (rc != 0)
            throw new IOException($"cannot look up group '{name}': {Errno.Describe(rc)}");
        return result == null ? null : entry.Gid;
    }

    /// <summary>chown(2): sets the owner and group of <paramref name="path"/> (following a symbolic link).</summary>
    /// <exception cref="IOException">chown failed (the message names the path and errno).</exception>
    public static void ChangeOwner(string path, uint uid, uint gid)
    {
        if (Libc.Chown(path, uid, gid) != 0)
            throw new IOException($"chown {path} {uid}:{gid}: {Errno.Describe(Marshal.GetLastPInvokeError())}");
    }
}
