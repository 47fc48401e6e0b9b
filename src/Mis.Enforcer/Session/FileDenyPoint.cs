using Mis.Enforcer.Confinement;
using Mis.Enforcer.Policy;

namespace Mis.Enforcer.Session;

/// <summary>The file deny points MIS can use; which one a session uses is what the host offers (<c>mis doctor</c>).</summary>
public enum FileBackend
{
    /// <summary>Seccomp user notification: the launcher's filter sends file, exec and escape-class syscalls to <see cref="SeccompSupervisor"/>.</summary>
    Seccomp,

    /// <summary>
    /// BPF LSM: opens, execs, most file changes and signals are decided in the kernel
    /// (bpf/include/mis_lsm.h) with the policy compiled to maps; what no hook can decide (O_TMPFILE
    /// and O_PATH opens, openat2, renames, utimes, xattrs, the escape class) still goes to the
    /// seccomp supervisor.
    /// Where the kernel allows <c>lsm/</c> programs (<c>mis doctor</c>).
    /// </summary>
    Lsm,
}

/// <summary>
/// Where a workload's file, exec and escape-class operations are decided. A session starts one
/// per workload, between launch and <see cref="Workload.Go"/>; callers never name the concrete
/// type, so a second backend (BPF LSM) plugs in here without touching them.
/// </summary>
public interface IFileDenyPoint
{
    /// <summary>The backend, as the run summary and events name it.</summary>
    FileBackend Backend { get; }

    /// <summary>Starts deciding for <paramref name="workload"/> (launched, not yet running).</summary>
    IFileDecisions Start(Workload workload, IFileDecider decider, IViolationSink sink, Action<string>? log);
}

/// <summary>The decisions of one workload's deny point, while it runs; disposing stops them.</summary>
public interface IFileDecisions : IDisposable
{
    /// <summary>What was decided so far (exact once <see cref="Completion"/> is done).</summary>
    SupervisorStats Stats { get; }

    /// <summary>Completes when the workload is gone and nothing is left to decide (faulted when deciding failed).</summary>
    Task Completion { get; }
}

/// <summary>The deny points and the choice between them.</summary>
public static class FileDenyPoints
{
    private static readonly IFileDenyPoint s_seccomp = new SupervisedDenyPoint(FileBackend.Seccomp);
    private static readonly IFileDenyPoint s_lsm = new SupervisedDenyPoint(FileBackend.Lsm);

    private static readonly Lazy<FileBackend?> s_host = new(() =>
        !Native.Seccomp.UserNotificationAvailable().Available ? null
        : Host.HostProbe.LsmProgramsWork() ? FileBackend.Lsm : FileBackend.Seccomp);

    /// <summary>
    /// The deny point for <paramref name="requested"/>, or (null) the one this host offers, as
    /// <c>mis doctor</c> finds it: BPF LSM where <c>lsm/</c> programs load and attach, seccomp
    /// user notification elsewhere (the LSM backend needs it too, for what its hooks leave).
    /// </summary>
    /// <exception cref="Kernel.KernelUnavailableException">The host has no file deny point MIS can use.</exception>
    internal static IFileDenyPoint For(FileBackend? requested) =>
        (requested ?? s_host.Value) switch
        {
            FileBackend.Seccomp => s_seccomp,
            FileBackend.Lsm when requested is null || Host.HostProbe.LsmProgramsWork() => s_lsm,
            FileBackend.Lsm => throw new Kernel.KernelUnavailableException(
                "the BPF LSM file backend was asked for, but this kernel refuses lsm/ programs; use the seccomp backend"),
            _ => throw new Kernel.KernelUnavailableException(
                "no file deny point: this kernel has neither BPF LSM nor seccomp user notification (see mis doctor)"),
        };

    // Both backends start the supervisor: on the LSM backend the hooks decide in the kernel on
    // their own, and the supervisor answers what the launcher's filter still sends (the session
    // launched the workload with FilesInKernel).
    private sealed class SupervisedDenyPoint(FileBackend backend) : IFileDenyPoint
    {
        public FileBackend Backend => backend;

        public IFileDecisions Start(Workload workload, IFileDecider decider, IViolationSink sink, Action<string>? log) =>
            SeccompSupervisor.Start(workload, decider, sink, log);
    }
}
