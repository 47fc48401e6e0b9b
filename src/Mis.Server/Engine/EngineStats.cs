using Mis.Enforcer.Policy;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Run;

namespace Mis.Server.Engine;

/// <summary>A snapshot of the engine's counters (meanings in policy.proto, GetStatsResponse).</summary>
public sealed record EngineStats
{
    internal ulong Denied { get; init; }

    internal DecisionCacheStats DecisionCache { get; init; }

    internal ulong Allowed { get; init; }

    internal ulong DefconEscalations { get; init; }

    internal ulong WorkloadsKilled { get; init; }

    internal ulong RingbufDrops { get; init; }

    internal ulong EventsLost { get; init; }

    internal ulong KernelKillSignals { get; init; }

    internal ulong CgroupKills { get; init; }

    internal int ManagedCgroups { get; init; }

    internal ulong WorkloadsStarted { get; init; }

    internal ulong SupervisorDecisions { get; init; }

    internal int RuntimeRules { get; init; }

    internal ulong LearningDenied { get; init; }

    /// <summary>Each running workload's cgroup id, command and kernel state (null if it ended meanwhile), for the per-cgroup gauges.</summary>
    internal IReadOnlyList<(ulong CgroupId, string Command, CgroupState? State)> DefconByCgroup { get; init; } = [];

    internal ulong AnomalyKills { get; init; }

    internal ulong AnomalyWindows { get; init; }

    internal ulong AnomalyWindowsSkipped { get; init; }

    /// <summary>Each running monitored workload's cgroup id, command and scores so far, for the anomaly gauges.</summary>
    internal IReadOnlyList<(ulong CgroupId, string Command, AnomalyProgress Progress)> AnomalyByCgroup { get; init; } = [];
}
