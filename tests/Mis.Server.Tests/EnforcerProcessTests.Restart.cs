using System.Diagnostics;
using Grpc.Core;
using Mis.Policy.V1;
using Mis.Testing;

namespace Mis.Server.Tests;

// The node daemon restarting, as systemd restarts it: stopped with SIGTERM, or killed with SIGKILL
// (the OOM killer, a crash). Either way its workloads are killed and their cgroups removed, and a
// client blocked in a call hears UNAVAILABLE instead of hanging; the next start serves at once.
public sealed partial class EnforcerProcessTests
{
    // A client that waits longer than this for its answer is hanging.
    private static readonly TimeSpan NoHang = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task On_SIGTERM_blocked_callers_get_UNAVAILABLE_workloads_die_and_the_restarted_daemon_serves()
    {
        var (config, socket) = DaemonConfig("sigterm.toml");
        // systemd's side of Type=notify: a datagram socket named in NOTIFY_SOCKET.
        using var notify = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Unspecified);
        string notifyPath = Path.Combine(_dir, "notify.sock");
        notify.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(notifyPath));
        var daemon = await StartDaemonAsync(config, new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notifyPath });
        try
        {
            string ready = await ReceiveAsync(notify);
            Assert.Contains("READY=1", ready);
            Assert.Contains($"MAINPID={daemon.Process.Process.Id}", ready);
            using var channel = NodeDaemonAccessTests.UnixChannel(socket);
            var client = new PolicyService.PolicyServiceClient(channel);
            var blocked = await BlockCallsAsync(client);

            daemon.Process.Terminate();
            Assert.Contains("STOPPING=1", await ReceiveAsync(notify));
            await AssertUnavailableAsync(blocked.Watch, blocked.Kill);
            Assert.True(daemon.Process.Process.WaitForExit(TimeSpan.FromSeconds(30)), "mis enforcer did not stop on SIGTERM");
            Assert.Equal(0, daemon.Process.Process.ExitCode);
            await AssertCleanedUpAsync(daemon.CgroupRoot, blocked.Pids);
        }
        finally
        {
            daemon.Dispose();
        }
        await AssertRestartServesAsync(config, socket);
    }

    [Fact]
    public async Task On_SIGKILL_blocked_callers_get_UNAVAILABLE_the_guard_removes_the_workloads_and_the_restarted_daemon_serves()
    {
        var (config, socket) = DaemonConfig("sigkill.toml");
        var daemon = await StartDaemonAsync(config);
        try
        {
            using var channel = NodeDaemonAccessTests.UnixChannel(socket);
            var client = new PolicyService.PolicyServiceClient(channel);
            var blocked = await BlockCallsAsync(client);

            daemon.Process.Process.Kill(); // SIGKILL, the enforcer alone: its guard lives on
            await AssertUnavailableAsync(blocked.Watch, blocked.Kill);
            Assert.True(daemon.Process.Process.WaitForExit(TimeSpan.FromSeconds(10)));
            await AssertCleanedUpAsync(daemon.CgroupRoot, blocked.Pids);
            Assert.True(File.Exists(socket), "SIGKILL leaves the socket file behind: the next start must cope with it");
        }
        finally
        {
            daemon.Dispose();
        }
        await AssertRestartServesAsync(config, socket);
    }

    private sealed record Daemon(MisProcess Process, string CgroupRoot) : IDisposable
    {
        public void Dispose()
        {
            if (!Process.Process.HasExited)
                Process.Process.Kill();
            Process.Dispose();
        }
    }

    private sealed record BlockedCalls(AsyncServerStreamingCall<Event> Watch, Task<KillProcessResponse> Kill, int[] Pids);

    private (string Config, string Socket) DaemonConfig(string name)
    {
        HostRequirements.Root();
        string socket = Path.Combine(_dir, name + ".sock");
        // A long grace, so that a graceful kill of a workload that ignores SIGTERM is still
        // waiting when the daemon goes down.
        string config = WriteConfig(name, FreePort(), FreePort(), $"unix_socket_path = \"{socket}\"\nunix_socket_mode = \"0666\"");
        File.AppendAllText(config, "\n[watchdog]\nkill_grace_ms = 60000\n");
        return (config, socket);
    }

    private static async Task<Daemon> StartDaemonAsync(string config, IReadOnlyDictionary<string, string>? environment = null)
    {
        var process = MisProcess.Start(environment ?? new Dictionary<string, string>(), "enforcer", config);
        var daemon = new Daemon(process, Path.Combine(TestEnforcer.CgroupMount, "mis", $"enforcer-{process.Process.Id}"));
        try
        {
            await process.WaitForAsync("mis enforcer: ready", TimeSpan.FromSeconds(60));
        }
        catch
        {
            daemon.Dispose();
            throw;
        }
        return daemon;
    }

    private static async Task<string> ReceiveAsync(System.Net.Sockets.Socket socket)
    {
        var buffer = new byte[4096];
        int length = await socket.ReceiveAsync(buffer, Ct).AsTask().WaitAsync(NoHang, Ct);
        return System.Text.Encoding.UTF8.GetString(buffer, 0, length);
    }

    // Two workloads (one ignores SIGTERM), a WatchEvents stream and a graceful KillProcess that
    // waits out the grace period: both calls are in flight when this returns.
    private static async Task<BlockedCalls> BlockCallsAsync(PolicyService.PolicyServiceClient client)
    {
        var stubborn = await client.RunWorkloadAsync(new RunWorkloadRequest { Command = "sh", Args = { "-c", "trap '' TERM; exec sleep 120" } }, cancellationToken: Ct);
        var plain = await client.RunWorkloadAsync(new RunWorkloadRequest { Command = "sleep", Args = { "120" } }, cancellationToken: Ct);
        await TestEnforcer.WaitAsleepAsync(stubborn.Pid);
        await TestEnforcer.WaitAsleepAsync(plain.Pid);

        var watch = client.WatchEvents(new WatchEventsRequest(), cancellationToken: Ct);
        await watch.ResponseHeadersAsync.WaitAsync(NoHang, Ct);
        var kill = client.KillProcessAsync(new KillProcessRequest { CgroupId = stubborn.CgroupId, Graceful = true }, cancellationToken: Ct).ResponseAsync;
        // The kill event says the SIGTERMs went out: the call now waits for the grace to pass.
        while (true)
        {
            Assert.True(await watch.ResponseStream.MoveNext(Ct).WaitAsync(NoHang, Ct), "the stream ended before the kill began");
            if (watch.ResponseStream.Current is { Event_: "kill" } e && e.CgroupId == stubborn.CgroupId)
                break;
        }
        Assert.False(kill.IsCompleted, "the graceful kill should still be waiting");
        return new BlockedCalls(watch, kill, [stubborn.Pid, plain.Pid]);
    }

    private static async Task AssertUnavailableAsync(AsyncServerStreamingCall<Event> watch, Task<KillProcessResponse> kill)
    {
        var clock = Stopwatch.StartNew();
        var streamEnd = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await watch.ResponseStream.MoveNext(Ct).WaitAsync(NoHang, Ct))
            {
            }
        });
        Assert.True(streamEnd.StatusCode == StatusCode.Unavailable, $"WatchEvents ended with {streamEnd.StatusCode}: {streamEnd.Status.Detail}");
        var unary = await Assert.ThrowsAsync<RpcException>(() => kill.WaitAsync(NoHang, Ct));
        Assert.True(unary.StatusCode == StatusCode.Unavailable, $"KillProcess ended with {unary.StatusCode}: {unary.Status.Detail}");
        Assert.True(clock.Elapsed < NoHang, $"the callers heard of it after {clock.Elapsed}");
        watch.Dispose();
    }

    private static async Task AssertCleanedUpAsync(string cgroupRoot, int[] pids)
    {
        var clock = Stopwatch.StartNew();
        while (Directory.Exists(cgroupRoot) || pids.Any(p => TestEnforcer.ReadComm(p) == "sleep"))
        {
            Assert.True(clock.Elapsed < NoHang, $"{cgroupRoot} or a workload outlived the daemon: " +
                                                string.Join(", ", pids.Select(p => $"{p}={TestEnforcer.ReadComm(p)}")));
            await Task.Delay(50, Ct);
        }
    }

    // The next start clears the socket, takes the lock and serves: nothing of the old daemon's
    // workloads is listed, and a new one runs.
    private static async Task AssertRestartServesAsync(string config, string socket)
    {
        using var again = await StartDaemonAsync(config);
        using var channel = NodeDaemonAccessTests.UnixChannel(socket);
        var client = new PolicyService.PolicyServiceClient(channel);
        Assert.Empty((await client.ListCgroupsAsync(new ListCgroupsRequest { IncludeExited = true }, cancellationToken: Ct)).Cgroups);
        var run = await client.RunWorkloadAsync(new RunWorkloadRequest { Command = "true" }, cancellationToken: Ct);
        Assert.True(run.CgroupId > 0);
        again.Process.Terminate();
        Assert.True(again.Process.Process.WaitForExit(TimeSpan.FromSeconds(30)), "the restarted daemon did not stop");
        Assert.Equal(0, again.Process.Process.ExitCode);
        Assert.False(Directory.Exists(again.CgroupRoot));
    }
}
