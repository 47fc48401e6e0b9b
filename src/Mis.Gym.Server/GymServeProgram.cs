using System.Runtime.InteropServices;
using Mis.Enforcer.Configuration;
using Mis.Server.Hosting;

namespace Mis.Gym.Server;

/// <summary>
/// <c>mis gym serve</c> from start to exit: start, serve until SIGTERM or SIGINT, close every
/// environment, exit 0. Exit 1 when the host refuses (address taken), 2 when an option is wrong.
/// </summary>
public static class GymServeProgram
{
    /// <summary>Serves until a signal; returns the exit code.</summary>
    public static async Task<int> RunAsync(GymServerOptions options, TextWriter stderr)
    {
        using var logs = LoggingSetup.Create(new LoggingConfig());
        var stop = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; stop.TrySetResult("SIGTERM"); });
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; stop.TrySetResult("SIGINT"); });
        GymHost host;
        try
        {
            host = await GymHost.StartAsync(options, logs).ConfigureAwait(false);
        }
        catch (GymStartException e)
        {
            stderr.WriteLine($"mis gym serve: {e.Message}");
            return e.IsConfiguration ? 2 : 1;
        }
        await using (host.ConfigureAwait(false))
        {
            stderr.WriteLine($"mis gym serve: ready (pid {Environment.ProcessId}): mis.gym.v1.GymService on {string.Join(", ", host.Addresses)}, " +
                             $"scenarios in {Path.GetFullPath(options.ScenarioDirectory)}, backends {string.Join(",", options.AllowedBackends)}");
            string signal = await stop.Task.ConfigureAwait(false);
            stderr.WriteLine($"mis gym serve: {signal}: stopping");
        }
        stderr.WriteLine("mis gym serve: stopped (every environment closed)");
        return 0;
    }
}
