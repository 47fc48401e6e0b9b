using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Run;

namespace Mis.Enforcer.Session;

/// <summary>
/// One workload of an <see cref="EnforcementSession"/>: its cgroup, its process, its deny point
/// and its anomaly monitor. Wait on it, kill it, query its enforcement state; then
/// <see cref="Finish"/> it (or dispose it), which releases everything it had.
/// </summary>
public sealed class EnforcedWorkload : IDisposable
{
    private static readonly TimeSpan EventFlushLimit = TimeSpan.FromSeconds(5);

    private readonly EnforcementSession _session;
    private Workload? _process;
    private IFileDecisions? _decisions;
    private WorkloadTeardown? _teardown;
    private int _ended;

    internal EnforcedWorkload(EnforcementSession session, EnforcedWorkloadSpec spec, WorkloadCgroup cgroup, FileBackend fileBackend)
    {
        (_session, Spec, Cgroup, FileBackend) = (session, spec, cgroup, fileBackend);
    }

    /// <summary>
    /// Where its opens, execs, file changes and signals are decided: <see cref="Session.FileBackend.Lsm"/> in the kernel,
    /// or <see cref="Session.FileBackend.Seccomp"/> by the supervisor (which on either backend
    /// decides what the hooks leave: creating opens, changes to the file tree, the escape class).
    /// </summary>
    public FileBackend FileBackend { get; }

    /// <summary>What was launched.</summary>
    internal EnforcedWorkloadSpec Spec { get; }

    /// <summary>Its cgroup.</summary>
    public WorkloadCgroup Cgroup { get; }

    /// <summary>Its cgroup's id (the kernel's key).</summary>
    public ulong CgroupId => Cgroup.Id;

    /// <summary>The first process's pid.</summary>
    public int Pid => Process.Pid;

    /// <summary>The first process.</summary>
    internal Workload Process => _process ?? throw new InvalidOperationException("not launched yet");

    /// <summary>What its deny point decided so far.</summary>
    public SupervisorStats Decisions => (_decisions ?? throw new InvalidOperationException("not launched yet")).Stats;

    /// <summary>Its online anomaly monitor, when the spec asked for one.</summary>
    public AnomalyMonitor? Anomaly { get; private set; }

    /// <summary>Its enforcement state now; null when the kernel does not manage it (unpoliced, or ended).</summary>
    public CgroupState? State() => Spec.Policy is null ? null : _session.Kernel.State(CgroupId);

    /// <summary>Lets it run: its first instruction, inside its cgroup.</summary>
    public void Start() => Process.Go();

    /// <summary>Waits up to <paramref name="timeout"/> for the first process to end; null while it runs.</summary>
    public WorkloadExit? Wait(TimeSpan timeout) => Process.WaitForExit(timeout);

    /// <summary>Waits for the first process to end.</summary>
    public WorkloadExit Wait() => Process.WaitForExit();

    /// <summary>Kills its whole cgroup (every process in it).</summary>
    public void Kill() => Cgroup.Kill();

    internal void Attach(Workload process) => _process = process;

    internal void Attach(IFileDecisions decisions, AnomalyMonitor? anomaly) => (_decisions, Anomaly) = (decisions, anomaly);

    // On the session's event reader.
    internal void Deliver(KernelEvent e)
    {
        if (e.Type == KernelEventType.Syscall)
            Anomaly?.Add(e.Pid, e.Tid, e.Comm, (int)e.Value);
        Spec.OnEvent?.Invoke(e);
    }

    /// <summary>
    /// Ends it, once its first process has ended (or to stop it): kills what it left in its
    /// cgroup, waits for its deny point, then for every kernel event of it to reach its handlers,
    /// scores its anomaly windows' last, reads its final state and releases its cgroup. Calling it
    /// again returns the same result.
    /// </summary>
    public WorkloadTeardown Finish()
    {
        if (Interlocked.Exchange(ref _ended, 1) != 0)
            return _teardown ?? new WorkloadTeardown(null, null, []);
        var faults = new List<string>();
        void Step(string what, Action action)
        {
            try
            {
                action();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                faults.Add($"{what}: {e.Message}");
            }
        }
        Step("kill", () =>
        {
            Cgroup.Kill();
            Cgroup.WaitEmpty(TimeSpan.FromSeconds(5));
            _decisions?.Completion.Wait(TimeSpan.FromSeconds(2));
        });
        AnomalyReport? anomaly = null;
        // Its events and anomaly scores come before whatever the caller reports at its end.
        Step("events", () => _session.WaitForEventsRead(EventFlushLimit));
        Step("anomaly scoring", () => anomaly = Anomaly?.Finish());
        CgroupState? state = null;
        Step("teardown", () =>
        {
            _decisions?.Dispose();
            state = State();
        });
        Step("teardown", Release);
        _teardown = new WorkloadTeardown(state, anomaly, faults);
        return _teardown;
    }

    /// <summary>Kills it if it still runs and releases what it had (without the end's barrier and scoring).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _ended, 1) != 0)
            return;
        try
        {
            // Before its deny point goes: nothing of it may run undecided.
            Cgroup.Kill();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            // Release below kills again as it removes the cgroup
        }
        _decisions?.Dispose();
        Release();
    }

    // A launch that failed part way.
    internal void Abandon(bool managed)
    {
        Interlocked.Exchange(ref _ended, 1);
        Anomaly?.Stop();
        _decisions?.Dispose();
        _process?.Dispose();
        if (managed)
            _session.Kernel.Unmanage(CgroupId);
        Cgroup.Dispose();
    }

    private void Release()
    {
        _session.Ended(this);
        Anomaly?.Stop();
        if (Spec.Policy is not null)
        {
            try
            {
                _session.Kernel.Unmanage(CgroupId);
            }
            catch (ObjectDisposedException)
            {
            }
        }
        _process?.Dispose();
        Cgroup.Dispose();
    }
}

/// <summary>How a workload ended, as its <see cref="EnforcedWorkload.Finish"/> found it.</summary>
/// <param name="State">Its final enforcement state (null: unpoliced, or the kernel had lost it).</param>
/// <param name="Anomaly">Its anomaly report, when it was monitored.</param>
/// <param name="Faults">Steps of the teardown that failed (each "step: why"); the rest still ran.</param>
public sealed record WorkloadTeardown(CgroupState? State, AnomalyReport? Anomaly, IReadOnlyList<string> Faults);
