using System.Collections.Concurrent;
using System.Threading.Channels;
using Mis.Enforcer.Bpf;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Policy;
using Mis.Native;
using Mis.Native.Bpf;

namespace Mis.Enforcer.Kernel;

/// <summary>The kernel backend cannot run here; the message says why (missing object, no cgroup v2, ...).</summary>
public sealed class KernelUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Owns the enforcer's BPF object (<c>bpf/enforcer.bpf.c</c>) and the cgroups under it. Each
/// managed cgroup gets its own attachment of the network hooks; the syscall and exec hooks are
/// global and stay attached only while at least one cgroup is managed, because they tax every
/// syscall on the host. The DEFCON state lives in the kernel; user space reaches it only through
/// the <c>mis_report</c> program, so every counter changes by kernel atomics and never by a
/// read-modify-write from here. Dispose detaches everything; it is safe to call twice.
/// </summary>
public sealed partial class KernelEnforcer : IViolationSink, IDisposable
{
    internal const string ObjectName = "enforcer.bpf.o";

    // BPF_PROG_TYPE_CGROUP_SOCK, BPF_PROG_TYPE_CGROUP_SOCK_ADDR and BPF_FUNC_send_signal.
    private static readonly Lazy<bool> s_socketHooksMaySignal = new(() =>
        BpfObject.HelperAvailable(9, 109) && BpfObject.HelperAvailable(18, 109));

    /// <summary>Whether this kernel lets the cgroup socket hooks call bpf_send_signal (not on Linux 6.1).</summary>
    internal static bool SocketHooksMaySignal => s_socketHooksMaySignal.Value;

    // The BPF LSM hooks (bpf/include/mis_lsm.h): opens and execs, the changes to the file tree, signals.
    private static readonly string[] LsmPrograms = ["mis_file_open", "mis_bprm_check", "mis_path_mknod", "mis_path_mkdir",
        "mis_path_symlink", "mis_path_unlink", "mis_path_rmdir", "mis_path_link", "mis_path_chmod", "mis_path_chown", "mis_path_truncate", "mis_task_kill"];

    private static readonly string[] CgroupPrograms = ["mis_sock_create", "mis_connect4", "mis_connect6", "mis_sendmsg4", "mis_sendmsg6", "mis_egress"];

    // The Unix socket hooks (Linux 6.7+) and their kernel numbers: libbpf 1.1 predates their
    // section names, so the loader sets BPF_PROG_TYPE_CGROUP_SOCK_ADDR and the attach type itself.
    private const int ProgTypeCgroupSockAddr = 18;
    private static readonly (string Program, int AttachType)[] UnixPrograms =
        [("mis_connect_unix", 49 /* BPF_CGROUP_UNIX_CONNECT */), ("mis_sendmsg_unix", 50 /* BPF_CGROUP_UNIX_SENDMSG */)];

    private readonly Lock _gate = new();
    private readonly BpfObject _object;
    private readonly BpfMap _cgroups;
    private readonly BpfMap _stats;
    private readonly BpfMap _netRules;
    private readonly BpfMap _execDeny;
    private readonly BpfMap _execApproved;
    private readonly BpfMap _unixRules;
    private readonly BpfMap _unixOwn;
    private readonly BpfProgram _report;
    private readonly BpfMap _globs;
    private readonly BpfMap _filePolicies;
    private readonly BpfMap _exactPaths;
    private readonly BpfMap _fileObjects;
    private readonly BpfMap _inodeRules;
    private readonly BpfProgram _globMatch;
    private readonly Dictionary<ulong, ManagedCgroup> _managed = [];
    // mis_defcon_view, mapped read-only: the DEFCON read of every supervisor decision is a load
    // (Defcon). Slots are handed out round-robin, so a hook still running for a cgroup just
    // unmanaged cannot publish into a slot that already belongs to another.
    private readonly BpfMap _defconView;
    private readonly unsafe ulong* _view;
    private readonly nuint _viewBytes;
    private readonly ConcurrentDictionary<ulong, uint> _viewSlots = new();
    private readonly bool[] _slotInUse = new bool[MaxCgroups];
    private uint _nextSlot;
    private int _viewReaders;
    private int _viewClosed;
    private readonly KernelEventPump _pump;
    private BpfLink? _sysEnterLink;
    private BpfLink? _execLink;
    private List<BpfLink>? _lsmLinks;
    private long _cgroupKills;
    private int _disposed;

