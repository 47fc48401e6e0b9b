using System.Buffers.Binary;
using System.Net.Sockets;

namespace Mis.Native;

/// <summary>
/// Who is at the other end of a connected Unix-domain socket, as the kernel recorded it when the
/// peer called connect(2): <c>SO_PEERCRED</c> (pid, uid, gid) and <c>SO_PEERGROUPS</c> (the
/// supplementary groups, Linux 4.13+). The peer cannot forge these: they are its credentials at
/// connect time, not anything it sent.
/// </summary>
/// <param name="Pid">The peer's process id at connect time.</param>
/// <param name="Uid">Its effective uid.</param>
/// <param name="Gid">Its effective gid.</param>
/// <param name="Groups">Its supplementary groups.</param>
public sealed record PeerCredentials(int Pid, uint Uid, uint Gid, IReadOnlyList<uint> Groups)
{
    private const int SO_PEERCRED = 17;
    private const int SO_PEERGROUPS = 59;
    private const int SO_PEERPIDFD = 77; // Linux 6.5+
    private const int UcredSize = 12; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
    private const int MaxGroups = 65536; // NGROUPS_MAX

    /// <summary>True when <paramref name="gid"/> is the peer's gid or one of its supplementary groups.</summary>
    public bool IsInGroup(uint gid) => Gid == gid || Groups.Contains(gid);

    /// <summary>Reads the credentials of <paramref name="socket"/>'s peer.</summary>
    /// <exception cref="SocketException">The socket is not a connected Unix-domain socket.</exception>
    public static PeerCredentials Of(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        Span<byte> ucred = stackalloc byte[UcredSize];
        int length = socket.GetRawSocketOption(Libc.SOL_SOCKET, SO_PEERCRED, ucred);
        if (length != UcredSize)
            throw new SocketException((int)SocketError.InvalidArgument);
        int pid = BinaryPrimitives.ReadInt32LittleEndian(ucred);
        uint uid = BinaryPrimitives.ReadUInt32LittleEndian(ucred[4..]);
        uint gid = BinaryPrimitives.ReadUInt32LittleEndian(ucred[8..]);
        return new PeerCredentials(pid, uid, gid, SupplementaryGroups(socket));
    }

    /// <summary>
    /// A pidfd of the process that connected to <paramref name="socket"/> (SO_PEERPIDFD, Linux
    /// 6.5+), taken by the kernel at connect: it names that process even after the process is
    /// gone and its pid given to another. Null on a kernel without SO_PEERPIDFD.
    /// </summary>
    /// <exception cref="SocketException">The socket is not a connected Unix-domain socket.</exception>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle? PeerPidFd(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        Span<byte> fd = stackalloc byte[sizeof(int)];
        try
        {
            if (socket.GetRawSocketOption(Libc.SOL_SOCKET, SO_PEERPIDFD, fd) != sizeof(int))
                throw new SocketException((int)SocketError.InvalidArgument);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ProtocolOption)
        {
            return null; // ENOPROTOOPT: older than 6.5
        }
        return new Microsoft.Win32.SafeHandles.SafeFileHandle(BinaryPrimitives.ReadInt32LittleEndian(fd), ownsHandle: true);
    }

    /// <summary>
    /// Whether the process <paramref name="pidFd"/> names still holds its pid (running, or exited
    /// and not yet reaped): signal 0 through the pidfd. While it does, no other process can have
    /// that pid, so what was read of the pid before this answers true was read of this process.
    /// </summary>
    public static bool HoldsItsPid(Microsoft.Win32.SafeHandles.SafeFileHandle pidFd)
    {
        ArgumentNullException.ThrowIfNull(pidFd);
        if (Libc.Syscall(Libc.SYS_pidfd_send_signal, pidFd.DangerousGetHandle(), 0, 0, 0) == 0)
            return true;
        // EPERM: it holds its pid but this process may not signal it (a server run by another
        // user); ESRCH: reaped.
        return System.Runtime.InteropServices.Marshal.GetLastPInvokeError() == Errno.EPERM;
    }

    // SO_PEERGROUPS fails with ERANGE when the buffer is short: start with room for 64 groups
    // and try once more with room for NGROUPS_MAX.
    private static uint[] SupplementaryGroups(Socket socket)
    {
        byte[] buffer = new byte[64 * sizeof(uint)];
        for (int attempt = 0; attempt < 2; attempt++)
        {
            try
            {
                int length = socket.GetRawSocketOption(Libc.SOL_SOCKET, SO_PEERGROUPS, buffer);
                var groups = new uint[length / sizeof(uint)];
                for (int i = 0; i < groups.Length; i++)
                    groups[i] = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(i * sizeof(uint)));
                return groups;
            }
            catch (SocketException) when (attempt == 0)
            {
                buffer = new byte[MaxGroups * sizeof(uint)];
            }
        }
        return [];
    }
}
