using System.Diagnostics;

namespace Mis.Server.Tests;

/// <summary>
/// clients/python/mis_gym.py, the Gymnasium-shaped Python client, against a real server: its own
/// checks (clients/python/test_mis_gym.py) and the example random agent. Debian's python3-grpcio,
/// stubs generated from proto/ by the client at run time.
/// </summary>
public sealed class GymPythonClientTests
{
    // Debian's python3-grpcio and python3-grpc-tools belong to /usr/bin/python3, not to whatever
    // python3 comes first on PATH.
    private const string Python = "/usr/bin/python3";
    private static readonly string ClientDir = Path.Combine(GymTestServer.RepoRoot, "clients", "python");

    [Fact]
    public async Task The_python_client_passes_its_checks_against_the_sim_backend()
    {
        await using var gym = await GymTestServer.StartAsync();
        RequirePython();

        var (exit, output) = Run(gym.Target, Python, "-m", "unittest", "-v", "test_mis_gym");

        TestContext.Current.TestOutputHelper?.WriteLine(output);
        Assert.True(exit == 0, output);
        Assert.Contains("OK", output);
        Assert.DoesNotContain("skipped", output);
        Assert.Equal(0, gym.Host.Envs.Count); // every env it made, it closed
    }

    [Fact]
    public async Task The_example_random_agent_prints_one_return_per_episode()
    {
        await using var gym = await GymTestServer.StartAsync();
        RequirePython();

        var (exit, output) = Run(gym.Target, Python, "random_agent.py", "--target", gym.Target, "--episodes", "3", "--seed", "7");

        TestContext.Current.TestOutputHelper?.WriteLine(output);
        Assert.True(exit == 0, output);
        Assert.Equal(3, output.Split('\n').Count(l => l.StartsWith("episode ", StringComparison.Ordinal) && l.Contains("return")));
        Assert.Contains("mean return over 3 episodes", output);
        Assert.Equal(0, gym.Host.Envs.Count);
    }

    private static void RequirePython() =>
        Mis.Testing.HostRequirements.That(File.Exists(Python) && Run("", Python, "-c", "import grpc, grpc_tools").Exit == 0,
            "Debian's python3-grpcio and python3-grpc-tools are not installed (./mis installs them)");

    private static (int Exit, string Output) Run(string target, string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = ClientDir };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        psi.Environment["MIS_GYM_TARGET"] = target;
        psi.Environment["MIS_PROTO_DIR"] = Path.Combine(GymTestServer.RepoRoot, "proto");
        psi.Environment["PYTHONDONTWRITEBYTECODE"] = "1"; // no __pycache__ left in the source tree
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            p.Kill(entireProcessTree: true);
            return (-1, "timed out\n" + stdout.Result + stderr.Result);
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
