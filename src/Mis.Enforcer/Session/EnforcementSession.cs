using System.Collections.Concurrent;
using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;

namespace Mis.Enforcer.Session;

/// <summary>
/// Enforcement, assembled once: the kernel programs, this session's cgroup directory and its
/// dead-man guard, the file deny point the host offers, the policies the kernel holds, and the
/// one reader of the kernel's event stream. Every caller (<c>mis run</c>, <c>mis enforcer</c>,
/// the gym's kernel backends, the benchmarks) opens one and launches workloads from a spec; none
/// of them puts the pieces together itself.
/// <para>Lifecycle: <see cref="Open"/> → <see cref="Install"/> a policy → <see cref="Launch"/>
/// workloads (each a <see cref="EnforcedWorkload"/> to wait on, kill, query and end) →
/// <see cref="Dispose"/>, which kills whatever is left, removes every cgroup it made and detaches
/// the kernel programs.</para>
/// </summary>
public sealed class EnforcementSession : IDisposable
{
    private static int s_privateDirectories;

    private readonly SessionOptions _options;
    private readonly string? _privateDirectory;
    private readonly WorkloadCgroups _cgroups;
    private readonly CgroupGuard _guard;
    private readonly WorkloadLauncher _launcher;
    private readonly ConcurrentDictionary<ulong, EnforcedWorkload> _live = new();
    private readonly ConcurrentDictionary<uint, PolicySlot> _slots = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _pump;
    private IReadOnlyList<InodeRule> _runtimeRules = [];
    private uint _lastPolicyId;
    private long _eventsRead;
    private int _disposed;

