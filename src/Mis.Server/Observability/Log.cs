using Microsoft.Extensions.Logging;

namespace Mis.Server.Observability;

/// <summary>Every log line of the enforcer, source-generated (no boxing, no formatting when the level is off).</summary>
public static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "Engine started: cgroups under {CgroupRoot}, policy {Policy} from {FileCount} file(s), state in {StateDir}")]
    internal static partial void EngineStarted(this ILogger logger, string cgroupRoot, string policy, int fileCount, string stateDir);

    [LoggerMessage(2, LogLevel.Information, "Stopping: killing {Running} running workload(s)")]
    internal static partial void EngineStopping(this ILogger logger, int running);

    [LoggerMessage(3, LogLevel.Information, "Engine stopped: workloads killed, cgroups removed, programs detached")]
    internal static partial void EngineStopped(this ILogger logger);

    [LoggerMessage(10, LogLevel.Information, "Workload started: cgroup {CgroupId}, pid {Pid}, `{Command}` as {User}")]
    internal static partial void WorkloadStarted(this ILogger logger, ulong cgroupId, int pid, string command, string user);

    [LoggerMessage(11, LogLevel.Information, "Workload ended: cgroup {CgroupId}, {Exit}, killed by MIS: {KillReason}")]
    internal static partial void WorkloadEnded(this ILogger logger, ulong cgroupId, string exit, string killReason);

    [LoggerMessage(12, LogLevel.Information, "Workload killed: cgroup {CgroupId}, graceful {Graceful}, SIGKILL needed {Sigkill}, {ElapsedMs} ms")]
    internal static partial void WorkloadKilled(this ILogger logger, ulong cgroupId, bool graceful, bool sigkill, long elapsedMs);

    [LoggerMessage(13, LogLevel.Warning, "Teardown of cgroup {CgroupId}: {Message}")]
    internal static partial void TeardownFailed(this ILogger logger, ulong cgroupId, string message);

    [LoggerMessage(14, LogLevel.Warning, "Supervisor of cgroup {CgroupId}: {Message}")]
    internal static partial void SupervisorMessage(this ILogger logger, ulong cgroupId, string message);

    [LoggerMessage(15, LogLevel.Information, "Learning mode of cgroup {CgroupId} set to {Enabled}")]
    internal static partial void LearningModeSet(this ILogger logger, ulong cgroupId, bool enabled);

    [LoggerMessage(16, LogLevel.Warning, "DEFCON of cgroup {CgroupId} set by hand: {Before} -> {After}")]
    internal static partial void DefconSet(this ILogger logger, ulong cgroupId, int before, int after);

    [LoggerMessage(17, LogLevel.Information, "Anomaly model loaded: {Model}, windows of {WindowSize} syscalls every {Stride}; threshold {Threshold}, kill_on_anomaly {KillOnAnomaly}")]
    internal static partial void AnomalyModelLoaded(this ILogger logger, string model, int windowSize, int stride, int threshold, bool killOnAnomaly);

    [LoggerMessage(18, LogLevel.Warning, "Anomaly kill: cgroup {CgroupId} scored {Score} > {Threshold} (model {Model}, raw {Raw}) on thread {Tid}, window [{Window}]")]
    internal static partial void AnomalyKill(this ILogger logger, ulong cgroupId, int score, int threshold, string model, double raw, int tid, string window);

    [LoggerMessage(20, LogLevel.Information, "Runtime rule added: inode {Inode} dev {Device} {Action}, TTL {TtlSecs} s (0: none)")]
    internal static partial void RuleAdded(this ILogger logger, ulong inode, ulong device, string action, double ttlSecs);

    [LoggerMessage(21, LogLevel.Information, "Runtime rules removed: inode {Inode} dev {Device} ({Count})")]
    internal static partial void RuleRemoved(this ILogger logger, ulong inode, ulong device, int count);

    [LoggerMessage(22, LogLevel.Information, "Policy reloaded: {Policy}, {FileRules} file rules, {NetRules} network rules")]
    internal static partial void PolicyReloaded(this ILogger logger, string policy, int fileRules, int netRules);

    [LoggerMessage(23, LogLevel.Error, "Policy reload refused, the previous policy stays in force: {Message}")]
    internal static partial void PolicyReloadFailed(this ILogger logger, string message);

    [LoggerMessage(24, LogLevel.Error, "The kernel's exec backstop was not updated after a rule change: {Message}")]
    internal static partial void ExecBackstopNotUpdated(this ILogger logger, string message);

    [LoggerMessage(30, LogLevel.Warning, "{Count} enforcement event(s) lost (ring buffer or event queue full)")]
    internal static partial void EventsDropped(this ILogger logger, ulong count);

    [LoggerMessage(40, LogLevel.Information, "Serving gRPC (mis.policy.v1.PolicyService) on {Address}")]
    internal static partial void ServingGrpc(this ILogger logger, string address);

    [LoggerMessage(41, LogLevel.Information, "Serving Prometheus metrics on {Url}")]
    internal static partial void ServingMetrics(this ILogger logger, string url);

    [LoggerMessage(42, LogLevel.Debug, "RPC {Method} from {Peer}: {Status} in {ElapsedMs:0.000} ms")]
    internal static partial void RpcDone(this ILogger logger, string method, string peer, string status, double elapsedMs);

    [LoggerMessage(43, LogLevel.Warning, "RPC {Method} failed unexpectedly")]
    internal static partial void RpcFailed(this ILogger logger, Exception exception, string method);

    [LoggerMessage(44, LogLevel.Warning, "Audit log {Path} cannot be written: {Message}")]
    internal static partial void AuditWriteFailed(this ILogger logger, string path, string message);

    [LoggerMessage(45, LogLevel.Information, "Shutting down on {Signal}")]
    internal static partial void ShuttingDown(this ILogger logger, string signal);
}
