using Microsoft.Win32.SafeHandles;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Policy;

namespace Mis.Enforcer.Run;

/// <summary>One command to run under MIS (<c>mis run</c>).</summary>
public sealed record RunRequest
{
    /// <summary>The command and its arguments.</summary>
    public required IReadOnlyList<string> Command { get; init; }

    /// <summary>The file deny point (<c>--file-backend</c>); null: what this host offers.</summary>
    public Session.FileBackend? FileBackend { get; init; }

    /// <summary>The configuration (DEFCON ladder, paths).</summary>
    public MisConfig Config { get; init; } = MisConfig.Default;

    /// <summary>The policy the workload runs under.</summary>
    public WorkloadPolicy Policy { get; init; } = BuiltinPolicy.Create();

    /// <summary>Who the workload runs as (default: the unprivileged account, see <see cref="WorkloadIdentity"/>).</summary>
    public WorkloadIdentity? Identity { get; init; }

    /// <summary>Learning mode: violations do not escalate and the syscall stream is recorded.</summary>
    public bool Learn { get; init; }

    /// <summary>JSON-lines event file, or null for none.</summary>
    public string? EventsPath { get; init; }

    /// <summary>Learning mode only: write each thread's syscall sequence to a trace file in this directory (see <see cref="TraceRecorder"/>).</summary>
    public string? TracesDirectory { get; init; }

    /// <summary>Learning mode only: score each thread's live syscall stream with this model (see <see cref="AnomalyMonitor"/>).</summary>
    public IOnlineScorer? AnomalyScorer { get; init; }

    /// <summary>The workload's working directory (entered as the workload).</summary>
    public string WorkingDirectory { get; init; } = "/";

    /// <summary>The workload's environment; null keeps the launcher's minimal default.</summary>
    public IReadOnlyList<string>? Environment { get; init; }

    /// <summary>stdin/stdout/stderr of the workload; null means /dev/null.</summary>
    public SafeFileHandle? Stdin { get; init; }

    /// <inheritdoc cref="Stdin"/>
    public SafeFileHandle? Stdout { get; init; }

    /// <inheritdoc cref="Stdin"/>
    public SafeFileHandle? Stderr { get; init; }
}

/// <summary>What happened to a workload run under MIS.</summary>
public sealed record RunResult
{
    /// <summary>How the workload's first process ended.</summary>
    public required WorkloadExit Exit { get; init; }

    /// <summary>The status a shell would report: the exit code, or 128 + signal (137 when MIS killed it).</summary>
    public int ExitStatus => Exit.Signal is int s ? 128 + s : Exit.ExitCode ?? 0;

    /// <summary>The workload's cgroup id.</summary>
    public required ulong CgroupId { get; init; }

    /// <summary>Counted violations at the end.</summary>
    public required ulong Violations { get; init; }

    /// <summary>Final DEFCON level.</summary>
    public required int Defcon { get; init; }

    /// <summary>Whether MIS killed the workload at DEFCON 1.</summary>
    public required bool KilledByMis { get; init; }

    /// <summary>Total time the workload's syscalls were slowed.</summary>
    public required TimeSpan Slowdown { get; init; }

    /// <summary>Syscalls the workload made while watched.</summary>
    public required ulong Syscalls { get; init; }

    /// <summary>Level changes in order: (from, to, violations at the change).</summary>
    public required IReadOnlyList<(int From, int To, ulong Violations)> Transitions { get; init; }

    /// <summary>Violations per operation (file_read, exec, ...).</summary>
    public required IReadOnlyDictionary<string, int> ViolationsByOperation { get; init; }

    /// <summary>Events written to the event file.</summary>
    public required long EventsWritten { get; init; }

    /// <summary>Events lost in the kernel ring buffer or on the way to the file.</summary>
    public required ulong EventsDropped { get; init; }

    /// <summary>Wall-clock duration of the run.</summary>
    public required TimeSpan Duration { get; init; }

    /// <summary>Online anomaly scoring, when a model was given.</summary>
    public AnomalyReport? Anomaly { get; init; }

    /// <summary>Trace files written (learning mode with a traces directory).</summary>
    public IReadOnlyList<string> TraceFiles { get; init; } = [];

    /// <summary>Where the workload's opens, execs, file changes and signals were decided.</summary>
    public Session.FileBackend FileBackend { get; init; }
}
