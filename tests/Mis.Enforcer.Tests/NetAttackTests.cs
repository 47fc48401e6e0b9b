using System.Net;
using System.Net.Sockets;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Policy;
using Mis.Enforcer.Run;

namespace Mis.Enforcer.Tests;

/// <summary>
/// Network attacks run as real workloads under <c>mis run</c>'s runner, for both identities (the
/// default unprivileged user and <c>--as-root</c>, uid 0 without capabilities): each must fail with
/// the kernel's deny errno and each denial MIS decides must count as exactly one violation.
/// </summary>
[Collection("kernel")]
public sealed class NetAttackTests
{
    // Tries each "kind:host:port" once and prints "spec RESULT", RESULT being OK or the errno name.
    // Kinds: tcp, mptcp (connect); udp, udplite (sendto); udpc, udplitec (connect, then send);
    // ping (an ICMP echo socket, sendto); raw (SOCK_RAW ICMP); packet (AF_PACKET). A trailing 6
    // means AF_INET6.
    internal const string Probe = """
        import errno, socket, sys
        PROTO = {'tcp': 6, 'mptcp': 262, 'udp': 17, 'udpc': 17, 'udplite': 136, 'udplitec': 136}
        for spec in sys.argv[1:]:
            kind, rest = spec.split(':', 1)
            host, port = rest.rsplit(':', 1)
            v6 = kind.endswith('6')
            base = kind[:-1] if kind[-1] in '46' else kind
            family = socket.AF_INET6 if v6 else socket.AF_INET
            s = None
            try:
                if base == 'packet':
                    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
                elif base == 'raw':
                    s = socket.socket(family, socket.SOCK_RAW, 58 if v6 else 1)
                elif base == 'ping':
                    s = socket.socket(family, socket.SOCK_DGRAM, 58 if v6 else 1)
                    s.sendto(bytes([128 if v6 else 8, 0, 0, 0, 0, 0, 0, 1]) + b'exfil', (host, 0))
                elif base in ('tcp', 'mptcp'):
                    s = socket.socket(family, socket.SOCK_STREAM, PROTO[base])
                    s.settimeout(3); s.connect((host, int(port)))
                else:
                    s = socket.socket(family, socket.SOCK_DGRAM, PROTO[base])
                    if base.endswith('c'):
                        s.connect((host, int(port))); s.send(b'exfil')
                    else:
                        s.sendto(b'exfil', (host, int(port)))
                print(spec, 'OK', flush=True)
            except OSError as e:
                print(spec, errno.errorcode.get(e.errno, str(e.errno)), flush=True)
            finally:
                if s is not None:
                    s.close()
        """;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_tcp_rule_holds_for_mptcp_and_udp_lite_cannot_dodge_a_udp_rule(bool asRoot)
    {
        KernelTest.Require();
        using var denied = Listen();
        using var open = Listen();
        int tcp = Port(denied), other = Port(open);
        const int Udp = 40_123;
        var policy = PolicyFile.Parse($"""
            [[network]]
            address = "127.0.0.1"
            port = {Udp}
            protocol = "udp"
            action = "deny"

            [[network]]
            address = "127.0.0.1"
            port = {tcp}
            protocol = "tcp"
            action = "deny"
            """, "net.toml");

        var (results, run) = RunProbe(policy, asRoot,
            $"mptcp4:127.0.0.1:{other}", $"udp4:127.0.0.1:{Udp + 1}", // allowed first: 6 denials reach the lockdown
            $"mptcp4:127.0.0.1:{tcp}", $"mptcp6:::ffff:127.0.0.1:{tcp}",
            // UDP-Lite's connect() skips the connect hooks (the attack: connect, then send), so
            // its sockets are refused at socket() and counted, whatever the destination.
            $"udplitec4:127.0.0.1:{Udp}", $"udplite4:127.0.0.1:{Udp}", $"udplitec6:::1:{Udp + 1}",
            $"udp4:127.0.0.1:{Udp}", $"udpc4:127.0.0.1:{Udp}");

        Assert.Equal(["OK", "OK", "EPERM", "EPERM", "EPERM", "EPERM", "EPERM", "EPERM", "EPERM"], results);
        Assert.Equal(7UL, run.Violations);
        Assert.Equal(1, run.ViolationsByOperation["send"]);
        Assert.Equal(6, run.ViolationsByOperation["connect"]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Sockets_of_ip_protocols_no_rule_can_hold_for_are_refused_and_counted(bool asRoot)
    {
        KernelTest.Require();
        // Ping sockets need the group in net.ipv4.ping_group_range (empty by default here; many
        // distributions open it to everyone). Opened for the test, so the refusal is MIS's.
        using var ping = PingGroupRange.OpenToEveryone();

        var (results, run) = RunProbe(BuiltinPolicy.Create(), asRoot,
            "ping4:127.0.0.1:0", "ping6:::1:0", "raw4:127.0.0.1:0", "packet:-:0", "udp4:127.0.0.1:40124");

        // ping: refused at socket() by cgroup/sock_create and counted; raw sockets need
        // CAP_NET_RAW, which neither identity has: the kernel refuses them before any hook runs;
        // AF_PACKET is no family the rules decide: the launcher's filter refuses it, counted.
        Assert.Equal(["EPERM", "EPERM", "EPERM", "EPERM", "OK"], results);
        Assert.Equal(3UL, run.Violations);
        Assert.Equal(2, run.ViolationsByOperation["connect"]);
        Assert.Equal(1, run.ViolationsByOperation["escape_syscall"]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Ip_connects_sends_mapped_addresses_and_the_loopback_lockdown_still_hold(bool asRoot)
    {
        KernelTest.Require();
        using var denied = Listen();
        using var allowed = Listen();
        using var unlisted = Listen();
        int d = Port(denied), a = Port(allowed), u = Port(unlisted);
        var policy = PolicyFile.Parse($"""
            [[network]]
            address = "127.0.0.1"
            port = {d}
            action = "deny"

            [[network]]
            address = "127.0.0.1"
            port = {a}
            protocol = "tcp"
            action = "allow"
            """, "net.toml");

        var (results, run) = RunProbe(policy, asRoot,
            $"tcp4:127.0.0.1:{u}", // DEFCON 5: unlisted loopback is allowed
            $"tcp4:127.0.0.1:{d}", $"tcp6:::ffff:127.0.0.1:{d}", $"udp4:127.0.0.1:{d}", $"udpc4:127.0.0.1:{d}",
            $"udp6:::ffff:127.0.0.1:{d}", $"tcp4:127.0.0.1:{d}", // 6 violations: DEFCON 3, the lockdown level
            $"tcp4:127.0.0.1:{u}", $"udp4:127.0.0.1:{u}", $"tcp4:127.0.0.1:{a}");

        Assert.Equal(["OK", "EPERM", "EPERM", "EPERM", "EPERM", "EPERM", "EPERM", "EPERM", "EPERM", "OK"], results);
        Assert.Equal(8UL, run.Violations);
        Assert.Equal(3, run.Defcon);
    }

    // Tries each "kind:name" once (name: a path, or "@name" for an abstract socket) and prints
    // "spec RESULT". Kinds: stream (connect), dgram (sendto), own (listen on the name, then connect
    // to it), dgramown (bind a datagram socket to the name, receive, then send to it), pair
    // (socketpair, name unused).
    internal const string UnixProbe = """
        import errno, os, socket, sys
        def addr(n):
            return '\0' + n[1:] if n.startswith('@') else n
        for spec in sys.argv[1:]:
            kind, name = spec.split(':', 1)
            s = None
            try:
                if kind == 'stream':
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(addr(name)); s.send(b'exfil')
                elif kind == 'dgram':
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b'exfil', addr(name))
                elif kind == 'dgramown':
                    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); server.bind(addr(name))
                    try:
                        server.recv(8, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        pass
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b'x', addr(name))
                    server.recv(8); server.close()
                    if not name.startswith('@'):
                        os.unlink(name)
                elif kind == 'own':
                    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); server.bind(addr(name)); server.listen(1)
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(addr(name))
                    server.accept()[0].close(); server.close()
                    if not name.startswith('@'):
                        os.unlink(name)
                else:
                    a, b = socket.socketpair(); a.send(b'x'); b.recv(1); a.close(); b.close()
                print(spec, 'OK', flush=True)
            except OSError as e:
                print(spec, errno.errorcode.get(e.errno, str(e.errno)), flush=True)
            finally:
                if s is not None:
                    s.close()
        """;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Unix_sockets_outside_the_workloads_own_are_denied_and_counted(bool asRoot)
    {
        KernelTest.Require();
        Assert.True(Kernel.KernelEnforcer.UnixHooksAvailable, "this kernel has no cgroup Unix socket hooks (6.7+)");
        string tag = $"{Environment.ProcessId}-{Guid.NewGuid():N}"[..20];
        string dir = Directory.CreateTempSubdirectory("mis-unix-").FullName;
        ConfinementHarness.Chmod(dir, 0b111_111_111);
        string hostPath = Path.Combine(dir, "host.sock"), allowedPath = Path.Combine(dir, "allowed.sock"), dgramPath = Path.Combine(dir, "dgram.sock");
        try
        {
            // Host services a workload's file permissions let it reach (0666 path sockets, abstract names).
            using var hostAbstract = UnixListener("\0mis-host-" + tag, SocketType.Stream);
            using var hostPathSocket = UnixListener(hostPath, SocketType.Stream);
            using var allowed = UnixListener(allowedPath, SocketType.Stream);
            using var hostDgram = UnixListener(dgramPath, SocketType.Dgram);
            using var hostAbstractDgram = UnixListener("\0mis-host-dgram-" + tag, SocketType.Dgram);
            var policy = PolicyFile.Parse($"""
                [[unix]]
                path = "{allowedPath}"
                action = "allow"
                """, "unix.toml");

            var (results, run) = RunScript(policy, asRoot, UnixProbe,
                $"stream:@mis-host-{tag}", $"stream:{hostPath}", $"dgram:{dgramPath}", $"dgram:@mis-host-dgram-{tag}",
                $"stream:{hostPath.TrimStart('/')}", // another spelling (relative to the workload's cwd, /) is no rule's name
                $"stream:{allowedPath}", "stream:/var/run/nscd/socket", // the policy's rule; the built-in nscd rule (ENOENT: no nscd here)
                $"own:@mis-own-{tag}", $"own:{Path.Combine(Path.GetTempPath(), $"mis-own-{tag}.sock")}",
                $"dgramown:@mis-own-dgram-{tag}", $"dgramown:{Path.Combine(Path.GetTempPath(), $"mis-own-dgram-{tag}.sock")}", "pair:-");

            Assert.Equal(["EPERM", "EPERM", "EPERM", "EPERM", "EPERM", "OK", "ENOENT", "OK", "OK", "OK", "OK", "OK"], results);
            Assert.Equal(5UL, run.Violations);
            Assert.Equal(3, run.ViolationsByOperation["connect"]);
            Assert.Equal(2, run.ViolationsByOperation["send"]);
            // Nothing reached the host's sockets.
            Assert.False(hostAbstract.Poll(0, SelectMode.SelectRead));
            Assert.False(hostPathSocket.Poll(0, SelectMode.SelectRead));
            Assert.Equal(0, hostDgram.Available);
            Assert.Equal(0, hostAbstractDgram.Available);
            Assert.True(allowed.Poll(0, SelectMode.SelectRead)); // the allowed one did
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // Connects a UDP socket to 127.0.0.1:UDP (unlisted) and listens on 127.0.0.1:PORT; for
    // the first connection that completes a handshake, sends "before", then makes 6 denied
    // connects to 127.0.0.1:DENIED (DEFCON 3, the lockdown level), then sends "after" on the
    // accepted connection and on the connected UDP socket.
    private const string AcceptProbe = """
        import errno, socket, sys, time
        port, denied, udp_port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.connect(('127.0.0.1', udp_port)); udp.send(b'before')
        server = socket.socket(); server.bind(('127.0.0.1', port)); server.listen(8); server.settimeout(20)
        print('listening', flush=True)
        conn, peer = server.accept()
        print('accepted', peer[0], flush=True)
        conn.sendall(b'before')
        for _ in range(6):
            try:
                socket.create_connection(('127.0.0.1', denied), timeout=2)
            except OSError:
                pass
        conn.sendall(b'after')
        try:
            udp.send(b'after'); print('udp OK', flush=True)
        except OSError as e:
            print('udp', errno.errorcode[e.errno], flush=True)
        print('sent', flush=True)
        time.sleep(1.5)
        """;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Connections_the_workload_accepted_or_opened_earlier_obey_the_rules_and_the_lockdown(bool asRoot)
    {
        KernelTest.Require();
        using var deniedListener = Listen();
        using var udpPeer = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        udpPeer.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        int denied = Port(deniedListener), udpPort = ((IPEndPoint)udpPeer.LocalEndPoint!).Port, port;
        using (var probe = Listen())
            port = Port(probe);
        var policy = PolicyFile.Parse($"""
            [[network]]
            address = "127.0.0.2"
            action = "deny"

            [[network]]
            address = "127.0.0.1"
            port = {denied}
            action = "deny"
            """, "accept.toml");
        string output = Path.Combine(Path.GetTempPath(), $"mis-accept-{Environment.ProcessId}-{Guid.NewGuid():N}.out");
        var cancel = TestContext.Current.CancellationToken;
        try
        {
            Run.RunResult run;
            using (var stdout = File.OpenHandle(output, FileMode.CreateNew, FileAccess.Write))
            {
                var workload = Task.Run(() => WorkloadRunner.Run(new RunRequest
                {
                    Command = [KernelTest.Python, "-I", "-S", "-c", AcceptProbe, $"{port}", $"{denied}", $"{udpPort}"],
                    Policy = policy,
                    Identity = asRoot ? WorkloadIdentity.Root : null,
                    Stdout = stdout,
                }, cancel), cancel);
                Assert.True(KernelTest.Eventually(() => File.ReadAllText(output).Contains("listening", StringComparison.Ordinal), 15_000));

                // A peer the rules deny: the workload's SYN-ACKs are dropped, the handshake never completes.
                using (var deniedPeer = Client("127.0.0.2"))
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                    timeout.CancelAfter(1500);
                    await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
                        await deniedPeer.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token));
                }

                // An unlisted peer at DEFCON 5 is served; once the lockdown holds, nothing more leaves.
                using var peer = Client("127.0.0.3");
                await peer.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancel);
                var buffer = new byte[64];
                peer.ReceiveTimeout = 5000;
                Assert.Equal("before", System.Text.Encoding.ASCII.GetString(buffer, 0, peer.Receive(buffer)));
                Assert.True(KernelTest.Eventually(() => File.ReadAllText(output).Contains("sent", StringComparison.Ordinal), 15_000));
                Assert.False(peer.Poll(1_000_000, SelectMode.SelectRead), "data left on the accepted connection at the lockdown level");
                run = await workload;
            }

            Assert.Contains("accepted 127.0.0.3", File.ReadAllText(output));
            Assert.Contains("udp EPERM", File.ReadAllText(output)); // a UDP socket connected at DEFCON 5 is locked down too
            var datagram = new byte[64];
            Assert.Equal("before", System.Text.Encoding.ASCII.GetString(datagram, 0, udpPeer.Receive(datagram)));
            Assert.Equal(0, udpPeer.Available);
            Assert.Equal(9UL, run.Violations); // the refused peer, 6 connects, TCP and UDP sends after the lockdown
            Assert.Equal(6, run.ViolationsByOperation["connect"]);
            Assert.Equal(3, run.ViolationsByOperation["send"]);
            Assert.Equal(3, run.Defcon);
        }
        finally
        {
            File.Delete(output);
        }
    }

    private static Socket Client(string source)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Parse(source), 0));
        return socket;
    }

    private static Socket UnixListener(string name, SocketType type)
    {
        var socket = new Socket(AddressFamily.Unix, type, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(name));
        if (type == SocketType.Stream)
            socket.Listen(4);
        if (name[0] != '\0')
            ConfinementHarness.Chmod(name, 0b110_110_110);
        return socket;
    }

    /// <summary>Runs the IP probe as a workload.</summary>
    internal static (List<string> Results, Run.RunResult Run) RunProbe(WorkloadPolicy policy, bool asRoot, params string[] specs) =>
        RunScript(policy, asRoot, Probe, specs);

    /// <summary>Runs a probe script as a workload; its stdout goes to a file the enforcer opened.</summary>
    internal static (List<string> Results, Run.RunResult Run) RunScript(WorkloadPolicy policy, bool asRoot, string script, params string[] specs)
    {
        string output = Path.Combine(Path.GetTempPath(), $"mis-net-{Environment.ProcessId}-{Guid.NewGuid():N}.out");
        try
        {
            Run.RunResult run;
            using (var stdout = File.OpenHandle(output, FileMode.CreateNew, FileAccess.Write))
            {
                run = WorkloadRunner.Run(new RunRequest
                {
                    Command = [KernelTest.Python, "-I", "-S", "-c", script, .. specs],
                    Policy = policy,
                    Identity = asRoot ? WorkloadIdentity.Root : null,
                    Stdout = stdout,
                }, TestContext.Current.CancellationToken);
            }
            var lines = File.ReadAllLines(output);
            Assert.True(run.ExitStatus == 0 && lines.Length == specs.Length, $"probe exited {run.ExitStatus}: {string.Join(" | ", lines)}");
            return (lines.Select(l => l.Split(' ')[^1]).ToList(), run);
        }
        finally
        {
            File.Delete(output);
        }
    }

    internal static TcpListener Listen()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return listener;
    }

    internal static int Port(TcpListener listener) => ((IPEndPoint)listener.LocalEndpoint).Port;

    /// <summary>Widens net.ipv4.ping_group_range (host-wide, restored on dispose; tests hold the kernel lock).</summary>
    private sealed class PingGroupRange : IDisposable
    {
        private const string Path = "/proc/sys/net/ipv4/ping_group_range";
        private readonly string _old;

        private PingGroupRange(string old) => _old = old;

        internal static PingGroupRange OpenToEveryone()
        {
            var range = new PingGroupRange(File.ReadAllText(Path).Trim());
            File.WriteAllText(Path, "0 2147483647");
            return range;
        }

        public void Dispose() => File.WriteAllText(Path, _old);
    }
}
