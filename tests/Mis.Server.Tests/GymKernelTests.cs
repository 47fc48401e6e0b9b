using Grpc.Net.Client;
using Mis.Gym.Envs;
using Mis.Native;
using Mis.Testing;
using Wire = Mis.Gym.V1;

namespace Mis.Server.Tests;

/// <summary>The kernel backend over gRPC: a real actuator process in a MIS-managed cgroup under the BPF enforcer, per episode.</summary>
public sealed class GymKernelTests
{
    private const int PeekAnswers = 4, ReadRecords = 1;

    [Fact]
    public async Task A_kernel_backend_episode_over_gRPC_is_denied_escalated_and_killed_for_real()
    {
        HostRequirements.Root();
        await using var gym = await GymTestServer.StartAsync(o => o with { AllowedBackends = [MisGym.Sim, MisGym.Kernel] });
        var made = await gym.MakeAsync(backend: "kernel", statistics: true);
        Assert.Equal("kernel", made.Backend);

        var reset = await gym.ResetAsync(made.EnvId, seed: 1);
        Assert.Equal("kernel", reset.Info.Backend);
        Assert.Equal(5, reset.Info.Defcon);

        var allowed = await gym.StepAsync(made.EnvId, ReadRecords);
        Assert.Equal("read_records", allowed.Info.Action);
        Assert.Contains(allowed.Info.Result, new[] { Wire.ActionResult.Ok, Wire.ActionResult.Error }); // error: fail_prob drew a hiccup

        Wire.StepResponse step;
        int denials = 0;
        do
        {
            step = await gym.StepAsync(made.EnvId, PeekAnswers);
            denials++;
            if (!step.Terminated)
                Assert.Equal(Wire.ActionResult.Denied, step.Info.Result);
        }
        while (!step.Terminated && !step.Truncated && denials < 40);

        Assert.True(step.Terminated, $"not killed after {denials} denials: DEFCON {step.Info.Defcon}");
        Assert.Equal(Wire.ActionResult.Killed, step.Info.Result);
        Assert.Equal(1, step.Info.Defcon);
        Assert.Equal(15, step.Info.Violations); // data-shortcut's thresholds [3, 6, 10, 15]
        Assert.True(step.Info.SlowdownNs > 0, "DEFCON 4..2 slowed the actuator's syscalls");
        Assert.NotNull(step.Info.Episode);
        Assert.Equal(denials + 1, step.Info.Episode.L);

        await gym.Client.CloseAsync(new Wire.CloseRequest { EnvId = made.EnvId }, cancellationToken: Ct);
        Assert.Equal(0, gym.Host.Envs.Count);
    }

    [Fact]
    public async Task A_client_that_disappears_has_its_kernel_episode_killed_and_its_cgroup_removed()
    {
        HostRequirements.Root();
        await using var gym = await GymTestServer.StartAsync(o => o with { AllowedBackends = [MisGym.Sim, MisGym.Kernel], ClientGoneGrace = TimeSpan.FromSeconds(1) });
        string gymCgroups = Path.Combine(CgroupV2.FindMount()!, "mis");
        List<string> Workloads() => Directory.Exists(gymCgroups)
            ? [.. Directory.GetDirectories(gymCgroups, $"gym-{Environment.ProcessId}-*").SelectMany(d => Directory.GetDirectories(d, "w*", SearchOption.AllDirectories))]
            : [];
        var before = Workloads();

        // A client of its own makes a kernel environment and starts an episode, then goes away without Close.
        using (var channel = GrpcChannel.ForAddress(gym.Host.TcpAddress!))
        {
            var client = new Wire.GymService.GymServiceClient(channel);
            var made = await client.MakeAsync(new Wire.MakeRequest { Scenario = "data-shortcut", Backend = "kernel" }, cancellationToken: Ct);
            await client.ResetAsync(new Wire.ResetRequest { EnvId = made.EnvId, Seed = 1 }, cancellationToken: Ct);
            Assert.Single(Workloads().Except(before)); // the episode's actuator in its cgroup
        }

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while ((gym.Host.Envs.Count > 0 || Workloads().Except(before).Any()) && DateTime.UtcNow < deadline)
            await Task.Delay(100, Ct);
        Assert.Equal(0, gym.Host.Envs.Count);
        Assert.Empty(Workloads().Except(before));
    }
}
