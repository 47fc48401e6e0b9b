using System.Net;
using System.Net.Sockets;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;
using Mis.Testing;

namespace Mis.Enforcer.Tests;

/// <summary>The cgroup socket hooks: rules, the DEFCON lockdown, and the kernel-side kill.</summary>
[Collection("kernel")]
public sealed class KernelNetTests
{
    // Tries each "kind:host:port" (kind tcp4/tcp6/udp4/udp6) once and prints "spec RESULT",
    // RESULT being OK or the errno name.
    private const string NetProbe = """
        import errno, socket, sys
        for spec in sys.argv[1:]:
            kind, rest = spec.split(':', 1)
            host, port = rest.rsplit(':', 1)
            family = socket.AF_INET6 if kind.endswith('6') else socket.AF_INET
            stream = kind.startswith('tcp')
            s = socket.socket(family, socket.SOCK_STREAM if stream else socket.SOCK_DGRAM)
            try:
                if stream:
                    s.settimeout(3); s.connect((host, int(port)))
                else:
                    s.sendto(b'x', (host, int(port)))
                print(spec, 'OK', flush=True)
            except OSError as e:
                print(spec, errno.errorcode.get(e.errno, str(e.errno)), flush=True)
            finally:
                s.close()
        """;

    [Fact]
    public void Deny_rule_fails_connect_with_eperm_and_counts_allow_rule_connects()
    {
        using var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        using var denied = Listen();
        using var allowed = Listen();
        int deniedPort = Port(denied), allowedPort = Port(allowed);
        enforcer.SetNetRules(7,
        [
            Host(deniedPort, NetProtocol.Tcp, Verdict.Deny),
            Host(allowedPort, NetProtocol.Tcp, Verdict.Allow),
            Host(deniedPort, NetProtocol.Udp, Verdict.Deny),
        ]);
        enforcer.Manage(cgroup.Path, learning: false, policyId: 7);

        var results = RunProbe(cgroup,
            $"tcp4:127.0.0.1:{deniedPort}", $"tcp4:127.0.0.1:{allowedPort}",
            $"tcp6:::ffff:127.0.0.1:{deniedPort}", $"udp4:127.0.0.1:{deniedPort}", $"udp4:127.0.0.1:{allowedPort}");

        Assert.Equal(["EPERM", "OK", "EPERM", "EPERM", "OK"], results);
        var state = enforcer.State(cgroup.Id)!;
        Assert.Equal(3UL, state.Violations);
        Assert.Equal(4, state.Defcon);
        var events = KernelTest.Drain(enforcer, es => es.Count(e => e.Type == KernelEventType.Violation) == 3);
        var violations = events.Where(e => e.Type == KernelEventType.Violation).ToList();
        Assert.Equal([ViolationOp.Connect, ViolationOp.Connect, ViolationOp.Send], violations.Select(e => e.Op));
        // The IPv4-mapped destination is matched, and reported, as IPv4.
        Assert.All(violations, e => Assert.Equal($"127.0.0.1:{deniedPort}", e.Target));
        Assert.All(violations, e => Assert.Equal("python3", e.Comm));
        Assert.All(violations, e => Assert.Equal(cgroup.Id, e.CgroupId));
    }

