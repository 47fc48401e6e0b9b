using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Grpc.Net.Client;
using Mis.Policy.V1;
using Mis.Testing;

namespace Mis.Server.Tests;

/// <summary>The real <c>mis enforcer</c> binary (mis.dll beside these tests) as its own process.</summary>
public sealed partial class EnforcerProcessTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-enforcer-bin-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Help_documents_the_config_argument_and_that_it_needs_root()
    {
        var (exit, stdout, _) = RunToEnd("enforcer", "--help");
        Assert.Equal(0, exit);
        Assert.Contains("CONFIG", stdout);
        Assert.Contains("Needs root", stdout);
        Assert.Contains("SIGTERM", stdout);
    }

    [Fact]
    public void A_broken_configuration_or_policy_is_refused_with_exit_2_and_the_location()
    {
        HostRequirements.Root();
        string config = Path.Combine(_dir, "config.toml");
        File.WriteAllText(config, "[grpc]\nenabled = true\nport = \"abc\"\n");
        var (exit, _, stderr) = RunToEnd("enforcer", config);
        Assert.Equal(2, exit);
        Assert.Contains($"{config}:3:8: grpc.port", stderr);

        File.WriteAllText(config, "[grpc]\nport = 50999\n");
        (exit, _, stderr) = RunToEnd("enforcer", config);
        Assert.Equal(2, exit);
        Assert.Contains("[grpc] enabled = false", stderr);

        File.WriteAllText(Path.Combine(_dir, "policy.toml"), "[[file]]\npath = \"/x\"\nops = [\"fly\"]\naction = \"deny\"\n");
        File.WriteAllText(config, $"[paths]\nstate_dir = \"{_dir}/state\"\npolicy_files = [\"policy.toml\"]\n[grpc]\nenabled = true\nport = {FreePort()}\n");
        (exit, _, stderr) = RunToEnd("enforcer", config);
        Assert.Equal(2, exit);
        Assert.Contains($"{Path.Combine(_dir, "policy.toml")}:3:", stderr); // relative to the config file
        Assert.False(Directory.Exists(Path.Combine(_dir, "state")), "nothing was set up");
    }

    [Fact]
    public async Task It_serves_refuses_a_second_instance_and_stops_cleanly_on_SIGTERM()
    {
        HostRequirements.Root();
        int grpcPort = FreePort(), metricsPort = FreePort();
        string socket = Path.Combine(_dir, "mis.sock");
        string config = WriteConfig("first.toml", grpcPort, metricsPort, $"unix_socket_path = \"{socket}\"");
        using var first = MisProcess.Start("enforcer", config);
        string misRoot = Path.Combine(TestEnforcer.CgroupMount, "mis", $"enforcer-{first.Process.Id}");
        try
        {
            await first.WaitForAsync("mis enforcer: ready", TimeSpan.FromSeconds(60));
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{grpcPort}");
            var client = new PolicyService.PolicyServiceClient(channel);
            var started = await client.RunWorkloadAsync(new RunWorkloadRequest { Command = "sleep", Args = { "62.832" } }, cancellationToken: Ct);
            Assert.StartsWith(misRoot + "/", started.CgroupPath);
            await TestEnforcer.WaitAsleepAsync(started.Pid);
            using (var http = new HttpClient())
                Assert.Contains("mis_managed_cgroups 1", await http.GetStringAsync($"http://127.0.0.1:{metricsPort}/metrics", Ct));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));

            var (exit, _, stderr) = RunToEnd("enforcer", WriteConfig("second.toml", FreePort(), FreePort(), ""));
            Assert.Equal(1, exit);
            Assert.Contains($"another mis enforcer (pid {first.Process.Id}) already runs with the state directory {_dir}/state", stderr);

            first.Terminate();
            Assert.True(first.Process.WaitForExit(TimeSpan.FromSeconds(30)), "mis enforcer did not stop on SIGTERM");
            Assert.Equal(0, first.Process.ExitCode);
            Assert.False(Directory.Exists(misRoot), $"{misRoot} left behind");
            Assert.NotEqual("sleep", TestEnforcer.ReadComm(started.Pid));
            Assert.False(File.Exists(socket));
            string log = first.Stderr;
            Assert.Contains("mis enforcer: stopped", log);
            Assert.Contains("\"Workload started", log); // [logging] format = "json"
        }
        finally
        {
            if (!first.Process.HasExited)
                first.Process.Kill();
        }
    }

    private string WriteConfig(string name, int grpcPort, int metricsPort, string grpcExtra)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, $"""
            [paths]
            state_dir = "{_dir}/state"
            [grpc]
            enabled = true
            port = {grpcPort}
            {grpcExtra}
            [metrics]
            enabled = true
            port = {metricsPort}
            [logging]
            format = "json"
            audit_log_path = "{_dir}/audit-{name}.jsonl"
            """);
        return path;
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private static (int Exit, string Stdout, string Stderr) RunToEnd(params string[] args)
    {
        using var run = MisProcess.Start(args);
        Assert.True(run.Process.WaitForExit(TimeSpan.FromSeconds(60)), $"mis {string.Join(' ', args)} did not finish");
        run.Process.WaitForExit();
        return (run.Process.ExitCode, run.Stdout, run.Stderr);
    }
}
