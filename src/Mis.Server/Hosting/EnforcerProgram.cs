using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Run;
using Mis.Server.Engine;
using Mis.Server.Observability;

namespace Mis.Server.Hosting;

/// <summary>
/// <c>mis enforcer [config.toml]</c> from start to exit: validate, start, serve until SIGTERM or
/// SIGINT, stop cleanly; under systemd (<c>Type=notify</c>) it says READY=1 and STOPPING=1. Exit status 0 after a clean stop, 1 when the host refused (not root,
/// another enforcer holds the state directory, a port taken, no kernel backend), 2 when the
/// configuration or a file it names is wrong (nothing was set up then).
/// </summary>
public static class EnforcerProgram
{
    internal const int ExitOk = 0;
    internal const int ExitHostRefused = 1;
    internal const int ExitBadConfiguration = 2;

    /// <param name="configPath">config.toml, or null for the built-in defaults.</param>
    /// <param name="stderr">Where the one-line status messages go.</param>
    /// <param name="anomalyModelLoader">Loads <c>[policy] anomaly_model</c> (the CLI passes Mis.Anomaly's loader).</param>
    /// <param name="services">gRPC services to host besides PolicyService, on the same listeners and access rules.</param>
    public static async Task<int> RunAsync(string? configPath, TextWriter stderr, Func<string, IOnlineScorer>? anomalyModelLoader = null,
        IReadOnlyList<HostedGrpcService>? services = null)
    {
        MisConfig config;
        try
        {
            config = configPath is null ? MisConfig.Default : MisConfig.Load(configPath);
        }
        catch (ConfigException e)
        {
            return Fail(stderr, e.Message, ExitBadConfiguration);
        }
        if (!config.Grpc.Enabled)
            return Fail(stderr, $"{configPath ?? "the built-in defaults"}: [grpc] enabled = false, so nothing could steer the enforcer; " +
                                "set enabled = true in the [grpc] section (README: `mis enforcer` and the gRPC control plane)", ExitBadConfiguration);
        if (!Environment.IsPrivilegedProcess)
            return Fail(stderr, "needs root: it loads BPF programs and creates cgroups (run it with sudo)", ExitHostRefused);

        using var logs = LoggingSetup.Create(config.Logging);
        var log = logs.CreateLogger("Mis.Server.Hosting");
        var stop = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; stop.TrySetResult("SIGTERM"); });
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; stop.TrySetResult("SIGINT"); });

        EnforcerHost host;
        try
        {
            host = await EnforcerHost.StartAsync(new EngineOptions
            {
                Config = config,
                ConfigDirectory = configPath is null ? null : Path.GetDirectoryName(Path.GetFullPath(configPath)),
                ConfigPath = configPath,
                AnomalyModelLoader = anomalyModelLoader,
                Services = services ?? [],
            }, logs).ConfigureAwait(false);
        }
        catch (EnforcerStartException e)
        {
            return Fail(stderr, e.Message, e.IsConfiguration ? ExitBadConfiguration : ExitHostRefused);
        }

        await using (host.ConfigureAwait(false))
        {
            stderr.WriteLine($"mis enforcer: ready (pid {Environment.ProcessId}): gRPC on {string.Join(", ", host.GrpcAddresses)}" +
                             (host.MetricsUrl is null ? "" : $", metrics on {host.MetricsUrl}") + $", cgroups under {host.Engine.CgroupRoot}");
            // Type=notify: systemd orders dependent units after this, when the socket answers.
            SystemdNotify.Send($"READY=1\nMAINPID={Environment.ProcessId}\nSTATUS=serving gRPC on {string.Join(", ", host.GrpcAddresses)}");
            string signal = await stop.Task.ConfigureAwait(false);
            SystemdNotify.Send($"STOPPING=1\nSTATUS=stopping on {signal}: killing the workloads");
            log.ShuttingDown(signal);
        }
        stderr.WriteLine("mis enforcer: stopped (workloads killed, cgroups removed, programs detached)");
        return ExitOk;
    }

    private static int Fail(TextWriter stderr, string message, int status)
    {
        stderr.WriteLine($"mis enforcer: {message}");
        return status;
    }
}