    [Fact]
    public void At_defcon_3_only_explicitly_allowed_destinations_remain()
    {
        using var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        using var allowed = Listen();
        using var unlisted = Listen();
        using var traced = Listen();
        int allowedPort = Port(allowed), unlistedPort = Port(unlisted), tracedPort = Port(traced);
        enforcer.SetNetRules(8,
        [
            Host(allowedPort, NetProtocol.Any, Verdict.Allow),
            new NetRule(IPAddress.Parse("127.0.0.0"), 8, tracedPort, NetProtocol.Tcp, Verdict.Trace, "test"),
        ]);
        enforcer.Manage(cgroup.Path, learning: false, policyId: 8);

        // DEFCON 5: an unlisted destination is fine (loopback included).
        Assert.Equal(["OK", "OK"], RunProbe(cgroup, $"tcp4:127.0.0.1:{unlistedPort}", $"tcp4:127.0.0.1:{tracedPort}"));
        for (int i = 0; i < 6; i++)
            enforcer.Report(new ViolationReport(cgroup.Id, ViolationOp.FileRead, 0, 0, "/etc/passwd"));
        Assert.Equal(3, enforcer.Defcon(cgroup.Id));

        var results = RunProbe(cgroup, $"tcp4:127.0.0.1:{unlistedPort}", $"tcp4:127.0.0.1:{allowedPort}", $"tcp4:127.0.0.1:{tracedPort}");

        Assert.Equal(["EPERM", "OK", "OK"], results);
        Assert.Equal(7UL, enforcer.State(cgroup.Id)!.Violations);
        var events = KernelTest.Drain(enforcer, es => es.Count(e => e.Type == KernelEventType.Trace) == 2);
        Assert.Equal(2, events.Count(e => e.Type == KernelEventType.Trace && e.Target == $"127.0.0.1:{tracedPort}"));
    }

    [Fact]
    public void Replacing_rules_removes_the_stale_ones_of_that_policy_only()
    {
        using var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        using var listener = Listen();
        int port = Port(listener);
        enforcer.SetNetRules(9, [Host(port, NetProtocol.Tcp, Verdict.Deny)]);
        enforcer.SetNetRules(10, [Host(port, NetProtocol.Tcp, Verdict.Deny)]);
        enforcer.Manage(cgroup.Path, learning: false, policyId: 9);
        Assert.Equal(["EPERM"], RunProbe(cgroup, $"tcp4:127.0.0.1:{port}"));

        enforcer.SetNetRules(9, []);

        Assert.Equal(["OK"], RunProbe(cgroup, $"tcp4:127.0.0.1:{port}"));
    }

    [Fact]
    public void A_denial_that_reaches_defcon_1_kills_the_task_in_the_kernel()
    {
        using var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        using var listener = Listen();
        int port = Port(listener);
        enforcer.SetNetRules(11, [Host(port, NetProtocol.Any, Verdict.Deny)]);
        enforcer.Manage(cgroup.Path, learning: false, policyId: 11, config: new DefconConfig { Thresholds = [1, 2, 3, 4] });

        using var child = HeldChild.Start(KernelTest.Python, "-c", NetProbe,
            $"tcp4:127.0.0.1:{port}", $"tcp4:127.0.0.1:{port}", $"tcp4:127.0.0.1:{port}", $"tcp4:127.0.0.1:{port}", $"tcp4:127.0.0.1:{port}");
        cgroup.Add(child.Pid);
        child.Release();

        Assert.Equal(137, child.WaitExit()); // SIGKILL, at the 4th denial
        var lines = child.Process.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        var state = enforcer.State(cgroup.Id)!;
        Assert.True(state.Killed);
        Assert.Equal(4UL, state.Violations);
        Assert.True(enforcer.KernelKillSignals >= 1);
        Assert.True(KernelTest.Eventually(() => cgroup.Pids.Count == 0));
    }

    [Fact]
    public void Unix_names_a_cgroup_served_are_its_own_until_it_is_unmanaged()
    {
        using var enforcer = KernelTest.Open();
        HostRequirements.That(enforcer.UnixHooks, "this kernel has no cgroup Unix socket hooks (6.7+)");
        using var cgroup = new ScratchCgroup();
        enforcer.SetUnixRules(12, []);
        enforcer.Manage(cgroup.Path, learning: false, policyId: 12);
        string name = $"mis-forget-{Environment.ProcessId}";

        // Served (listen) by the cgroup: its own, so connecting is no violation.
        using (var child = HeldChild.Start(KernelTest.Python, "-c",
            $"import socket\ns = socket.socket(socket.AF_UNIX); s.bind('\\0{name}'); s.listen(1)\n" +
            $"c = socket.socket(socket.AF_UNIX); c.connect('\\0{name}'); print('OK')"))
        {
            cgroup.Add(child.Pid);
            child.Release();
            Assert.Equal("OK", child.Process.StandardOutput.ReadToEnd().Trim());
            Assert.Equal(0, child.WaitExit());
        }
        Assert.Equal(0UL, enforcer.State(cgroup.Id)!.Violations);
        Assert.Equal(1, OwnNames(enforcer, cgroup.Id));

        Assert.True(enforcer.Unmanage(cgroup.Id));
        Assert.Equal(0, OwnNames(enforcer, cgroup.Id)); // a later cgroup with the same id inherits nothing
    }

