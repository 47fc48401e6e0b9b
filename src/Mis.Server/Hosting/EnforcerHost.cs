using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Kernel;
using Mis.Native.Bpf;
using Mis.Policy.V1;
using Mis.Native;
using Mis.Server.Engine;
using Mis.Server.Grpc;
using Mis.Server.Observability;

namespace Mis.Server.Hosting;

/// <summary>
/// A gRPC service the enforcer's server hosts besides PolicyService: on the same listeners, behind
/// the same interceptor (status mapping, metrics, audit), its callers authorized with
/// <see cref="ControlPlaneAccess.Authorize"/>. Singletons it registers are disposed when the server
/// stops, after the engine.
/// </summary>
/// <param name="Register">Adds the service's singletons (the <see cref="ControlPlaneAccess"/> is already there).</param>
/// <param name="Map">Maps it (<c>app.MapGrpcService&lt;T&gt;()</c>).</param>
public sealed record HostedGrpcService(Action<IServiceCollection> Register, Action<Microsoft.AspNetCore.Routing.IEndpointRouteBuilder> Map);

/// <summary>
/// The running enforcer: the <see cref="PolicyEngine"/>, the gRPC server (TCP, optionally TLS or
/// mutual TLS, and/or a Unix socket — root's alone, a group's or every local user's, its callers
/// authorized by SO_PEERCRED, see <see cref="ControlPlaneAccess"/> —, reflection on) and the metrics server. Start order is
/// validate (TLS files, addresses; the engine validates the policy files) → engine (state lock,
/// kernel, cgroups) → listeners; stop order is the reverse.
/// </summary>
public sealed class EnforcerHost : IAsyncDisposable
{
    private readonly WebApplication _grpc;
    private readonly WebApplication? _metrics;
    private readonly AuditLog? _audit;
    private readonly TlsMaterial? _tls;
    private int _disposed;

    private EnforcerHost(PolicyEngine engine, WebApplication grpc, WebApplication? metrics, AuditLog? audit, TlsMaterial? tls, RpcMetrics rpc)
    {
        Engine = engine;
        _grpc = grpc;
        _metrics = metrics;
        _audit = audit;
        _tls = tls;
        Rpc = rpc;
        GrpcAddresses = Addresses(grpc);
        MetricsUrl = metrics is null ? null : Addresses(metrics).FirstOrDefault() is { } m ? m.TrimEnd('/') + engine.Config.Metrics.Endpoint : null;
    }

    internal PolicyEngine Engine { get; }

    internal RpcMetrics Rpc { get; }

    /// <summary>What the gRPC server listens on, as Kestrel reports it (the real port when 0 was asked for).</summary>
    internal IReadOnlyList<string> GrpcAddresses { get; }

    /// <summary>The TCP address of the gRPC server (https when TLS is on), or null when it listens on a Unix socket only.</summary>
    public Uri? GrpcTcpAddress => GrpcAddresses.Where(a => !a.Contains("unix:", StringComparison.Ordinal)).Select(a => new Uri(a)).FirstOrDefault();

    /// <summary>The metrics page, or null when metrics are off.</summary>
    internal string? MetricsUrl { get; }

    /// <summary>Starts everything; on failure whatever started is stopped again.</summary>
    /// <exception cref="EnforcerStartException">Configuration or host problem (the message says which and why).</exception>
    public static Task<EnforcerHost> StartAsync(EngineOptions options, ILoggerFactory logs, CancellationToken cancel = default) =>
        StartAsync(options, logs, GrpcPipeline.Full, cancel);

