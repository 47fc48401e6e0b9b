using System.Runtime.InteropServices;

namespace Mis.Native;

/// <summary>errno values MIS reasons about, and a readable rendering of any errno.</summary>
public static class Errno
{
    /// <summary>Operation not permitted.</summary>
    public const int EPERM = 1;
    /// <summary>No such file or directory.</summary>
    public const int ENOENT = 2;
    /// <summary>No such process.</summary>
    public const int ESRCH = 3;
    /// <summary>Interrupted system call (a signal arrived while blocked: retry).</summary>
    public const int EINTR = 4;
    /// <summary>No such device or address (e.g. /dev/tty without a controlling terminal).</summary>
    public const int ENXIO = 6;
    /// <summary>Argument list too long (also: a size argument larger than the call accepts).</summary>
    public const int E2BIG = 7;
    /// <summary>Bad file descriptor.</summary>
    public const int EBADF = 9;
    /// <summary>No child processes (already reaped, by someone else too).</summary>
    public const int ECHILD = 10;
    /// <summary>Resource temporarily unavailable.</summary>
    public const int EAGAIN = 11;
    /// <summary>Operation would block: the same number as <see cref="EAGAIN"/> on Linux.</summary>
    public const int EWOULDBLOCK = EAGAIN;
    /// <summary>Permission denied.</summary>
    public const int EACCES = 13;
    /// <summary>Bad address.</summary>
    public const int EFAULT = 14;
    /// <summary>Device or resource busy.</summary>
    public const int EBUSY = 16;
    /// <summary>File exists.</summary>
    public const int EEXIST = 17;
    /// <summary>Cross-device link.</summary>
    public const int EXDEV = 18;
    /// <summary>Is a directory.</summary>
    public const int EISDIR = 21;
    /// <summary>Invalid argument.</summary>
    public const int EINVAL = 22;
    /// <summary>Result too large (e.g. an xattr value larger than the buffer).</summary>
    public const int ERANGE = 34;
    /// <summary>File name too long.</summary>
    public const int ENAMETOOLONG = 36;
    /// <summary>Function not implemented.</summary>
    public const int ENOSYS = 38;
    /// <summary>Too many levels of symbolic links (or a symbolic link where none may be).</summary>
    public const int ELOOP = 40;
    /// <summary>Operation not supported.</summary>
    public const int EOPNOTSUPP = 95;

    private static readonly Dictionary<int, string> Names = new()
    {
        [EPERM] = "EPERM", [ENOENT] = "ENOENT", [ESRCH] = "ESRCH", [EINTR] = "EINTR", [ENXIO] = "ENXIO", [E2BIG] = "E2BIG",
        [EBADF] = "EBADF", [ECHILD] = "ECHILD", [EAGAIN] = "EAGAIN", [12] = "ENOMEM", [EACCES] = "EACCES", [EFAULT] = "EFAULT",
        [EBUSY] = "EBUSY", [EEXIST] = "EEXIST", [EXDEV] = "EXDEV", [19] = "ENODEV", [EISDIR] = "EISDIR", [EINVAL] = "EINVAL",
        [28] = "ENOSPC", [ERANGE] = "ERANGE", [ENAMETOOLONG] = "ENAMETOOLONG", [ENOSYS] = "ENOSYS", [ELOOP] = "ELOOP",
        [EOPNOTSUPP] = "EOPNOTSUPP", [524] = "ENOTSUPP",
    };

    /// <summary>The symbolic name, e.g. "EPERM", or "E&lt;n&gt;" for one not in the table.</summary>
    public static string Name(int errno) => Names.TryGetValue(errno, out var name) ? name : $"E{errno}";

    /// <summary>"EPERM (Operation not permitted)".</summary>
    public static string Describe(int errno) => errno == 524
        ? "ENOTSUPP (operation not supported by this kernel)"
        : $"{Name(errno)} ({Marshal.GetPInvokeErrorMessage(errno)})";
}