    [Fact]
    public void Unix_names_at_the_edges_of_sun_path_are_read_as_the_kernel_reads_them()
    {
        using var enforcer = KernelTest.Open();
        HostRequirements.That(enforcer.UnixHooks, "this kernel has no cgroup Unix socket hooks (6.7+)");
        using var cgroup = new ScratchCgroup();
        enforcer.SetUnixRules(13, []);
        enforcer.Manage(cgroup.Path, learning: false, policyId: 13);
        string dir = Directory.CreateTempSubdirectory("mis-unix-edge-").FullName;
        try
        {
            // Raw bind/connect through libc: Python refuses a 108-byte path and bytes after a NUL.
            // Each name is served by the cgroup, then connected to: its own, so allowed (0). Last, a
            // 108-byte path that differs from a served one in its 108th byte only: denied (EPERM, 1).
            string script = $$"""
                import ctypes, socket
                libc = ctypes.CDLL(None, use_errno=True)
                def call(fn, sock, name, extra=b''):
                    data = b'\x01\x00' + name + extra
                    buf = ctypes.create_string_buffer(data, len(data))
                    return 0 if fn(sock.fileno(), buf, len(data)) == 0 else ctypes.get_errno()
                d = b'{{dir}}/'
                p108 = d + b'b' * (108 - len(d))
                names = [(b'\0mis-edge-{{Environment.ProcessId}}\0x', b''), (d + b'a' * (107 - len(d)), b''), (p108, b''), (d + b'j', b'\0zzz')]
                held, out = [], []
                for name, extra in names:
                    s = socket.socket(socket.AF_UNIX)
                    assert call(libc.bind, s, name, extra) == 0, name
                    s.listen(1)
                    held.append(s)
                    out.append(call(libc.connect, socket.socket(socket.AF_UNIX), name, extra))
                out.append(call(libc.connect, socket.socket(socket.AF_UNIX), p108[:-1] + b'c'))
                print(' '.join(map(str, out)))
                """;
            using var child = HeldChild.Start(KernelTest.Python, "-c", script);
            cgroup.Add(child.Pid);
            child.Release();
            Assert.Equal("0 0 0 0 1", child.Process.StandardOutput.ReadToEnd().Trim());
            Assert.Equal(0, child.WaitExit());
            Assert.Equal(1UL, enforcer.State(cgroup.Id)!.Violations);
            Assert.Equal(4, OwnNames(enforcer, cgroup.Id));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static int OwnNames(KernelEnforcer enforcer, ulong cgroupId)
    {
        var field = typeof(KernelEnforcer).GetField("_unixOwn", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic)!;
        var map = (Mis.Native.Bpf.BpfMap)field.GetValue(enforcer)!;
        return map.Keys(System.Runtime.InteropServices.Marshal.SizeOf<MisUnixKey>())
            .Count(k => System.Runtime.InteropServices.MemoryMarshal.Read<MisUnixKey>(k).Scope == cgroupId);
    }

    private static List<string> RunProbe(ScratchCgroup cgroup, params string[] specs)
    {
        using var child = HeldChild.Start(KernelTest.Python, ["-c", NetProbe, .. specs]);
        cgroup.Add(child.Pid);
        child.Release();
        string stdout = child.Process.StandardOutput.ReadToEnd();
        int exit = child.WaitExit();
        Assert.True(exit == 0, $"probe exited {exit}: {child.StdErrSoFar()}");
        return stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[^1]).ToList();
    }

    private static NetRule Host(int port, NetProtocol protocol, Verdict verdict) =>
        new(IPAddress.Loopback, 32, port, protocol, verdict, "test");

    private static TcpListener Listen()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return listener;
    }

    private static int Port(TcpListener listener) => ((IPEndPoint)listener.LocalEndpoint).Port;
}
