using Grpc.Core;
using Mis.Episodes.V1;
using Mis.Gym.Server;

namespace Mis.Server.Tests;

/// <summary>
/// mis.episodes.v1.KernelEpisodeService as the node daemon hosts it, called here over loopback TCP
/// (an admin caller, so episodes run as root): what it refuses and why, calls out of order, and
/// the daemon stopping with backends open. Runs as other users are in Mis.Cli.Tests'
/// NodeDaemonEpisodeTests, against the real daemon process.
/// </summary>
public sealed class KernelEpisodeServiceTests
{
    private static readonly string ScenarioPath = Path.Combine(GymTestServer.ShippedScenarios, "data-shortcut-strict.toml");

    [Fact]
    public async Task Open_refuses_what_it_cannot_run_with_INVALID_ARGUMENT_saying_why()
    {
        await using var mis = await StartAsync();
        var client = new KernelEpisodeService.KernelEpisodeServiceClient(mis.Channel);
        var good = Request();

        var broken = await Refused(client, StatusCode.InvalidArgument, good.Clone().With(r => r.ScenarioText = "[scenario]\nmax_steps = \"many\"\n"));
        Assert.Contains($"{ScenarioPath}:2", broken);
        Assert.Contains("max_steps", broken);
        Assert.Contains("absolute path", await Refused(client, StatusCode.InvalidArgument, good.Clone().With(r => r.ScenarioFile = "data-shortcut-strict.toml")));
        Assert.Contains("slowdown_us", await Refused(client, StatusCode.InvalidArgument, good.Clone().With(r => r.SlowdownUs.RemoveAt(0))));
        string command = File.ReadAllText(Path.Combine(GymTestServer.ShippedScenarios, "agent-command.toml"));
        Assert.Contains("runs a command", await Refused(client, StatusCode.InvalidArgument, good.Clone().With(r => r.ScenarioText = command)));
        // A policy file the scenario names comes as text, or not at all: the daemon reads no caller's file.
        string named = File.ReadAllText(Path.Combine(GymTestServer.ShippedScenarios, "example-policy.toml"));
        Assert.Contains("not found", await Refused(client, StatusCode.InvalidArgument,
            good.Clone().With(r => (r.ScenarioFile, r.ScenarioText) = (Path.Combine(GymTestServer.ShippedScenarios, "example-policy.toml"), named))));
    }

    [Fact]
    public async Task Calls_out_of_order_or_on_an_unknown_backend_fail_with_the_reason_and_Close_removes_its_cgroups()
    {
        await using var mis = await StartAsync();
        var client = new KernelEpisodeService.KernelEpisodeServiceClient(mis.Channel);
        var opened = await client.OpenAsync(Request(), cancellationToken: Ct);
        Assert.True(Directory.Exists(opened.CgroupsRoot), opened.CgroupsRoot);
        Assert.Equal("root", opened.User); // an admin TCP caller's episodes run as root, as in-process

        Assert.Contains("BeginEpisode", await Refused(() => client.PerformAsync(new PerformRequest { BackendId = opened.BackendId, Action = 0 }).ResponseAsync, StatusCode.FailedPrecondition));
        var fresh = await client.BeginAsync(new BackendRef { BackendId = opened.BackendId }, cancellationToken: Ct);
        Assert.Equal((5, 0UL), (fresh.Defcon, fresh.Violations));
        Assert.Contains("0..", await Refused(() => client.PerformAsync(new PerformRequest { BackendId = opened.BackendId, Action = 99 }).ResponseAsync, StatusCode.InvalidArgument));
        // peek_answers (action 4) is denied: one violation, DEFCON 4 under the zero-tolerance ladder.
        var denied = await client.PerformAsync(new PerformRequest { BackendId = opened.BackendId, Action = 4 }, cancellationToken: Ct);
        Assert.Equal((ActionResult.Denied, 4, 1UL), (denied.Result, denied.State.Defcon, denied.State.Violations));
        Assert.StartsWith(opened.CgroupsRoot + "/", denied.CgroupPath);

        await client.CloseAsync(new BackendRef { BackendId = opened.BackendId }, cancellationToken: Ct);
        Assert.False(Directory.Exists(opened.CgroupsRoot), "the backend's cgroups outlived Close");
        Assert.Contains("no kernel backend", await Refused(() => client.BeginAsync(new BackendRef { BackendId = opened.BackendId }).ResponseAsync, StatusCode.NotFound));
    }

    [Fact]
    public async Task Stopping_the_daemon_kills_the_open_episodes_removes_their_cgroups_and_a_client_gets_UNAVAILABLE()
    {
        var mis = await StartAsync();
        using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(mis.Host.GrpcTcpAddress!); // outlives the test enforcer's own
        var client = new KernelEpisodeService.KernelEpisodeServiceClient(channel);
        var opened = await client.OpenAsync(Request(), cancellationToken: Ct);
        await client.BeginAsync(new BackendRef { BackendId = opened.BackendId }, cancellationToken: Ct);
        var episode = (await client.PerformAsync(new PerformRequest { BackendId = opened.BackendId, Action = 0 }, cancellationToken: Ct)).CgroupPath;
        Assert.True(Directory.Exists(episode));

        await mis.DisposeAsync();

        Assert.False(Directory.Exists(opened.CgroupsRoot), "the episode's cgroups outlived the daemon");
        await Refused(() => client.PerformAsync(new PerformRequest { BackendId = opened.BackendId, Action = 0 }).ResponseAsync, StatusCode.Unavailable);
    }

    private static Task<TestEnforcer> StartAsync() => TestEnforcer.StartAsync(services: [KernelEpisodes.Hosting(TimeSpan.FromSeconds(30))]);

    private static OpenRequest Request() => new()
    {
        ScenarioFile = ScenarioPath,
        ScenarioText = File.ReadAllText(ScenarioPath),
        SlowdownUs = { 100, 500, 2000 },
        KillAtLevel1 = true,
    };

    private static async Task<string> Refused(KernelEpisodeService.KernelEpisodeServiceClient client, StatusCode code, OpenRequest request) =>
        await Refused(() => client.OpenAsync(request).ResponseAsync, code);

    private static async Task<string> Refused(Func<Task> call, StatusCode code)
    {
        var e = await Assert.ThrowsAsync<RpcException>(call);
        Assert.True(e.StatusCode == code, $"expected {code}, got {e.StatusCode}: {e.Status.Detail}");
        return e.Status.Detail;
    }
}

internal static class OpenRequestEdits
{
    /// <summary>The request after <paramref name="edit"/> (on a clone the caller made).</summary>
    internal static OpenRequest With(this OpenRequest request, Action<OpenRequest> edit)
    {
        edit(request);
        return request;
    }
}
