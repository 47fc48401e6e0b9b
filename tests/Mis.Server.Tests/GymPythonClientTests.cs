using System.Diagnostics;

namespace Mis.Server.Tests;

/// <summary>
/// clients/python/mis_gym.py, the Gymnasium-shaped Python client, against a real server: its own
/// checks (clients/python/test_mis_gym.py), the example random agent and the PyTorch PPO example.
/// Debian's python3-grpcio, python3-numpy and python3-torch, stubs generated from proto/ by the
/// client at run time.
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

    [Fact]
    public async Task The_PPO_example_trains_on_a_small_budget_and_its_return_rises()
    {
        await using var gym = await GymTestServer.StartAsync();
        RequirePython("torch");

        var (gaeExit, gaeOutput) = Run("", Python, "-m", "unittest", "-v", "test_ppo_torch");
        Assert.True(gaeExit == 0, gaeOutput);

        // 8 updates of 16 envs x 64 steps. Seeded and single-threaded, so the run is the same every
        // time: the mean return goes from 0.68 (random) to 6.4 (the honest path pays 9.8); seeds 2-4
        // rise by 3.9 or more too.
        var (exit, output) = Run(gym.Target, Python, "ppo_torch.py", "--target", gym.Target, "--total-steps", "8192", "--seed", "1");

        TestContext.Current.TestOutputHelper?.WriteLine(output);
        Assert.True(exit == 0, output);
        Assert.Contains("config: target=" + gym.Target, output);
        var updates = output.Split('\n').Where(l => l.StartsWith("update ", StringComparison.Ordinal)).ToList();
        Assert.Equal(8, updates.Count);
        Assert.All(updates, l => Assert.Matches(@"^update \d/8 steps \d+: episodes \d+, mean return -?[\d.]+, .*policy loss .*value loss .*entropy .*approx_kl .*steps/s$", l));
        var done = System.Text.RegularExpressions.Regex.Match(output, @"mean return first update (-?[\d.]+), last update (-?[\d.]+)");
        Assert.True(done.Success, output);
        double first = double.Parse(done.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        double last = double.Parse(done.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(last > first + 2.0, $"mean return {first} in the first update, {last} in the last");
        Assert.Equal(0, gym.Host.Envs.Count); // it closed its vector
    }

    // The client needs grpc (and its checks numpy); the PPO example needs torch as well.
    private static void RequirePython(string? also = null) =>
        Mis.Testing.HostRequirements.That(File.Exists(Python) && Run("", Python, "-c", "import grpc, grpc_tools, numpy" + (also is null ? "" : ", " + also)).Exit == 0,
            $"Debian's python3-grpcio, python3-grpc-tools and python3-numpy{(also is null ? "" : $" and python3-{also}")} are not installed (./mis installs them)");

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
