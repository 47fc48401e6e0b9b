using System.Net;
using System.Net.Sockets;
using Mis.Native;
using Mis.Server.Grpc;
using Mis.Server.Hosting;

namespace Mis.Server.Tests;

/// <summary>Finding who made a connection to the control plane from this host, over TCP and the Unix socket (no root needed).</summary>
public sealed class ControlPlanePeerTests
{
    [Fact]
    public void A_unix_caller_is_judged_by_its_connecting_process_and_refused_when_that_process_is_gone()
    {
        PeerCredentials Peer(int pid) => new(pid, 1000, 1000, []);
        string own = CgroupV2.PathOf(Environment.ProcessId)!;

        Assert.Null(WorkloadConnections.Refusal(Peer(Environment.ProcessId), "/no-such-tree-mis"));
        // This process, were its cgroup the workload tree, is a workload.
        Assert.Contains("a workload may not steer its own enforcement", WorkloadConnections.Refusal(Peer(Environment.ProcessId), own));
        // A process that connected and is gone (its connection left to a child, say) cannot be judged: refused.
        using var gone = System.Diagnostics.Process.Start("/bin/true")!;
        gone.WaitForExit();
        int pid = gone.Id;
        Assert.Contains("has exited", WorkloadConnections.Refusal(Peer(pid), "/no-such-tree-mis"));
        // Without a workload tree (no cgroups) there is nothing to tell apart.
        Assert.Null(WorkloadConnections.Refusal(Peer(pid), null));
        // The peer's pid now names a live process outside the tree (this one), but the peer's
        // pidfd says the process that connected is gone: its pid was given to another. Refused.
        Assert.Contains("has exited", WorkloadConnections.Refusal(Peer(Environment.ProcessId), "/no-such-tree-mis", () => false));
        Assert.Null(WorkloadConnections.Refusal(Peer(Environment.ProcessId), "/no-such-tree-mis", () => true));
    }

    [Fact]
    public async Task The_pidfd_of_a_unix_peer_tells_when_the_process_that_connected_is_gone()
    {
        string dir = Directory.CreateTempSubdirectory("mis-peer-").FullName;
        string path = Path.Combine(dir, "s");
        try
        {
            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(path));
            listener.Listen(1);
            var start = new System.Diagnostics.ProcessStartInfo("/usr/bin/python3",
                ["-c", $"import socket,sys\ns = socket.socket(socket.AF_UNIX); s.connect('{path}'); sys.stdin.readline()"])
            { RedirectStandardInput = true };
            using var peer = System.Diagnostics.Process.Start(start)!;
            using var accepted = await listener.AcceptAsync(TestContext.Current.CancellationToken);
            using var pidFd = PeerCredentials.PeerPidFd(accepted);
            if (pidFd is null)
                Assert.Skip("this kernel has no SO_PEERPIDFD (6.5+)");
            Assert.Equal(peer.Id, PeerCredentials.Of(accepted).Pid);
            Assert.True(PeerCredentials.HoldsItsPid(pidFd));

            peer.StandardInput.WriteLine();
            await peer.WaitForExitAsync(TestContext.Current.CancellationToken); // exited and reaped: its pid is free
            Assert.False(PeerCredentials.HoldsItsPid(pidFd));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public async Task A_local_connection_is_found_by_its_socket_and_one_nobody_holds_any_more_is_refused(string loopback)
    {
        var address = IPAddress.Parse(loopback);
        using var listener = new TcpListener(address, 0);
        try
        {
            listener.Start();
        }
        catch (SocketException e)
        {
            Assert.Skip($"no {loopback} here: {e.Message}");
        }
        var server = (IPEndPoint)listener.LocalEndpoint;
        var client = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(server, TestContext.Current.CancellationToken);
        using var accepted = await listener.AcceptSocketAsync(TestContext.Current.CancellationToken);
        var from = (IPEndPoint)accepted.RemoteEndPoint!;

        // Open: the row names the socket this process holds; a process outside any workload tree is no workload.
        var inode = TcpPeer.FindSocket(from, server);
        Assert.NotNull(inode);
        Assert.Contains(Directory.EnumerateFileSystemEntries("/proc/self/fd"), fd => new FileInfo(fd).LinkTarget == $"socket:[{inode}]");
        Assert.Null(TcpPeer.Refusal(from, server, workloadTree: null));
        Assert.Null(TcpPeer.Refusal(from, server, workloadTree: "/no-such-tree-mis"));

        // Sent and closed before the server read anything: the kernel still has the connection,
        // but no process holds its socket, so nothing can say who made it.
        client.Send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8);
        client.Close();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (TcpPeer.FindSocket(from, server) is not (null or 0) && DateTime.UtcNow < deadline)
            await Task.Delay(20, TestContext.Current.CancellationToken);
        Assert.Contains("was closed before its call was read", TcpPeer.Refusal(from, server, workloadTree: null));
    }

    [Fact]
    public void A_connection_no_row_knows_is_refused_from_this_host_and_left_to_the_tcp_rules_from_another()
    {
        var server = new IPEndPoint(IPAddress.Loopback, 9);
        Assert.Contains("no socket of it is open any more", TcpPeer.Refusal(new IPEndPoint(IPAddress.Loopback, 1), server, workloadTree: null));
        Assert.Contains("no socket of it is open any more", TcpPeer.Refusal(new IPEndPoint(IPAddress.Parse("::ffff:127.0.0.1"), 1), server, workloadTree: null));
        Assert.Null(TcpPeer.Refusal(new IPEndPoint(IPAddress.Parse("192.0.2.7"), 40000), new IPEndPoint(IPAddress.Parse("192.0.2.1"), 50051), workloadTree: null));
        Assert.Contains("no socket of it is open any more",
            TcpPeer.Refusal(new IPEndPoint(IPAddress.Parse("192.0.2.1"), 40000), new IPEndPoint(IPAddress.Parse("192.0.2.1"), 50051), workloadTree: null));
        // Another of this host's addresses than the one connected to is this host too.
        foreach (var own in System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
                     .SelectMany(i => i.GetIPProperties().UnicastAddresses).Select(u => u.Address).Where(a => !IPAddress.IsLoopback(a)))
            Assert.Contains("no socket of it is open any more", TcpPeer.Refusal(new IPEndPoint(own, 40000), server, workloadTree: null));
    }
}
