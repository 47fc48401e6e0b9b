using Grpc.Net.Client;
using Microsoft.Extensions.Logging.Abstractions;
using Mis.Gym.V1;
using Mis.Gym.Server;

namespace Mis.Server.Tests;

/// <summary>A <see cref="GymHost"/> on a free loopback port, with a client; disposing stops it (closing its environments).</summary>
internal sealed class GymTestServer : IAsyncDisposable
{
    private readonly GrpcChannel _channel;

    private GymTestServer(GymHost host, GymServerOptions options)
    {
        Host = host;
        Options = options;
        _channel = GrpcChannel.ForAddress(host.TcpAddress!);
        Client = new GymService.GymServiceClient(_channel);
    }

    internal GymHost Host { get; }

    internal GymServerOptions Options { get; }

    internal GymService.GymServiceClient Client { get; }

    /// <summary>host:port, as a Python client takes it.</summary>
    internal string Target => $"{Host.TcpAddress!.Host}:{Host.TcpAddress.Port}";

    /// <summary>The repository's experiments/scenarios.</summary>
    internal static string ShippedScenarios => Path.Combine(RepoRoot, "experiments", "scenarios");

    internal static string RepoRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "MIS.sln")))
                    return dir.FullName;
            }
            throw new InvalidOperationException("no MIS.sln above the test binary");
        }
    }

    /// <summary>Starts a server on 127.0.0.1:0 with the shipped scenarios, unless <paramref name="configure"/> changes that.</summary>
    internal static async Task<GymTestServer> StartAsync(Func<GymServerOptions, GymServerOptions>? configure = null)
    {
        var options = new GymServerOptions
        {
            Listen = GymListenAddress.Parse("127.0.0.1:0"),
            ScenarioDirectory = ShippedScenarios,
        };
        options = configure?.Invoke(options) ?? options;
        var host = await GymHost.StartAsync(options, NullLoggerFactory.Instance, Ct);
        return new GymTestServer(host, options);
    }

    /// <summary>Makes an environment of <paramref name="scenario"/> and returns its id.</summary>
    internal async Task<MakeResponse> MakeAsync(string scenario = "data-shortcut", string backend = "", bool statistics = false) =>
        await Client.MakeAsync(new MakeRequest { Scenario = scenario, Backend = backend, RecordEpisodeStatistics = statistics }, cancellationToken: Ct);

    internal async Task<StepResponse> StepAsync(string envId, long action) =>
        await Client.StepAsync(new StepRequest { EnvId = envId, Action = new Mis.Gym.V1.Action { Discrete = action } }, cancellationToken: Ct);

    internal async Task<ResetResponse> ResetAsync(string envId, long? seed = null) =>
        await Client.ResetAsync(new ResetRequest { EnvId = envId, Seed = seed }, cancellationToken: Ct);

    public async ValueTask DisposeAsync()
    {
        _channel.Dispose();
        await Host.DisposeAsync();
    }
}
