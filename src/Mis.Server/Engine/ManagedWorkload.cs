using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;
using Mis.Enforcer.Run;
using Mis.Enforcer.Session;

namespace Mis.Server.Engine;

/// <summary>What RunWorkload asked for, validated.</summary>
public sealed record WorkloadSpec
{
    /// <summary>Command and arguments (argv).</summary>
    public required IReadOnlyList<string> Command { get; init; }

    /// <summary>Who the workload runs as.</summary>
    public required WorkloadIdentity Identity { get; init; }

    /// <summary>Start in learning mode.</summary>
    internal bool Learning { get; init; }

    /// <summary>A policy for this workload alone (null: the engine's policy from [paths] policy_files).</summary>
    internal WorkloadPolicy? OwnPolicy { get; init; }

    /// <summary>Absolute working directory.</summary>
    internal string WorkingDirectory { get; init; } = "/";

    /// <summary>The full environment.</summary>
    internal IReadOnlyList<string> Environment { get; init; } = LaunchSpec.DefaultEnvironment;

    /// <summary>
    /// The uid of the Unix-socket caller that started it (SO_PEERCRED); null when it was started
    /// over TCP. An unprivileged caller sees and acts on only the workloads whose owner it is.
    /// </summary>
    internal uint? OwnerUid { get; init; }

    /// <summary>Score its syscall stream with the enforcer's anomaly model (resolved from the request and the configuration).</summary>
    internal bool AnomalyMonitoring { get; init; }
}

/// <summary>How a workload ended, with the kernel's last word on its state (read just before it was unmanaged).</summary>
public sealed record WorkloadEnd(WorkloadExit Exit, CgroupState? State, DateTimeOffset At);

/// <summary>
/// One workload the engine started: the session's <see cref="EnforcedWorkload"/> and its policy. Everything about it that changes is set once (<see cref="End"/>, the kill reason)
/// or through the kernel, so readers need no lock.
/// </summary>
public sealed class ManagedWorkload
{
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private string? _killReason;
    private WorkloadEnd? _end;
    private Task? _gracefulKill;

    internal ManagedWorkload(WorkloadSpec spec, EnforcedWorkload enforced, PolicySlot policy, DateTimeOffset started)
    {
        Spec = spec;
        Enforced = enforced;
        Policy = policy;
        PolicyName = policy.Policy.Name;
        Started = started;
    }

    internal ulong CgroupId => Enforced.CgroupId;

    internal string CgroupPath => Enforced.Cgroup.Path;

    internal int Pid => Enforced.Pid;

    internal WorkloadSpec Spec { get; }

    /// <summary>The workload as the enforcement session runs it: cgroup, process, deny point, anomaly monitor.</summary>
    internal EnforcedWorkload Enforced { get; }

    internal WorkloadCgroup Cgroup => Enforced.Cgroup;

    /// <summary>Its policy in the kernel (the engine's, or its own).</summary>
    internal PolicySlot Policy { get; }

    internal string PolicyName { get; }

    internal DateTimeOffset Started { get; }

    /// <summary>Set when the workload has ended and everything it had is released.</summary>
    internal WorkloadEnd? End => Volatile.Read(ref _end);

    /// <summary>Completes once the workload has ended and its cgroup, hooks and processes are gone.</summary>
    internal Task Completion => _done.Task;

    /// <summary>Why MIS killed it (first reason wins), or null.</summary>
    internal string? KillReason => Volatile.Read(ref _killReason);

    /// <summary>A graceful kill in progress: the teardown waits for it before killing what is left.</summary>
    internal Task? GracefulKill
    {
        get => Volatile.Read(ref _gracefulKill);
        set => Volatile.Write(ref _gracefulKill, value);
    }

    /// <summary>Its online anomaly scoring (null: not monitored).</summary>
    internal AnomalyMonitor? Anomaly => Enforced.Anomaly;

    /// <summary>Records why MIS kills it; false when a reason was already recorded.</summary>
    internal bool TrySetKillReason(string reason) => Interlocked.CompareExchange(ref _killReason, reason, null) is null;

    internal void Finish(WorkloadEnd end)
    {
        Volatile.Write(ref _end, end);
        _done.TrySetResult();
    }
}
