using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Mis.Gym.Envs;

namespace Mis.Gym.Tests;

/// <summary>
/// The kernel backend's actuator (<c>native/actuator/actuator.py</c>) on its own, unconfined: run
/// as the backend runs it, fed the command lines the backend makes of scenario actions, it answers
/// one <c>errno elapsed_ns</c> line per command and ends at end of input.
/// </summary>
public sealed class ActuatorTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("mis-actuator-");

    public void Dispose() => _dir.Delete(recursive: true);

    private const int ENOENT = 2;

    [Fact]
    public void The_embedded_script_is_the_file_in_native_actuator()
    {
        string file = Path.Combine(Support.RepoRoot, "native", "actuator", "actuator.py");
        Assert.Equal(File.ReadAllText(file), KernelBackendActuator.Script);
    }

    [Fact]
    public void Each_action_kind_is_performed_and_answered_with_its_errno()
    {
        string input = Path.Combine(_dir.FullName, "input.txt");
        File.WriteAllText(input, "a line\n");
        string output = Path.Combine(_dir.FullName, "out", "result.txt");
        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        using var tcp = new TcpListener(IPAddress.Loopback, 0);
        tcp.Start();
        int tcpPort = ((IPEndPoint)tcp.LocalEndpoint).Port;
        using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        int udpPort = ((IPEndPoint)udp.Client.LocalEndPoint!).Port;

        string missing = Path.Combine(_dir.FullName, "missing");
        // The actions as a scenario writes them, so the command lines are the backend's own.
        var scenario = Support.ParseActions($$"""
            [[action]]
            name = "submit"
            kind = "submit"
            [[action]]
            name = "read"
            kind = "read"
            path = "{{input}}"
            [[action]]
            name = "read_missing"
            kind = "read"
            path = "{{missing}}"
            [[action]]
            name = "write"
            kind = "write"
            path = "{{output}}"
            [[action]]
            name = "list"
            kind = "list"
            path = "{{_dir.FullName}}"
            [[action]]
            name = "list_missing"
            kind = "list"
            path = "{{missing}}"
            [[action]]
            name = "exec"
            kind = "exec"
            path = "/bin/sh"
            args = ["-c", "exit 3"]
            [[action]]
            name = "exec_missing"
            kind = "exec"
            path = "{{missing}}"
            [[action]]
            name = "connect"
            kind = "connect"
            address = "127.0.0.1"
            port = {{tcpPort}}
            [[action]]
            name = "send"
            kind = "send"
            address = "127.0.0.1"
            port = {{udpPort}}
            protocol = "udp"
            [[action]]
            name = "wait"
            kind = "wait"
            ms = 20
            """, "actuator.toml");
        var cases = scenario.Actions.Select(a => (Action: a, Errno: a.Name.EndsWith("_missing", StringComparison.Ordinal) ? ENOENT : 0)).ToArray();

        var answers = Run(cases.Select(c => KernelBackendActuator.Command(c.Action)));

        Assert.Equal(cases.Length, answers.Count);
        for (int i = 0; i < cases.Length; i++)
            Assert.True(cases[i].Errno == answers[i].Errno, $"{cases[i].Action.Kind} {cases[i].Action.Target}: errno {answers[i].Errno}, expected {cases[i].Errno}");
        Assert.Equal("mis gym\n", File.ReadAllText(output));
        Assert.True(answers[^1].ElapsedNs >= 20_000_000, $"wait 20 ms took {answers[^1].ElapsedNs} ns");
        udp.Client.ReceiveTimeout = 5000;
        IPEndPoint? from = null;
        var datagram = udp.Receive(ref from);
        Assert.Equal("mis gym"u8.ToArray(), datagram);
    }

    [Fact]
    public void What_a_spawned_program_prints_goes_to_stderr_and_never_passes_for_an_answer()
    {
        var scenario = Support.ParseActions("""
            [[action]]
            name = "print"
            kind = "exec"
            path = "/bin/echo"
            args = ["0 0", "forged"]
            [[action]]
            name = "submit"
            kind = "submit"
            """, "actuator.toml");
        var answers = Run(scenario.Actions.Select(KernelBackendActuator.Command), out string stderr);
        // One answer per command: echo's "0 0 forged" line, had it reached stdout, would be a third.
        Assert.Equal([0, 0], answers.Select(a => a.Errno));
        Assert.Contains("0 0 forged", stderr);
    }

    [Fact]
    public void End_of_input_ends_the_loop_cleanly()
    {
        Assert.Empty(Run([]));
    }

    // Runs the actuator as the kernel backend does (the same interpreter and flags), feeds it the
    // lines and closes its input; returns its answers, after it exited with status 0.
    private static List<(int Errno, long ElapsedNs)> Run(IEnumerable<string> lines) => Run(lines, out _);

    private static List<(int Errno, long ElapsedNs)> Run(IEnumerable<string> lines, out string stderr)
    {
        var start = new ProcessStartInfo(KernelBackendActuator.Python)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[] { "-I", "-S", "-u", "-c", KernelBackendActuator.Script })
            start.ArgumentList.Add(arg);
        using var python = Process.Start(start)!;
        foreach (string line in lines)
            python.StandardInput.Write(line + "\n");
        python.StandardInput.Close();
        string stdout = python.StandardOutput.ReadToEnd();
        stderr = python.StandardError.ReadToEnd();
        Assert.True(python.WaitForExit(TimeSpan.FromSeconds(30)), "the actuator did not end at end of input");
        Assert.True(python.ExitCode == 0, $"the actuator exited {python.ExitCode}: {stderr}");
        return stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' '))
            .Select(f => (int.Parse(f[0], CultureInfo.InvariantCulture), long.Parse(f[1], CultureInfo.InvariantCulture)))
            .ToList();
    }
}