    private EnforcementSession(SessionOptions options, KernelEnforcer kernel, string? privateDirectory, WorkloadCgroups cgroups,
        CgroupGuard guard, IFileDenyPoint denyPoint)
    {
        (_options, Kernel, _privateDirectory, _cgroups, _guard, DenyPoint) = (options, kernel, privateDirectory, cgroups, guard, denyPoint);
        _launcher = new WorkloadLauncher(options.LauncherPath);
        _pump = Task.WhenAll(
            Task.Factory.StartNew(() => PumpEvents(_stop.Token), _stop.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap(),
            WatchLostEvents(_stop.Token));
    }

    /// <summary>The kernel enforcer: DEFCON state, counters, manual overrides.</summary>
    public KernelEnforcer Kernel { get; }

    /// <summary>Where this session's file operations are decided.</summary>
    internal IFileDenyPoint DenyPoint { get; }

    /// <summary>This session's directory of workload cgroups.</summary>
    public string CgroupRoot => _cgroups.Root;

    /// <summary>Runtime inode rules (AddRule), newest first: they come before every policy's own rules, in the kernel and in the supervisor alike.</summary>
    internal IReadOnlyList<InodeRule> RuntimeRules => Volatile.Read(ref _runtimeRules);

    /// <summary>
    /// Loads the kernel programs (attaching nothing until the first workload), creates the
    /// session's cgroup directory and starts its guard. Whatever was set up is released again
    /// when a later step fails.
    /// </summary>
    /// <exception cref="KernelUnavailableException">This host or build cannot enforce (the message says why).</exception>
    public static EnforcementSession Open(SessionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var denyPoint = FileDenyPoints.For(options.FileBackend);
        var kernelOptions = options.Kernel ?? new KernelEnforcerOptions();
        var kernel = KernelEnforcer.Open(options.Defcon, kernelOptions with { LsmFiles = denyPoint.Backend == FileBackend.Lsm });
        string? privateDirectory = null;
        WorkloadCgroups? cgroups = null;
        try
        {
            if (options.PrivateDirectory is { } name)
                privateDirectory = Path.Combine(kernel.MisRoot, $"{name}-{Environment.ProcessId}-{Interlocked.Increment(ref s_privateDirectories)}");
            cgroups = WorkloadCgroups.Create(privateDirectory ?? kernel.MisRoot);
            var guard = CgroupGuard.Start(cgroups.Root, options.LauncherPath);
            return new EnforcementSession(options, kernel, privateDirectory, cgroups, guard, denyPoint);
        }
        catch
        {
            cgroups?.Dispose();
            RemovePrivateDirectory(privateDirectory);
            kernel.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Puts <paramref name="policy"/>'s kernel rules (network, Unix sockets, exec deny set) under
    /// a fresh kernel policy id. <paramref name="netRules"/> replaces its network rules in the
    /// kernel (learning mode's trace-instead-of-deny copies); its file rules still decide.
    /// </summary>
    public PolicySlot Install(WorkloadPolicy policy, IReadOnlyList<NetRule>? netRules = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var slot = new PolicySlot(this, Interlocked.Increment(ref _lastPolicyId), policy, netRules);
        _slots[slot.Id] = slot;
        try
        {
            slot.Apply();
        }
        catch
        {
            slot.Dispose();
            throw;
        }
        return slot;
    }

    /// <summary>
    /// Replaces the runtime rules (newest first; the caller replaces them again when one expires):
    /// every installed policy's kernel tables follow, and every workload's supervisor decides with
    /// them before its policy.
    /// </summary>
    public void SetRuntimeRules(IReadOnlyList<InodeRule> rules)
    {
        Volatile.Write(ref _runtimeRules, rules);
        foreach (var slot in _slots.Values)
            slot.Apply();
    }

    internal void Forget(PolicySlot slot) => _slots.TryRemove(slot.Id, out _);

    /// <summary>
    /// What a workload's supervisor asks when its caller brings no decider of its own: the
    /// session's runtime rules first, then the policy in force in its slot, read on every decision
    /// so that a reload reaches running workloads at once (the same order the kernel's tables hold).
    /// </summary>
    private sealed class SlotDecider(EnforcementSession session, PolicySlot slot) : IFileDecider
    {
        public Verdict Decide(FileRequest access, int defcon)
        {
            // An expired rule is gone when its owner replaces the list (as from the kernel's tables).
            foreach (var rule in session.RuntimeRules)
                if (rule.AppliesTo(access))
                    return rule.Action;
            return slot.Policy.Decide(access, defcon);
        }
    }

    /// <summary>
    /// Starts <paramref name="spec"/>: a fresh cgroup (managed by the kernel when it has a
    /// policy), the confined launcher, its deny point, its anomaly monitor; then, unless
    /// <paramref name="start"/> is false, its first instruction (already inside the cgroup).
    /// With <paramref name="start"/> false the caller registers it and then calls <see cref="EnforcedWorkload.Start"/>.
    /// </summary>
    /// <exception cref="WorkloadLaunchException">The command could not be started confined.</exception>
    public EnforcedWorkload Launch(EnforcedWorkloadSpec spec, bool start = true)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (spec.Command.Count == 0)
            throw new ArgumentException("the command is empty", nameof(spec));
        var cgroup = _cgroups.CreateWorkload(spec.Label ?? Path.GetFileName(spec.Command[0]));
        // The kernel decides files only with the slot's own policy compiled into it: a
        // caller's own decider (the gym's) is C# the kernel cannot run, so the supervisor keeps those.
        bool inKernel = spec.Policy is { InKernel: true } && spec.Decider is null;
        var workload = new EnforcedWorkload(this, spec, cgroup, inKernel ? FileBackend.Lsm : FileBackend.Seccomp);
        bool managed = false;
        try
        {
            if (spec.Policy is { } slot)
            {
                ObjectDisposedException.ThrowIf(slot.Disposed, slot);
                Kernel.Manage(cgroup.Path, spec.Learning, slot.Id, spec.Defcon, lsmFiles: inKernel);
                managed = true;
                _live[cgroup.Id] = workload;
            }
            var process = _launcher.Launch(new LaunchSpec
            {
                CgroupPath = cgroup.Path,
                Command = spec.Command,
                Identity = spec.Identity,
                WorkingDirectory = spec.WorkingDirectory,
                Environment = spec.Environment,
                Stdin = spec.Stdin,
                Stdout = spec.Stdout,
                Stderr = spec.Stderr,
                MountNamespace = spec.MountNamespace,
                FilesInKernel = inKernel,
            });
            workload.Attach(process);
            IFileDecider decider = spec.Decider?.Invoke(workload) ?? (spec.Policy is { } policy ? new SlotDecider(this, policy) : Unpoliced.Instance);
            IViolationSink sink = spec.Sink ?? (spec.Policy is null ? Unpoliced.Instance : Kernel);
            workload.Attach(DenyPoint.Start(process, decider, sink, spec.Log), spec.Anomaly?.Invoke(workload));
            if (start)
                workload.Start();
            return workload;
        }
        catch
        {
            _live.TryRemove(cgroup.Id, out _);
            workload.Abandon(managed);
            throw;
        }
    }

    /// <summary>
    /// A cgroup managed by the kernel with <paramref name="policy"/> but no launched workload:
    /// for processes that join it themselves (the benchmarks' bare loops). Disposing unmanages and removes it.
    /// </summary>
    public ManagedCgroupLease Manage(string label, PolicySlot? policy = null, bool learning = false, Configuration.DefconConfig? defcon = null)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var cgroup = _cgroups.CreateWorkload(label);
        try
        {
            Kernel.Manage(cgroup.Path, learning, policy?.Id ?? 0, defcon);
            return new ManagedCgroupLease(Kernel, cgroup);
        }
        catch
        {
            cgroup.Dispose();
            throw;
        }
    }

    /// <summary>A cgroup of this session the kernel does not manage (a scratch cgroup; disposing removes it).</summary>
    public WorkloadCgroup CreateCgroup(string label) => _cgroups.CreateWorkload(label);

    /// <summary>
    /// The barrier before a workload's exit is reported: waits (at most <paramref name="limit"/>)
    /// until every event the kernel wrote before this call has gone to its handlers.
    /// </summary>
    public void WaitForEventsRead(TimeSpan limit) => Kernel.WaitForEventsRead(() => Interlocked.Read(ref _eventsRead), limit);

    internal void Ended(EnforcedWorkload workload) => _live.TryRemove(workload.CgroupId, out _);

    /// <summary>Running workloads of <paramref name="slot"/> whose files the kernel's BPF LSM hooks decide.</summary>
    internal int DecidedInKernel(PolicySlot slot) =>
        _live.Values.Count(w => w.FileBackend == FileBackend.Lsm && ReferenceEquals(w.Spec.Policy, slot));

    /// <summary>Kills every workload still running, removes the session's cgroups, clears its policies and detaches the kernel programs. Safe to call twice.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        foreach (var workload in _live.Values)
            workload.Dispose();
        foreach (var slot in _slots.Values)
            slot.Dispose();
        _stop.Cancel();
        try
        {
            _pump.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
        _guard.Release(TimeSpan.FromSeconds(5));
        _guard.Dispose();
        _cgroups.Dispose();
        RemovePrivateDirectory(_privateDirectory);
        Kernel.Dispose();
        _stop.Dispose();
    }

    // The single reader of the kernel's event stream: each event goes to its workload, then to the session's handler.
    private async Task PumpEvents(CancellationToken stop)
    {
        try
        {
            await foreach (var e in Kernel.Events.ReadAllAsync(stop).ConfigureAwait(false))
            {
                if (_live.TryGetValue(e.CgroupId, out var workload))
                    workload.Deliver(e);
                _options.OnEvent?.Invoke(e);
                Interlocked.Increment(ref _eventsRead);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task WatchLostEvents(CancellationToken stop)
    {
        if (_options.OnEventsLost is not { } lost)
            return;
        ulong reported = 0;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                ulong total = EventsLost;
                if (total > reported)
                    lost(total - reported);
                reported = Math.Max(reported, total);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Events lost so far: the kernel's ring buffer was full, or the decoded-event channel was.</summary>
    internal ulong EventsLost => Kernel.RingbufDrops + (ulong)Kernel.EventChannelDrops;

    private static void RemovePrivateDirectory(string? path)
    {
        if (path is not null && Directory.Exists(path))
            WorkloadCgroup.RemoveDirectory(path);
    }

    /// <summary>The decider and sink of an unpoliced workload: every file allowed, nothing counted.</summary>
    private sealed class Unpoliced : IFileDecider, IViolationSink
    {
        internal static readonly Unpoliced Instance = new();

        public Verdict Decide(FileRequest access, int defcon) => Verdict.Allow;

        public ViolationOutcome Report(ViolationReport report) => new(0, DefconLevel.Normal, DefconLevel.Normal);

        // Nothing is ever counted against an unpoliced workload, so it stays where every cgroup starts.
        public DefconLevel Defcon(ulong cgroupId) => DefconLevel.Normal;
    }
}

/// <summary>A cgroup the kernel manages without a launched workload (<see cref="EnforcementSession.Manage"/>).</summary>
public sealed class ManagedCgroupLease(KernelEnforcer kernel, WorkloadCgroup cgroup) : IDisposable
{
    /// <summary>The cgroup.</summary>
    internal WorkloadCgroup Cgroup => cgroup;

    /// <summary>Its id.</summary>
    public ulong Id => cgroup.Id;

    /// <summary>Its directory.</summary>
    public string Path => cgroup.Path;

    /// <inheritdoc />
    public void Dispose()
    {
        try
        {
            kernel.Unmanage(cgroup.Id);
        }
        catch (ObjectDisposedException)
        {
        }
        cgroup.Dispose();
    }
}
