using System.Net.Sockets;
using Mis.Native;

namespace Mis.Server.Tests;

/// <summary>SO_PEERCRED and SO_PEERGROUPS as <see cref="PeerCredentials"/> reads them, checked against /proc.</summary>
public sealed class PeerCredentialsTests
{
    [Fact]
    public async Task The_peer_of_a_Unix_connection_is_this_process_with_its_uid_gid_and_groups()
    {
        string dir = Directory.CreateTempSubdirectory("mis-peercred-").FullName;
        try
        {
            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(Path.Combine(dir, "s")));
            listener.Listen();
            using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await client.ConnectAsync(new UnixDomainSocketEndPoint(Path.Combine(dir, "s")), Ct);
            using var accepted = await listener.AcceptAsync(Ct);

            var peer = PeerCredentials.Of(accepted);
            var status = File.ReadAllLines("/proc/self/status").Select(l => l.Split(':', 2)).ToDictionary(p => p[0], p => p[1].Trim());
            Assert.Equal(Environment.ProcessId, peer.Pid);
            Assert.Equal(uint.Parse(status["Uid"].Split('\t')[1]), peer.Uid); // effective
            Assert.Equal(uint.Parse(status["Gid"].Split('\t')[1]), peer.Gid);
            Assert.Equal(status["Groups"].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(uint.Parse).Order(), peer.Groups.Order());
            Assert.True(peer.IsInGroup(peer.Gid));

            // Not a Unix socket: no credentials, an error rather than a guess.
            using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            Assert.Throws<SocketException>(() => PeerCredentials.Of(udp));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