    private KernelEnforcer(BpfObject obj, DefconConfig defaults, string misRoot, KernelEnforcerOptions options)
    {
        _object = obj;
        Defaults = defaults;
        MisRoot = misRoot;
        _cgroups = obj.Map("mis_cgroups");
        _stats = obj.Map("mis_stats");
        _netRules = obj.Map("mis_net_rules");
        _execDeny = obj.Map("mis_exec_deny");
        _execApproved = obj.Map("mis_exec_approved");
        _unixRules = obj.Map("mis_unix_rules");
        _unixOwn = obj.Map("mis_unix_own");
        UnixHooks = options.UnixHooks ?? UnixHooksAvailable;
        LsmFiles = options.LsmFiles;
        _report = obj.Program("mis_report");
        _globs = obj.Map("mis_globs");
        _filePolicies = obj.Map("mis_file_policies");
        _exactPaths = obj.Map("mis_exact_paths");
        _fileObjects = obj.Map("mis_file_objects");
        _inodeRules = obj.Map("mis_inode_rules");
        _globMatch = obj.Program("mis_glob_match");
        _defconView = obj.Map("mis_defcon_view");
        unsafe
        {
            _viewBytes = (nuint)(((MaxCgroups * sizeof(ulong)) + Environment.SystemPageSize - 1) / Environment.SystemPageSize * Environment.SystemPageSize);
            void* view = Libc.Mmap(null, _viewBytes, Libc.PROT_READ, Libc.MAP_SHARED, _defconView.Fd, 0);
            if (view == Libc.MapFailed)
                throw new InvalidOperationException($"cannot map mis_defcon_view: {Errno.Describe(Libc.LastErrno)}");
            _view = (ulong*)view;
        }
        _pump = new KernelEventPump(obj.Map("mis_events"), options.EventCapacity, OnEvent);
    }

    /// <summary>Managed cgroups at most (MIS_MAX_CGROUPS: the entries of mis_cgroups and mis_defcon_view).</summary>
    internal const int MaxCgroups = 4096;

    /// <summary>The DEFCON configuration for cgroups managed without one of their own.</summary>
    public DefconConfig Defaults { get; }

    /// <summary>MIS's own cgroup, <c>&lt;cgroup2 mount&gt;/mis</c>: every managed cgroup lives below it.</summary>
    public string MisRoot { get; }

    /// <summary>
    /// Whether Unix socket connects and sends are decided (cgroup/connect_unix and sendmsg_unix,
    /// Linux 6.7+). Without them a workload reaches every Unix socket its file permissions allow.
    /// </summary>
    public bool UnixHooks { get; }

    /// <summary>Whether the BPF LSM file hooks are loaded (<see cref="KernelEnforcerOptions.LsmFiles"/>).</summary>
    public bool LsmFiles { get; }

    /// <summary>
    /// Whether this kernel has the cgroup Unix socket hooks (added in Linux 6.7): found by loading
    /// the probe object's <c>cgroup/connect_unix</c> program once, as <c>mis doctor</c> does, never
    /// guessed from the version (distribution kernels backport).
    /// </summary>
    internal static bool UnixHooksAvailable => s_unixHooks.Value;

    private static readonly Lazy<bool> s_unixHooks = new(ProbeUnixHooks);

    private static bool ProbeUnixHooks()
    {
        const string program = "probe_cgroup_connect_unix";
        if (!EmbeddedBpf.TryLoad(EmbeddedBpf.Probe, out var elf, out _))
            return false;
        try
        {
            using var obj = BpfObject.Open(elf, "mis_probe");
            obj.Program(program).SetType(ProgTypeCgroupSockAddr, UnixPrograms[0].AttachType);
            obj.LoadOnly(program);
            return true;
        }
        catch (BpfException)
        {
            return false;
        }
    }

    /// <summary>Decoded kernel events (violations, DEFCON transitions, kills, syscalls in learning mode, ...).</summary>
    public ChannelReader<KernelEvent> Events => _pump.Reader;

    /// <summary>
    /// The barrier before a workload's exit event: waits (at most <paramref name="limit"/>) until
    /// every event the kernel had written is in <see cref="Events"/> and the single reader of
    /// <see cref="Events"/> has read them all, which it says through <paramref name="eventsRead"/>
    /// (how many it has read since the start).
    /// </summary>
    public void WaitForEventsRead(Func<long> eventsRead, TimeSpan limit)
    {
        long deadline = Environment.TickCount64 + (long)limit.TotalMilliseconds;
        long target = _pump.Flush(limit);
        while (eventsRead() < target && Environment.TickCount64 < deadline)
            Thread.Sleep(1);
    }

