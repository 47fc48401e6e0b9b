using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Mis.Gym.Envs;
using Mis.Server.Hosting;

namespace Mis.Gym.Server;

/// <summary>
/// A running <c>mis gym serve</c>: mis.gym.v1.GymService (and server reflection) on Kestrel, over
/// TCP or a 0600 Unix socket. Stopping drains the calls in flight, then closes every environment
/// still open (a kernel backend's workloads killed, cgroups removed, programs detached).
/// </summary>
public sealed class GymHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly GymServerOptions _options;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stopSweeping = new();
    private readonly Task _sweeper;
    private int _disposed;

    private GymHost(WebApplication app, GymServerOptions options, GymEnvTable envs, ILogger log)
    {
        (_app, _options, Envs, _log) = (app, options, envs, log);
        Addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? [];
        _sweeper = options.IdleTimeout > TimeSpan.Zero ? SweepIdleAsync(options.IdleTimeout, _stopSweeping.Token) : Task.CompletedTask;
    }

    /// <summary>The open environments.</summary>
    internal GymEnvTable Envs { get; }

    /// <summary>What the server listens on, as Kestrel reports it (the real port when 0 was asked for).</summary>
    internal IReadOnlyList<string> Addresses { get; }

    /// <summary>The TCP address (http://IP:PORT), or null when listening on a Unix socket.</summary>
    internal Uri? TcpAddress => Addresses.Where(a => !a.Contains("unix:", StringComparison.Ordinal)).Select(a => new Uri(a)).FirstOrDefault();

    /// <summary>Starts serving.</summary>
    /// <exception cref="GymStartException">A wrong option (missing scenarios directory, unknown backend) or the host refusing (address taken).</exception>
    internal static async Task<GymHost> StartAsync(GymServerOptions options, ILoggerFactory logs, CancellationToken cancel = default)
    {
        ScenarioCatalog catalog;
        try
        {
            catalog = new ScenarioCatalog(options.ScenarioDirectory);
        }
        catch (DirectoryNotFoundException e)
        {
            throw new GymStartException($"--scenarios: {e.Message}", true, e);
        }
        if (options.AllowedBackends.Count == 0)
            throw new GymStartException($"--backend-allow: allow at least one backend ({string.Join(", ", MisGym.Backends)})", true);
        if (options.AllowedBackends.FirstOrDefault(b => !MisGym.Backends.Contains(b)) is { } unknown)
            throw new GymStartException($"--backend-allow: unknown backend \"{unknown}\"; expected some of: {string.Join(", ", MisGym.Backends)}", true);
        string? socket = options.Listen.UnixPath;
        if (socket is not null)
        {
            try
            {
                UnixSocketFile.Prepare(socket);
            }
            catch (EnforcerStartException e)
            {
                throw new GymStartException(e.Message.Replace("grpc.unix_socket_path: ", "--listen: ", StringComparison.Ordinal), e.IsConfiguration, e);
            }
        }

        var envs = new GymEnvTable(options.MaxEnvs, options.Clock);
        var app = Build(options, catalog, envs, logs);
        try
        {
            if (socket is not null)
            {
                await UnixSocketFile.BindPrivatelyAsync(() => app.StartAsync(cancel)).ConfigureAwait(false);
                UnixSocketFile.Restrict(socket);
            }
            else
            {
                await app.StartAsync(cancel).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw new GymStartException($"cannot listen on {options.Listen}: {e.Message}", false, e);
        }
        var log = logs.CreateLogger("Mis.Gym.Server");
        var host = new GymHost(app, options, envs, log);
        log.GymServing(string.Join(", ", host.Addresses), catalog.Directory, string.Join(",", options.AllowedBackends), options.MaxEnvs);
        return host;
    }

    /// <summary>Stops: drains the calls in flight, closes every open environment, removes the socket. Safe to call twice.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        await _stopSweeping.CancelAsync().ConfigureAwait(false);
        await _sweeper.ConfigureAwait(false);
        _stopSweeping.Dispose();
        using (var drain = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
            await _app.StopAsync(drain.Token).ConfigureAwait(false);
        var closed = await Envs.CloseAllAsync().ConfigureAwait(false);
        foreach (var (id, error) in closed)
        {
            if (error is not null)
                _log.GymEnvCloseFailed(id, $"{error.GetType().Name}: {error.Message}");
        }
        await _app.DisposeAsync().ConfigureAwait(false);
        if (_options.Listen.UnixPath is { } socket)
            UnixSocketFile.Remove(socket);
        _log.GymStopped(closed.Count);
    }

    // Looks for idle environments a few times per timeout (at least every 30 s), so one is closed
    // at most about a quarter of the timeout late.
    private async Task SweepIdleAsync(TimeSpan limit, CancellationToken stop)
    {
        var period = TimeSpan.FromTicks(Math.Clamp(limit.Ticks / 4, TimeSpan.TicksPerMillisecond, TimeSpan.FromSeconds(30).Ticks));
        using var timer = new PeriodicTimer(period, _options.Clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                foreach (var (id, error) in await Envs.CloseIdleAsync(limit).ConfigureAwait(false))
                {
                    _log.GymEnvIdleClosed(id, (long)limit.TotalSeconds);
                    if (error is not null)
                        _log.GymEnvCloseFailed(id, $"{error.GetType().Name}: {error.Message}");
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    private static WebApplication Build(GymServerOptions options, ScenarioCatalog catalog, GymEnvTable envs, ILoggerFactory logs)
    {
        // An empty builder, as the enforcer's: no appsettings.json, no ASPNETCORE_* variables, no
        // default URLs; only the address configured here listens.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "mis-gym" });
        builder.WebHost.UseKestrelCore();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            // Every connection is judged as it is accepted: a workload's calls are refused (RefuseWorkloadCalls).
            string? WorkloadTree() => options.WorkloadTree;
            void Configure(ListenOptions listen, Func<ConnectionDelegate, ConnectionDelegate> judge)
            {
                listen.Protocols = HttpProtocols.Http2;
                listen.Use(judge);
                listen.Use(ClientConnection.Track);
            }
            if (options.Listen.UnixPath is { } path)
                kestrel.ListenUnixSocket(path, listen => Configure(listen, WorkloadConnections.JudgeUnixSocket(WorkloadTree)));
            else
                kestrel.Listen(options.Listen.Ip!, options.Listen.Port, listen => Configure(listen, WorkloadConnections.JudgeTcp(WorkloadTree)));
        });
        builder.Services.AddRoutingCore();
        builder.Services.AddLogging();
        builder.Services.Replace(ServiceDescriptor.Singleton(logs));
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(catalog);
        builder.Services.AddSingleton(envs);
        builder.Services.AddGrpc(grpc => grpc.Interceptors.Add<RefuseWorkloadCalls>());
        builder.Services.AddGrpcReflection();
        var app = builder.Build();
        app.UseRouting();
        app.MapGrpcService<GymServiceImpl>();
        app.MapGrpcReflectionService();
        return app;
    }
}

/// <summary>A client's connection, as its calls see it: whether it has closed.</summary>
internal sealed class ClientConnection(CancellationToken closed)
{
    /// <summary>Cancelled when the transport connection closes.</summary>
    internal CancellationToken Closed { get; } = closed;

    /// <summary>A connection middleware that puts the connection's <see cref="ClientConnection"/> where its calls find it.</summary>
    internal static Func<ConnectionDelegate, ConnectionDelegate> Track => next => connection =>
    {
        connection.Features.Set(new ClientConnection(connection.ConnectionClosed));
        return next(connection);
    };
}

/// <summary>
/// <c>mis gym serve</c> cannot start; <see cref="IsConfiguration"/> separates a wrong option
/// (exit 2) from a host problem such as a taken address (exit 1).
/// </summary>
public sealed class GymStartException(string message, bool isConfiguration, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>An option is wrong, as opposed to the host refusing.</summary>
    internal bool IsConfiguration { get; } = isConfiguration;
}