    /// <summary>
    /// Starts everything with only the parts of the per-call path <paramref name="pipeline"/> names
    /// (benchmarks measure what each part costs with it); on failure whatever started is stopped again.
    /// </summary>
    /// <exception cref="EnforcerStartException">Configuration or host problem (the message says which and why).</exception>
    public static async Task<EnforcerHost> StartAsync(EngineOptions options, ILoggerFactory logs, GrpcPipeline pipeline, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        var config = options.Config;
        var grpcBind = ParseAddress(config.Grpc.BindAddress, "grpc.bind_address");
        var metricsBind = config.Metrics.Enabled ? ParseAddress(config.Metrics.BindAddress, "metrics.bind_address") : null;
        ControlPlaneAccess access;
        uint? socketGroup;
        try
        {
            access = ControlPlaneAccess.Create(config, options.ConfigPath, options.ConfigDirectory);
            socketGroup = ControlPlaneAccess.SocketGroup(config, options.ConfigPath);
        }
        catch (ConfigException e)
        {
            throw new EnforcerStartException(e.Message, true, e);
        }
        var tls = TlsMaterial.Load(config.Grpc);
        if (config.Grpc.UsesUnixSocket)
            UnixSocketFile.Prepare(config.Grpc.UnixSocketPath);

        PolicyEngine engine;
        try
        {
            engine = PolicyEngine.Start(options, logs);
        }
        catch (Exception e)
        {
            tls?.Dispose();
            throw e switch
            {
                ConfigException => new EnforcerStartException(e.Message, true, e),
                StateLockedException => new EnforcerStartException(e.Message, false, e),
                KernelUnavailableException or BpfException => new EnforcerStartException($"{e.Message} (see ./mis doctor)", false, e),
                InvalidOperationException or IOException or UnauthorizedAccessException or FileNotFoundException => new EnforcerStartException(e.Message, false, e),
                _ => e,
            };
        }

        // The parent of this enforcer's cgroup directory holds every MIS process's workloads.
        if (CgroupV2.FindMount() is { } mount && Path.GetDirectoryName(engine.CgroupRoot) is { } tree && tree.StartsWith(mount, StringComparison.Ordinal))
            access.WorkloadTree = "/" + Path.GetRelativePath(mount, tree).TrimStart('/');

        AuditLog? audit = null;
        WebApplication? grpc = null, metrics = null;
        var rpc = new RpcMetrics();
        try
        {
            if (config.Logging.AuditLogPath.Length > 0)
                audit = new AuditLog(config.Logging.AuditLogPath, config.Logging.MaxFileSizeBytes, config.Logging.MaxFiles);
            grpc = BuildGrpc(engine, access, grpcBind, tls, pipeline.Audit ? audit : null, rpc, pipeline, logs);
            if (config.Grpc.UsesUnixSocket)
            {
                await UnixSocketFile.BindPrivatelyAsync(() => grpc.StartAsync(cancel)).ConfigureAwait(false);
                UnixSocketFile.Open(config.Grpc.UnixSocketPath, config.Grpc.UnixSocketFileMode, socketGroup);
            }
            else
            {
                await grpc.StartAsync(cancel).ConfigureAwait(false);
            }
            if (metricsBind is not null)
            {
                metrics = BuildMetrics(engine, metricsBind, rpc, logs);
                await metrics.StartAsync(cancel).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            if (grpc is not null)
                await grpc.DisposeAsync().ConfigureAwait(false);
            if (metrics is not null)
                await metrics.DisposeAsync().ConfigureAwait(false);
            await engine.DisposeAsync().ConfigureAwait(false);
            audit?.Dispose();
            tls?.Dispose();
            throw e is IOException or InvalidOperationException
                ? new EnforcerStartException($"cannot listen: {e.Message}", false, e) : e;
        }
        var host = new EnforcerHost(engine, grpc, metrics, audit, tls, rpc);
        var log = logs.CreateLogger("Mis.Server.Hosting");
        foreach (string address in host.GrpcAddresses)
            log.ServingGrpc(address);
        if (host.MetricsUrl is not null)
            log.ServingMetrics(host.MetricsUrl);
        return host;
    }

    /// <summary>
    /// Stops cleanly: new requests and requests waiting on a workload answer UNAVAILABLE and event
    /// streams end with UNAVAILABLE, the gRPC server drains, then every workload is killed, the
    /// cgroups removed, the kernel programs detached and the state lock released. Safe to call twice.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        Engine.BeginStop();
        using (var drain = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
            await _grpc.StopAsync(drain.Token).ConfigureAwait(false);
        await Engine.DisposeAsync().ConfigureAwait(false);
        await _grpc.DisposeAsync().ConfigureAwait(false);
        if (_metrics is not null)
        {
            await _metrics.StopAsync().ConfigureAwait(false);
            await _metrics.DisposeAsync().ConfigureAwait(false);
        }
        if (Engine.Config.Grpc.UsesUnixSocket)
            UnixSocketFile.Remove(Engine.Config.Grpc.UnixSocketPath);
        _audit?.Dispose();
        _tls?.Dispose();
    }

    /// <summary>The counters as GetStats answers them, without the RPC (benchmarks time the handler alone with it).</summary>
    public GetStatsResponse GetStats() => RequestMapping.ToProto(Engine.Stats());

    private static WebApplication BuildGrpc(PolicyEngine engine, ControlPlaneAccess access, IPAddress bind, TlsMaterial? tls, AuditLog? audit, RpcMetrics rpc, GrpcPipeline pipeline, ILoggerFactory logs)
    {
        var grpcConfig = engine.Config.Grpc;
        var builder = Builder(logs);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Listen(bind, grpcConfig.Port, listen =>
            {
                listen.Protocols = HttpProtocols.Http2;
                listen.Use(WorkloadConnections.JudgeTcp(() => access.WorkloadTree));
                if (tls is not null)
                    listen.UseHttps(https =>
                    {
                        https.ServerCertificate = tls.Server;
                        if (tls.ClientCa is not null)
                        {
                            https.ClientCertificateMode = ClientCertificateMode.RequireCertificate;
                            https.ClientCertificateValidation = tls.Validate;
                        }
                    });
            });
            if (grpcConfig.UsesUnixSocket)
                kestrel.ListenUnixSocket(grpcConfig.UnixSocketPath, listen =>
                {
                    listen.Protocols = HttpProtocols.Http2;
                    listen.Use(WorkloadConnections.JudgeUnixSocket(() => access.WorkloadTree));
                });
        });
        builder.Services.AddSingleton(engine);
        builder.Services.AddSingleton(access);
        builder.Services.AddSingleton(rpc);
        builder.Services.AddSingleton(audit is null ? new AuditSink(null, logs.CreateLogger<AuditSink>()) : new AuditSink(audit, logs.CreateLogger<AuditSink>()));
        builder.Services.AddSingleton(pipeline);
        builder.Services.AddSingleton<AuditInterceptor>();
        builder.Services.AddGrpc(grpc =>
        {
            if (pipeline.Interceptor)
                grpc.Interceptors.Add<AuditInterceptor>();
            grpc.MaxReceiveMessageSize = grpcConfig.MaxMessageBytes;
            grpc.MaxSendMessageSize = grpcConfig.MaxMessageBytes;
        });
        builder.Services.AddGrpcReflection();
        foreach (var service in engine.Options.Services)
            service.Register(builder.Services);
        var app = builder.Build();
        if (pipeline.Handler == GrpcHandler.RawKestrel)
            app.Use(BenchHandlers.RawGetStatsAsync);
        var limit = new MessageSizeLimit(grpcConfig.MaxMessageBytes, rpc, app.Services.GetRequiredService<AuditSink>());
        if (pipeline.MessageSizeLimit)
            app.Use((http, next) => limit.InvokeAsync(http, next));
        app.UseRouting();
        if (pipeline.Handler == GrpcHandler.EmptyService)
            app.MapGrpcService<BenchHandlers.EmptyPolicyService>();
        else
            app.MapGrpcService<PolicyServiceImpl>();
        foreach (var service in engine.Options.Services)
            service.Map(app);
        app.MapGrpcReflectionService();
        return app;
    }

    private static WebApplication BuildMetrics(PolicyEngine engine, IPAddress bind, RpcMetrics rpc, ILoggerFactory logs)
    {
        var metricsConfig = engine.Config.Metrics;
        var builder = Builder(logs);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Listen(bind, metricsConfig.Port, listen => listen.Protocols = HttpProtocols.Http1AndHttp2);
        });
        var app = builder.Build();
        var page = new MetricsPage(rpc, engine.Stats);
        app.Run(async http =>
        {
            if (http.Request.Path != metricsConfig.Endpoint || !HttpMethods.IsGet(http.Request.Method))
            {
                http.Response.StatusCode = StatusCodes.Status404NotFound;
                return;
            }
            http.Response.ContentType = MetricsPage.ContentType;
            await page.WriteAsync(http.Response.Body, http.RequestAborted).ConfigureAwait(false);
        });
        return app;
    }

    // An empty builder: no appsettings.json, no ASPNETCORE_* variables, no default URLs. Only
    // what this class configures listens.
    private static WebApplicationBuilder Builder(ILoggerFactory logs)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "mis-enforcer" });
        builder.WebHost.UseKestrelCore();
        builder.Services.AddRoutingCore();
        builder.Services.AddLogging();
        builder.Services.Replace(ServiceDescriptor.Singleton(logs));
        return builder;
    }

    private static IPAddress ParseAddress(string text, string key) =>
        text == "localhost" ? IPAddress.Loopback
        : IPAddress.TryParse(text.Trim('[', ']'), out var address) ? address
        : throw new EnforcerStartException($"{key}: \"{text}\" is not an IP address (e.g. \"127.0.0.1\" or \"::1\")", true);

    private static IReadOnlyList<string> Addresses(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? [];
}