    /// <summary>Events the kernel lost because the ring buffer was full (summed over CPUs).</summary>
    public ulong RingbufDrops => StatCounter(MisStat.RingbufDrops);

    /// <summary>Events decoded but dropped because nobody drained <see cref="Events"/> fast enough.</summary>
    public long EventChannelDrops => _pump.ChannelDrops;

    /// <summary>SIGKILLs the kernel programs sent to tasks of managed cgroups.</summary>
    public ulong KernelKillSignals => StatCounter(MisStat.KillSignals);

    /// <summary>Denials every deny point counted through the kernel's state machine, learning mode included.</summary>
    public ulong KernelViolations => StatCounter(MisStat.Violations);

    /// <summary>DEFCON levels lost to escalation, by violations or by <see cref="SetDefcon"/> (5 to 3 counts 2).</summary>
    public ulong KernelEscalations => StatCounter(MisStat.Escalations);

    /// <summary>Times a whole cgroup was killed from user space (cgroup.kill).</summary>
    public long CgroupKills => Interlocked.Read(ref _cgroupKills);

    /// <summary>Whether the global syscall hook is attached (exactly while a cgroup is managed).</summary>
    public bool SyscallHookAttached
    {
        get
        {
            lock (_gate)
                return _sysEnterLink is not null;
        }
    }

    /// <summary>The cgroups currently managed.</summary>
    public IReadOnlyList<ManagedCgroup> Managed
    {
        get
        {
            lock (_gate)
                return [.. _managed.Values];
        }
    }

