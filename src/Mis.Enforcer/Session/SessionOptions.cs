using Microsoft.Win32.SafeHandles;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;
using Mis.Enforcer.Run;

namespace Mis.Enforcer.Session;

/// <summary>Settings of an <see cref="EnforcementSession"/>.</summary>
public sealed record SessionOptions
{
    /// <summary>The DEFCON ladder of every workload that names none of its own.</summary>
    public DefconConfig Defcon { get; init; } = new();

    /// <summary>The kernel's settings: the MIS cgroup root, the network lockdown level, the ring buffer.</summary>
    public KernelEnforcerOptions Kernel { get; init; } = new();

    /// <summary>
    /// Null: the workloads' cgroups live in <c>&lt;mis root&gt;/enforcer-PID</c>, one directory per
    /// process. A name (e.g. <c>gym</c>): in a directory <c>NAME-PID-N</c> of this session's own,
    /// so several sessions of one process (one per gym env) never share one; it is removed at the end.
    /// </summary>
    public string? PrivateDirectory { get; init; }

    /// <summary>mis-launch; null: beside the assemblies.</summary>
    public string? LauncherPath { get; init; }

    /// <summary>The file deny point; null: what this host offers (<see cref="FileDenyPoints.For"/>).</summary>
    public FileBackend? FileBackend { get; init; }

    /// <summary>
    /// Every kernel event of every workload, called by the session's one reader of the kernel's
    /// event stream, in order, after the workload's own <see cref="EnforcedWorkloadSpec.OnEvent"/>.
    /// </summary>
    public Action<KernelEvent>? OnEvent { get; init; }

    /// <summary>Events lost since the last call (ring buffer or decoded-event channel full), at most once a second, never silently.</summary>
    public Action<ulong>? OnEventsLost { get; init; }
}

/// <summary>What to run under enforcement, and how (<see cref="EnforcementSession.Launch"/>).</summary>
public sealed record EnforcedWorkloadSpec
{
    /// <summary>argv; the first element is the program.</summary>
    public required IReadOnlyList<string> Command { get; init; }

    /// <summary>The policy (installed in the session); null: confined but not policed, in an unmanaged cgroup (a grader, not an agent).</summary>
    public required PolicySlot? Policy { get; init; }

    /// <summary>Who it runs as.</summary>
    public WorkloadIdentity Identity { get; init; } = WorkloadIdentity.Default;

    /// <summary>Learning mode: denials are recorded, not enforced, and every syscall is reported.</summary>
    public bool Learning { get; init; }

    /// <summary>Its DEFCON ladder; null: the session's.</summary>
    internal DefconConfig? Defcon { get; init; }

    /// <summary>Names its cgroup (<c>wN-LABEL</c>); null: the program's file name.</summary>
    public string? Label { get; init; }

    /// <summary>Its working directory.</summary>
    public string WorkingDirectory { get; init; } = "/";

    /// <summary>Its environment (<c>NAME=value</c>).</summary>
    public IReadOnlyList<string> Environment { get; init; } = LaunchSpec.DefaultEnvironment;

    /// <summary>Its stdin, stdout and stderr (null: /dev/null). The session does not close them.</summary>
    public SafeFileHandle? Stdin { get; init; }

    /// <inheritdoc cref="Stdin"/>
    public SafeFileHandle? Stdout { get; init; }

    /// <inheritdoc cref="Stdin"/>
    public SafeFileHandle? Stderr { get; init; }

    /// <summary>A private view of the files to run in (the caller owns it).</summary>
    public MountNamespace? MountNamespace { get; init; }

    /// <summary>
    /// Decides its file operations; null: its policy. Given the workload (its cgroup id is known
    /// by then), for deciders that report on its behalf (learning-mode recording, timing).
    /// </summary>
    public Func<EnforcedWorkload, IFileDecider>? Decider { get; init; }

    /// <summary>Where its violations are counted; null: the kernel's DEFCON state machine.</summary>
    public IViolationSink? Sink { get; init; }

    /// <summary>Its online anomaly monitor (learning mode), made before its first instruction; the session feeds it every syscall.</summary>
    public Func<EnforcedWorkload, AnomalyMonitor>? Anomaly { get; init; }

    /// <summary>Each of its kernel events, in order, on the session's event reader (which it must not block).</summary>
    public Action<KernelEvent>? OnEvent { get; init; }

    /// <summary>Messages of its deny point (null: stderr).</summary>
    public Action<string>? Log { get; init; }
}
