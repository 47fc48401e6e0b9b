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
    /// <summary>No such device or address (e.g. /dev/tty without a controlling terminal).</summary>
    public const int ENXIO = 6;
    /// <summary>Resource temporarily unavailable.</summary>
    public const int EAGAIN = 11;
    /// <summary>Permission denied.</summary>
    public const int EACCES = 13;
    /// <summary>Device or resource busy.</summary>
    public const int EBUSY = 16;
    /// <summary>File exists.</summary>
    public const int EEXIST = 17;
    /// <summary>Invalid argument.</summary>
    public const int EINVAL = 22;
    /// <summary>Function not implemented.</summary>
    public const int ENOSYS = 38;
    /// <summary>Operation not supported.</summary>
    public const int EOPNOTSUPP = 95;

    private static readonly Dictionary<int, string> Names = new()
    {
        [EPERM] = "EPERM", [ENOENT] = "ENOENT", [ESRCH] = "ESRCH", [ENXIO] = "ENXIO", [EAGAIN] = "EAGAIN", [EACCES] = "EACCES",
        [EBUSY] = "EBUSY", [EEXIST] = "EEXIST", [EINVAL] = "EINVAL", [ENOSYS] = "ENOSYS",
        [EOPNOTSUPP] = "EOPNOTSUPP", [7] = "E2BIG", [9] = "EBADF", [12] = "ENOMEM", [14] = "EFAULT",
        [19] = "ENODEV", [28] = "ENOSPC", [524] = "ENOTSUPP",
    };

    /// <summary>The symbolic name, e.g. "EPERM", or "E&lt;n&gt;" for one not in the table.</summary>
    public static string Name(int errno) => Names.TryGetValue(errno, out var name) ? name : $"E{errno}";

    /// <summary>"EPERM (Operation not permitted)".</summary>
    public static string Describe(int errno) => errno == 524
        ? "ENOTSUPP (operation not supported by this kernel)"
        : $"{Name(errno)} ({Marshal.GetPInvokeErrorMessage(errno)})";
}
