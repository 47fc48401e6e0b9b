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
