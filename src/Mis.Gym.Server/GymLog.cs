using Microsoft.Extensions.Logging;

namespace Mis.Gym.Server;

/// <summary>The Gym server's log lines, source-generated (ids 100+, apart from the enforcer's).</summary>
public static partial class GymLog
{
    [LoggerMessage(100, LogLevel.Information, "GymService listening on {Address}; scenarios in {Directory}; backends {Backends}; at most {MaxEnvs} environment(s)")]
    internal static partial void GymServing(this ILogger logger, string address, string directory, string backends, int maxEnvs);

    [LoggerMessage(101, LogLevel.Information, "Environment {EnvId} made: scenario {Scenario}, backend {Backend}, for {Peer}")]
    internal static partial void GymEnvMade(this ILogger logger, string envId, string scenario, string backend, string peer);

    [LoggerMessage(106, LogLevel.Information, "Vector {VectorId} made: {NumEnvs} environment(s) of scenario {Scenario}, backend {Backend}, for {Peer}")]
    internal static partial void GymVectorMade(this ILogger logger, string vectorId, int numEnvs, string scenario, string backend, string peer);

    [LoggerMessage(102, LogLevel.Information, "Environment {EnvId} closed")]
    internal static partial void GymEnvClosed(this ILogger logger, string envId);

    [LoggerMessage(104, LogLevel.Warning, "Environment {EnvId} closed: no call used it for {IdleSeconds} s (--idle-timeout)")]
    internal static partial void GymEnvIdleClosed(this ILogger logger, string envId, long idleSeconds);

    [LoggerMessage(107, LogLevel.Warning, "Environment {EnvId} closed: the connection of the client that made it closed {GraceSeconds} s ago and no call used it since")]
    internal static partial void GymEnvClientGone(this ILogger logger, string envId, double graceSeconds);

    [LoggerMessage(105, LogLevel.Error, "Environment {EnvId}: closing it failed: {Message}")]
    internal static partial void GymEnvCloseFailed(this ILogger logger, string envId, string message);

    [LoggerMessage(103, LogLevel.Information, "GymService stopped: {Closed} open environment(s) closed")]
    internal static partial void GymStopped(this ILogger logger, int closed);

    [LoggerMessage(110, LogLevel.Information, "Kernel backend {Id} opened for {Caller}: scenario {Scenario}, cgroups under {CgroupsRoot}")]
    internal static partial void KernelBackendOpened(this ILogger logger, string id, string caller, string scenario, string cgroupsRoot);

    [LoggerMessage(111, LogLevel.Information, "Kernel backend {Id} closed ({Why})")]
    internal static partial void KernelBackendClosed(this ILogger logger, string id, string why);
}
