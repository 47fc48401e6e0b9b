using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Mis.Enforcer.Events;
using Mis.Native;
using Mis.Testing;

namespace Mis.Cli.Tests;

/// <summary>
/// `mis run` end to end on the real kernel: the real binary, a real cgroup, the real BPF programs
/// and the seccomp supervisor. Each test reads what a researcher would: exit status, stdout, the
/// event file.
/// </summary>
public sealed class RunCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-run-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string EventsFile => Path.Combine(_dir, "events.jsonl");

    private List<EnforcementEvent> Events() => File.ReadAllLines(EventsFile).Select(EnforcementEvent.FromJsonLine).ToList();

    private static void RequireKernel()
    {
        HostRequirements.Root();
        HostRequirements.That(File.Exists("/sys/kernel/btf/vmlinux"), "no kernel BTF");
    }

    [Fact]
    public void Seed_example_escalates_5_4_3_2_1_is_killed_and_prints_no_byte_of_the_file()
    {
        RequireKernel();
        var result = CliRunner.Run("run", "--events", EventsFile, "--", "sh", "-c", "for i in $(seq 20); do cat /etc/shadow; done");

        Assert.True(result.ExitCode == 137, $"exit {result.ExitCode}\n{result.Stderr}");
        foreach (var line in File.ReadAllLines("/etc/shadow").Where(l => l.Length > 0))
            Assert.DoesNotContain(line, result.Stdout);
        Assert.Equal("", result.Stdout);

        var events = Events();
        var transitions = events.Where(e => e.Event == "defcon_transition").Select(e => (e.PrevDefcon, e.Defcon, e.Violations)).ToList();
        Assert.Equal([(5, 4, 3UL), (4, 3, 6UL), (3, 2, 10UL), (2, 1, 15UL)], transitions);
        Assert.Equal(15, events.Count(e => e.Event == "violation"));
        Assert.Contains(events, e => e.Event == "kill" && e.Defcon == 1);
        var exit = events.Last();
        Assert.Equal("exit", exit.Event);
        Assert.Equal(137, exit.ExitStatus);
        Assert.Equal(9, exit.Signal);
        Assert.True(exit.SlowdownNs > 0);
        Assert.Contains("killed by MIS at DEFCON 1", result.Stderr);
        // Every event carries the common fields.
        Assert.All(events, e => Assert.Equal(events[0].CgroupId, e.CgroupId));
        Assert.All(events.Where(e => e.Event == "violation"), e =>
        {
            Assert.True(e.Pid > 0 && e.Tid > 0);
            Assert.NotEqual("", e.Comm);
            Assert.Equal("deny", e.Decision);
        });
    }

    [Fact]
    public void Exit_status_and_output_pass_through()
    {
        RequireKernel();
        var result = CliRunner.Run("run", "--", "sh", "-c", "echo hello from $(id -un); exit 3");
        Assert.Equal(3, result.ExitCode);
        Assert.Equal("hello from nobody\n", result.Stdout);
        Assert.Contains("exited with status 3", result.Stderr);
    }

    [Fact]
    public void Learning_mode_records_syscalls_and_never_escalates()
    {
        RequireKernel();
        var result = CliRunner.Run("run", "--learn", "--events", EventsFile, "--", "sh", "-c", "for i in $(seq 20); do cat /etc/shadow 2>/dev/null; done; exit 0");
        Assert.True(result.ExitCode == 0, result.Stderr);
        var events = Events();
        Assert.DoesNotContain(events, e => e.Event is "defcon_transition" or "kill");
        Assert.Contains(events, e => e.Event == "syscall" && e.SyscallNr is not null);
        Assert.Equal(5, events.Last().Defcon);
    }

    [Fact]
    public void A_denied_loopback_connect_fails_with_EPERM_while_an_allowed_one_works()
    {
        RequireKernel();
        using var denied = new TcpListener(IPAddress.Loopback, 0);
        using var allowed = new TcpListener(IPAddress.Loopback, 0);
        denied.Start();
        allowed.Start();
        int deniedPort = ((IPEndPoint)denied.LocalEndpoint).Port, allowedPort = ((IPEndPoint)allowed.LocalEndpoint).Port;
        string policy = Path.Combine(_dir, "net.toml");
        File.WriteAllText(policy, $"""
            [[network]]
            address = "127.0.0.1"
            port = {deniedPort}
            protocol = "tcp"
            action = "deny"

            [[network]]
            address = "127.0.0.1"
            port = {allowedPort}
            action = "allow"
            """);
        string script = $$"""
            import socket, errno
            for port in ({{deniedPort}}, {{allowedPort}}):
                s = socket.socket()
                try:
                    s.connect(("127.0.0.1", port)); print(port, "ok")
                except OSError as e:
                    print(port, errno.errorcode[e.errno])
            """;
        var result = CliRunner.Run("run", "--policy", policy, "--events", EventsFile, "--", "/usr/bin/python3", "-c", script);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Contains($"{deniedPort} EPERM", result.Stdout);
        Assert.Contains($"{allowedPort} ok", result.Stdout);
        var violation = Assert.Single(Events(), e => e.Event == "violation");
        Assert.Equal("connect", violation.Operation);
        Assert.Equal($"127.0.0.1:{deniedPort}", violation.Target);
    }

    [Fact]
    public void A_deny_any_rule_blocks_IPv4_and_IPv6_destinations()
    {
        RequireKernel();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        string policy = Path.Combine(_dir, "any.toml");
        File.WriteAllText(policy, "[[network]]\naddress = \"any\"\naction = \"deny\"\n");
        string script = $$"""
            import socket, errno
            for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                s = socket.socket(family)
                try:
                    s.connect((host, {{port}})); print(host, "ok")
                except OSError as e:
                    print(host, errno.errorcode[e.errno])
            """;
        var result = CliRunner.Run("run", "--policy", policy, "--", "/usr/bin/python3", "-c", script);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Contains("127.0.0.1 EPERM", result.Stdout);
        Assert.Contains("::1 EPERM", result.Stdout);
    }

    [Fact]
    public void The_workload_cannot_signal_the_enforcer()
    {
        RequireKernel();
        var result = CliRunner.Run("run", "--as-root", "--events", EventsFile, "--", "sh", "-c", "kill -KILL $PPID; echo still here: $?");
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.StartsWith("still here: 1", result.Stdout);
        Assert.Contains(Events(), e => e.Event == "violation" && e.Operation == "escape_syscall");
    }

    [Fact]
    public void Nothing_is_left_behind_after_a_run()
    {
        RequireKernel();
        string misRoot = Path.Combine(CgroupV2.FindMount()!, "mis");
        var before = Directory.Exists(misRoot) ? Directory.GetDirectories(misRoot, "enforcer-*") : [];

        var result = CliRunner.Run("run", "--", "sh", "-c", "sleep 31.4159 & cat /etc/shadow; exit 0");
        Assert.True(result.ExitCode == 0, result.Stderr);

        // Links and maps die with the mis process that held them; in-process release is checked in
        // Mis.Enforcer.Tests (WorkloadRunnerTests). Here: the cgroup and the workload's processes.
        Assert.Equal(before, Directory.Exists(misRoot) ? Directory.GetDirectories(misRoot, "enforcer-*") : []);
        // The background sleep was in the workload's cgroup, so it died with it.
        Assert.DoesNotContain(Process.GetProcessesByName("sleep"), p => CommandLine(p.Id).Contains("31.4159", StringComparison.Ordinal));
    }

    [Fact]
    public void If_the_enforcer_dies_its_workload_dies_with_it()
    {
        RequireKernel();
        var psi = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "mis.dll"), "run", "--", "sh", "-c", "sleep 45.678 & sleep 45.679" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var mis = Process.Start(psi)!;
        try
        {
            Assert.True(SpinWait.SpinUntil(() => SleepPids().Count == 2, TimeSpan.FromSeconds(30)), "the workload did not start");
            mis.Kill(); // SIGKILL: no cleanup code of the enforcer runs
            mis.WaitForExit();
            Assert.True(SpinWait.SpinUntil(() => SleepPids().Count == 0, TimeSpan.FromSeconds(10)),
                $"workload processes outlived the enforcer: {string.Join(", ", SleepPids())}");
            string misRoot = Path.Combine(CgroupV2.FindMount()!, "mis");
            Assert.True(SpinWait.SpinUntil(() => !Directory.Exists(Path.Combine(misRoot, $"enforcer-{mis.Id}")), TimeSpan.FromSeconds(10)),
                "the dead enforcer's cgroups were not removed");
        }
        finally
        {
            if (!mis.HasExited)
                mis.Kill(entireProcessTree: true);
        }
    }

    private static List<int> SleepPids() =>
        Process.GetProcessesByName("sleep").Where(p => CommandLine(p.Id).Contains("45.67", StringComparison.Ordinal)).Select(p => p.Id).ToList();

    [Fact]
    public void A_broken_policy_is_an_error_naming_file_line_and_key()
    {
        string policy = Path.Combine(_dir, "bad.toml");
        File.WriteAllText(policy, "[[file]]\npath = \"/a\"\naction = \"forbid\"\n");
        var result = CliRunner.Run("run", "--policy", policy, "--", "true");
        Assert.Equal(125, result.ExitCode);
        Assert.Contains("bad.toml:3:10: file.action", result.Stderr);
    }

    [Fact]
    public void Without_root_the_error_says_so()
    {
        HostRequirements.Root(); // to become someone else
        var result = CliRunner.RunAs("nobody", "run", "--", "true");
        Assert.Equal(125, result.ExitCode);
        Assert.Contains("root", result.Stderr);
    }

    private static string CommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline");
        }
        catch (IOException)
        {
            return "";
        }
    }
}
