using Grpc.Net.Client;
using Mis.Policy.V1;
using Mis.Testing;

namespace Mis.Server.Tests;

// What the policy server's process loads: it must never load the machine-learning stack (a
// gigabyte of libtorch, ML.NET, the plotting library), the agents or the experiments, even though
// the `mis` binary carries them for other commands. (The command line's own code still loads the
// small Mis.Anomaly and Mis.Gym assemblies, and the daemon hosts the kernel episodes from
// Mis.Gym.Server; none of them pulls the heavy ones in: LayerTests.)
public sealed partial class EnforcerProcessTests
{
    [Fact]
    public async Task A_serving_enforcer_never_loads_torch_ml_net_plotting_or_the_agents()
    {
        HostRequirements.Root();
        int grpcPort = FreePort();
        using var enforcer = MisProcess.Start("enforcer", WriteConfig("footprint.toml", grpcPort, FreePort(), ""));
        await enforcer.WaitForAsync("mis enforcer: ready", TimeSpan.FromSeconds(60));
        using (var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{grpcPort}"))
        {
            var client = new PolicyService.PolicyServiceClient(channel);
            var started = await client.RunWorkloadAsync(new RunWorkloadRequest { Command = "cat", Args = { "/etc/shadow" } }, cancellationToken: Ct);
            Assert.True(started.Pid > 0);
            await client.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct);
        }
        var mapped = File.ReadAllLines($"/proc/{enforcer.Process.Id}/maps")
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(fields => fields.Length >= 6)
            .Select(fields => Path.GetFileName(fields[5]))
            .ToHashSet();
        enforcer.Terminate();
        Assert.Contains("Mis.Server.dll", mapped); // the check sees what the process loaded
        string[] heavy = ["TorchSharp.dll", "libtorch.so", "libtorch_cpu.so", "libLibTorchSharp.so", "Microsoft.ML.Core.dll",
            "ScottPlot.dll", "Mis.Torch.dll", "Mis.Gym.Agents.dll", "Mis.Gym.Experiments.dll"];
        var loaded = heavy.Where(mapped.Contains).ToList();
        Assert.True(loaded.Count == 0, $"mis enforcer loaded {string.Join(", ", loaded)}");
    }
}
