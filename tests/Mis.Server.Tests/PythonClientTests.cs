using System.Diagnostics;

namespace Mis.Server.Tests;

/// <summary>An independent client: Debian's python3-grpcio with stubs generated from proto/ at test time.</summary>
public sealed class PythonClientTests
{
    // Debian's python3-grpcio and python3-grpc-tools belong to /usr/bin/python3, not to whatever
    // python3 comes first on PATH.
    private const string Python = "/usr/bin/python3";

    [Fact]
    public async Task The_python_grpcio_client_drives_the_enforcer_end_to_end()
    {
        await using var mis = await TestEnforcer.StartAsync();
        Mis.Testing.HostRequirements.That(File.Exists(Python) && Run(Python, "-c", "import grpc, grpc_tools").Exit == 0,
            "Debian's python3-grpcio and python3-grpc-tools are not installed (./mis installs them)");

        var (exit, output) = Run(Python, Path.Combine(AppContext.BaseDirectory, "python", "policy_client.py"),
            Path.Combine(AppContext.BaseDirectory, "proto"), $"127.0.0.1:{mis.Host.GrpcTcpAddress!.Port}");

        TestContext.Current.TestOutputHelper?.WriteLine(output);
        Assert.True(exit == 0, output);
        Assert.Contains("passed, 0 failed", output);
    }

    private static (int Exit, string Output) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(90)))
        {
            p.Kill();
            return (-1, "timed out\n" + stdout.Result + stderr.Result);
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
