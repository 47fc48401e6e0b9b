using System.Runtime.InteropServices;

namespace Mis.Native;

/// <summary>Hard links: publishing a file that must not overwrite one another process published first.</summary>
public static partial class Libc
{
    [LibraryImport(Library, EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LinkRaw(string existing, string created);

    /// <summary>
    /// link(2): gives the file <paramref name="existing"/> the further name <paramref name="created"/>,
    /// failing with EEXIST when that name exists — atomically, also over NFS. .NET's
    /// <c>File.Move(overwrite: false)</c> checks and then renames: two steps another process can
    /// come between.
    /// </summary>
    /// <returns>0, or the errno: <see cref="Errno.EEXIST"/> when <paramref name="created"/> exists; EPERM or EOPNOTSUPP on a filesystem without hard links.</returns>
    public static int Link(string existing, string created) => LinkRaw(existing, created) == 0 ? 0 : Marshal.GetLastPInvokeError();
}