    /// <summary>Loads the enforcer's BPF object and starts draining its events. Attaches nothing yet.</summary>
    /// <exception cref="KernelUnavailableException">The object is not in this build, or cgroup v2 is missing.</exception>
    /// <exception cref="BpfException">libbpf or the kernel refused the object.</exception>
    public static KernelEnforcer Open(DefconConfig defaults, KernelEnforcerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(defaults);
        options ??= new KernelEnforcerOptions();
        _ = KernelConfig.ToKernel(defaults); // validate before loading
        if (!EmbeddedBpf.TryLoad(ObjectName, out var elf, out var whyMissing))
            throw new KernelUnavailableException($"the kernel enforcer is unavailable: {whyMissing}");
        string mount = options.CgroupMount ?? CgroupV2.FindMount()
            ?? throw new KernelUnavailableException("the kernel enforcer is unavailable: cgroup v2 is not mounted");
        string misRoot = options.CgroupRoot is { Length: > 0 } root ? Path.GetFullPath(root) : Path.Combine(mount, "mis");
        if (!misRoot.StartsWith(mount.TrimEnd('/') + "/", StringComparison.Ordinal))
            throw new KernelUnavailableException($"the MIS cgroup root {misRoot} is not inside the cgroup v2 mount {mount} ([paths] cgroup_root)");
        try
        {
            Directory.CreateDirectory(misRoot);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KernelUnavailableException($"the kernel enforcer is unavailable: cannot create {misRoot}: {e.Message}", e);
        }

        var obj = BpfObject.Open(elf, "mis_enforcer");
        try
        {
            obj.Map("mis_events").SetMaxEntries(options.RingBufferBytes);
            bool unix = options.UnixHooks ?? UnixHooksAvailable;
            foreach (var (program, attachType) in UnixPrograms)
            {
                if (unix)
                    obj.Program(program).SetType(ProgTypeCgroupSockAddr, attachType);
                else
                    obj.Program(program).Autoload = false;
            }
            // The socket hooks kill a task at its DEFCON 1 denial only where the kernel lets them signal.
            uint maySignal = SocketHooksMaySignal ? 1u : 0;
            obj.Map(".rodata.mis_sock").SetInitialValue(0, BpfMap.Bytes(ref maySignal));
            // The LSM file hooks load only where asked for: elsewhere the kernel refuses lsm/
            // programs, and with them the whole object.
            foreach (string program in LsmPrograms)
                obj.Program(program).Autoload = options.LsmFiles;
            obj.Load();
            // The map keeps its own reference to the cgroup, so the fd can close right away.
            using (var rootFd = Libc.OpenDirectory(misRoot))
            {
                uint slot = 0, fd = (uint)rootFd.DangerousGetHandle();
                obj.Map("mis_root").Update(BpfMap.Bytes(ref slot), BpfMap.Bytes(ref fd));
            }
            return new KernelEnforcer(obj, defaults, misRoot, options);
        }
        catch
        {
            obj.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Puts the cgroup at <paramref name="cgroupPath"/> (an existing directory below
    /// <see cref="MisRoot"/>) under enforcement: its state starts at DEFCON 5 with no violations,
    /// the network hooks attach to it, and the syscall hook attaches if it is the first.
    /// </summary>
    /// <param name="cgroupPath">The cgroup directory.</param>
    /// <param name="learning">Start in learning mode (violations recorded, no escalation, syscall stream on).</param>
    /// <param name="policyId">Selects the network and exec rules.</param>
    /// <param name="config">DEFCON settings for this cgroup; null uses <see cref="Defaults"/>.</param>
    /// <exception cref="ArgumentException">The path is not a cgroup below MIS's root, or contains the enforcer.</exception>
    /// <exception cref="InvalidOperationException">The cgroup is already managed.</exception>
    /// <param name="lsmFiles">Its opens, execs, file changes and signals are decided by the BPF LSM hooks with the policy's file rules (see <see cref="SetFilePolicy"/>); needs <see cref="LsmFiles"/>.</param>
    public ManagedCgroup Manage(string cgroupPath, bool learning, uint policyId = 0, DefconConfig? config = null, bool lsmFiles = false)
    {
        if (lsmFiles && !LsmFiles)
            throw new InvalidOperationException("the LSM file hooks are not loaded (KernelEnforcerOptions.LsmFiles)");
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        string path = CheckManageable(cgroupPath);
        config ??= Defaults;
        var state = new MisCgroupState
        {
            CgroupId = CgroupV2.IdOf(path),
            Flags = (learning ? (ulong)MisCgroupFlags.Learning : 0) | (lsmFiles ? (ulong)MisCgroupFlags.LsmFiles : 0),
            // As the seccomp supervisor counts it: a file whose ctime is later was written during the run.
            StartedRealtimeNs = (ulong)(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 50) * 1_000_000,
            PolicyId = policyId,
            Config = KernelConfig.ToKernel(config),
        };
        ulong id = state.CgroupId;

        lock (_gate)
        {
            if (_managed.ContainsKey(id))
                throw new InvalidOperationException($"cgroup {path} (id {id}) is already managed");
            var fd = Libc.OpenDirectory(path);
            try
            {
                state.ViewSlot = TakeViewSlot();
            }
            catch
            {
                fd.Dispose();
                throw;
            }
            var links = new List<BpfLink>();
            bool inserted = false;
            try
            {
                // The view's word before the state: the kernel publishes only to a slot in use.
                SetViewWord(state.ViewSlot, MisDefconView.Fresh);
                // State first: a hook that fires before it exists lets the task through.
                _cgroups.Update(BpfMap.Bytes(ref id), BpfMap.Bytes(ref state), BpfMap.NoExist);
                inserted = true;
                foreach (string program in CgroupPrograms)
                    links.Add(_object.Program(program).AttachCgroup(fd));
                if (UnixHooks)
                    foreach (var (program, _) in UnixPrograms)
                        links.Add(_object.Program(program).AttachCgroup(fd));
                _sysEnterLink ??= _object.Program("mis_sys_enter").Attach();
                _execLink ??= _object.Program("mis_exec").Attach();
                if (LsmFiles && _lsmLinks is null)
                    _lsmLinks = AttachAll(LsmPrograms); // all of them or none: a half set would decide half the operations
            }
            catch
            {
                foreach (var link in links)
                    link.Dispose();
                if (inserted)
                    _cgroups.Delete(BpfMap.Bytes(ref id));
                ReleaseViewSlot(state.ViewSlot);
                fd.Dispose();
                if (_managed.Count == 0)
                    DetachGlobalHooks();
                throw;
            }
            var managed = new ManagedCgroup(id, path, policyId, config, fd, links);
            _managed.Add(id, managed);
            _viewSlots[id] = state.ViewSlot;
            return managed;
        }
    }

    /// <summary>
    /// Ends enforcement of a cgroup: detaches its hooks, forgets its state, and detaches the
    /// syscall hook if it was the last. False when the cgroup was not managed.
    /// </summary>
    public bool Unmanage(ulong cgroupId)
    {
        lock (_gate)
        {
            if (_disposed != 0 || !_managed.Remove(cgroupId, out var managed))
                return false;
            managed.Release();
            _cgroups.Delete(BpfMap.Bytes(ref cgroupId));
            if (_viewSlots.TryRemove(cgroupId, out uint slot))
                ReleaseViewSlot(slot);
            ForgetUnixNames(cgroupId);
            if (_managed.Count == 0)
                DetachGlobalHooks();
            return true;
        }
    }

    /// <summary>Detaches every hook and unloads the object. Safe to call twice.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        lock (_gate)
        {
            foreach (var managed in _managed.Values)
                managed.Release();
            _managed.Clear();
            DetachGlobalHooks();
        }
        _pump.Dispose();
        // A supervisor may still be reading the view: unmap only once no read is under way.
        Interlocked.Exchange(ref _viewClosed, 1); // a full fence: no read starts unseen after this
        while (Volatile.Read(ref _viewReaders) != 0)
            Thread.Yield();
        unsafe
        {
            Libc.Munmap(_view, _viewBytes);
        }
        _object.Dispose();
    }

    // Under _gate. The next free slot after the last one given: a freed slot is reused last.
    private uint TakeViewSlot()
    {
        for (int i = 0; i < MaxCgroups; i++)
        {
            uint slot = (_nextSlot + (uint)i) % MaxCgroups;
            if (!_slotInUse[slot])
            {
                _slotInUse[slot] = true;
                _nextSlot = (slot + 1) % MaxCgroups;
                return slot;
            }
        }
        throw new InvalidOperationException($"MIS manages {MaxCgroups} cgroups already");
    }

    // Under _gate. Word 0 marks the slot unused, so the kernel stops publishing to it.
    private void ReleaseViewSlot(uint slot)
    {
        SetViewWord(slot, 0);
        _slotInUse[slot] = false;
    }

    private void SetViewWord(uint slot, ulong word) =>
        _defconView.Update(BpfMap.Bytes(ref slot), BpfMap.Bytes(ref word));

    /// <summary>
    /// The level <c>mis_defcon_view</c> states for the cgroup at CLOCK_MONOTONIC
    /// <paramref name="nowNs"/>: one load, no syscall. Null when it cannot say (not managed, or
    /// decay due by now: the kernel's query applies it and publishes again).
    /// </summary>
    internal unsafe int? ViewedDefcon(ulong cgroupId, ulong nowNs)
    {
        if (!_viewSlots.TryGetValue(cgroupId, out uint slot))
            return null;
        Interlocked.Increment(ref _viewReaders);
        try
        {
            return Volatile.Read(ref _viewClosed) == 0 ? MisDefconView.LevelAt(Volatile.Read(ref _view[slot]), nowNs) : null;
        }
        finally
        {
            Interlocked.Decrement(ref _viewReaders);
        }
    }

    private List<BpfLink> AttachAll(IEnumerable<string> programs)
    {
        var attached = new List<BpfLink>();
        try
        {
            foreach (string program in programs)
                attached.Add(_object.Program(program).Attach());
            return attached;
        }
        catch
        {
            foreach (var link in attached)
                link.Dispose();
            throw;
        }
    }

    private void DetachGlobalHooks()
    {
        _sysEnterLink?.Dispose();
        _sysEnterLink = null;
        _execLink?.Dispose();
        _execLink = null;
        foreach (var link in _lsmLinks ?? [])
            link.Dispose();
        _lsmLinks = null;
    }

    // Only cgroups below MIS's root: the syscall hook's first filter is "is the task below
    // MIS's root", and MIS never touches anything outside its own subtree. Never the
    // enforcer's own cgroup or an ancestor of it.
    private string CheckManageable(string cgroupPath)
    {
        string path = Path.TrimEndingDirectorySeparator(Path.GetFullPath(cgroupPath));
        if (!path.StartsWith(MisRoot + "/", StringComparison.Ordinal))
            throw new ArgumentException($"{path} is not below MIS's cgroup {MisRoot}", nameof(cgroupPath));
        if (!File.Exists(Path.Combine(path, "cgroup.procs")))
            throw new ArgumentException($"{path} is not a cgroup directory", nameof(cgroupPath));
        string mount = Path.GetDirectoryName(MisRoot)!;
        string? own = CgroupV2.PathOf(Environment.ProcessId);
        if (own is not null)
        {
            string ownPath = Path.TrimEndingDirectorySeparator(mount + own);
            if (ownPath == path || ownPath.StartsWith(path + "/", StringComparison.Ordinal))
                throw new ArgumentException($"{path} contains the enforcer itself ({ownPath})", nameof(cgroupPath));
        }
        return path;
    }

    /// <summary>The kernel fd of one of the enforcer's programs (for its BPF run statistics: <c>mis bench</c>).</summary>
    public int ProgramFd(string name) => _object.Program(name).Fd;

    private ulong StatCounter(MisStat stat)
    {
        if (_disposed != 0)
            return 0;
        uint key = (uint)stat;
        return _stats.SumPerCpuUInt64(BpfMap.Bytes(ref key));
    }
}
