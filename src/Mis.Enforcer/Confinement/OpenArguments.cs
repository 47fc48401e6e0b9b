using System.Text;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>
/// The open syscalls' arguments as the kernel sees them: flags sanitised like open(2) does,
/// openat2's struct copied like copy_struct_from_user, validity judged by the kernel itself.
/// </summary>
public static unsafe class OpenArguments
{

    /// <summary>VALID_OPEN_FLAGS (include/linux/fcntl.h): what open/openat keep of their flags.</summary>
    private const int ValidOpenFlags = Libc.O_ACCMODE | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOCTTY | Libc.O_TRUNC
        | Libc.O_APPEND | Libc.O_NONBLOCK | Libc.O_SYNC_BIT | Libc.O_DSYNC | Libc.FASYNC | Libc.O_DIRECT
        | Libc.O_LARGEFILE | Libc.O_DIRECTORY | Libc.O_NOFOLLOW | Libc.O_NOATIME | Libc.O_CLOEXEC | Libc.O_PATH
        | Libc.O_TMPFILE_BIT;

    private const int OPathFlags = Libc.O_DIRECTORY | Libc.O_NOFOLLOW | Libc.O_PATH | Libc.O_CLOEXEC;

    /// <summary>build_open_how (fs/open.c): what open/openat/creat hand to the common open path.</summary>
    internal static Libc.OpenHow LegacyHow(int flags, uint mode)
    {
        ulong f = (ulong)(flags & ValidOpenFlags);
        if ((f & Libc.O_PATH) != 0)
            f &= OPathFlags;
        else
            f |= Libc.O_LARGEFILE; // force_o_largefile() on 64-bit
        bool creates = (f & (Libc.O_CREAT | Libc.O_TMPFILE_BIT)) != 0;
        return new Libc.OpenHow { Flags = f, Mode = creates ? mode & 0xFFF : 0 };
    }

    /// <summary>Copies openat2's struct open_how like copy_struct_from_user: larger structs must be zero-padded.</summary>
    internal static int ReadOpenHow(int tid, ulong address, ulong size, out Libc.OpenHow how)
    {
        how = default;
        if (size < (ulong)sizeof(Libc.OpenHow))
            return Errno.EINVAL;
        if (size > 4096)
            return Errno.E2BIG;
        Span<byte> bytes = stackalloc byte[(int)size];
        int errno = ProcFacts.ReadBytes(tid, address, bytes);
        if (errno != 0)
            return errno;
        if (bytes[sizeof(Libc.OpenHow)..].ContainsAnyExcept((byte)0))
            return Errno.E2BIG;
        how = System.Runtime.InteropServices.MemoryMarshal.Read<Libc.OpenHow>(bytes);
        if ((how.Flags & Libc.O_PATH) == 0)
            how.Flags |= Libc.O_LARGEFILE;
        return 0;
    }

    /// <summary>
    /// Lets the kernel validate the flags, mode and resolve combination exactly as it would have
    /// (EINVAL, EAGAIN for RESOLVE_CACHED with O_CREAT, ...): it checks them before it looks at the
    /// dirfd, so a relative open from fd -1 answers EBADF for every valid combination.
    /// </summary>
    internal static int Validate(in Libc.OpenHow how)
    {
        fixed (byte* x = "x\0"u8)
        {
            int fd = Libc.OpenAt2(-1, x, how);
            if (fd >= 0)
            {
                Libc.Close(fd);
                return 0;
            }
            int errno = Libc.LastErrno;
            return errno == Errno.EBADF ? 0 : errno;
        }
    }

    /// <summary>"/proc/self[/...]" and "/proc/thread-self[/...]" → the workload's own entries (fast path; the resolver handles the rest).</summary>
    internal static byte[] RewriteProcSelf(byte[] path, int length, WorkloadTask task)
    {
        var span = path.AsSpan(0, length);
        int prefix = Prefix(span, "/proc/self"u8) ? 10 : Prefix(span, "/proc/thread-self"u8) ? 17 : 0;
        if (prefix == 0 || task.Tgid is not int tgid)
            return path;
        string replacement = prefix == 10 ? $"/proc/{tgid}" : $"/proc/{tgid}/task/{task.Tid}";
        return [.. Encoding.ASCII.GetBytes(replacement), .. span[prefix..], 0];
    }

    private static bool Prefix(ReadOnlySpan<byte> path, ReadOnlySpan<byte> prefix) =>
        path.StartsWith(prefix) && (path.Length == prefix.Length || path[prefix.Length] == '/');

}
