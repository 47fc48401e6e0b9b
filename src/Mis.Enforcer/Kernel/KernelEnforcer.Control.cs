using System.Diagnostics;
using System.Runtime.InteropServices;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Policy;
using Mis.Native.Bpf;

namespace Mis.Enforcer.Kernel;

// The control surface: everything that reads or changes a cgroup's DEFCON state goes through
// the mis_report program (BPF_PROG_TEST_RUN), so the kernel's state machine is the only code
// that ever touches the counters.
public sealed partial class KernelEnforcer
{
    /// <summary>
    /// Counts a violation decided in user space (e.g. by the seccomp supervisor) in the kernel's
    /// state machine. When it takes the cgroup to DEFCON 1 with kill, the cgroup is killed
    /// (<c>cgroup.kill</c>) before this returns.
    /// </summary>
    /// <exception cref="KeyNotFoundException">The cgroup is not managed.</exception>
    public ViolationOutcome Report(ViolationReport report) => ReportAt(report, 0);

    /// <summary>
    /// <see cref="Report"/> with the kernel's clock replaced by <paramref name="nowNs"/> (0: the real
    /// CLOCK_MONOTONIC), for deterministic tests of decay and for replaying traces.
    /// </summary>
    internal ViolationOutcome ReportAt(ViolationReport report, ulong nowNs)
    {
        ArgumentNullException.ThrowIfNull(report);
        var ctx = new MisReportCtx
        {
            CgroupId = report.CgroupId,
            NowNs = nowNs,
            Command = (uint)MisCommand.Violation,
            Op = (uint)report.Op,
            Pid = (uint)report.Pid,
            Tid = (uint)report.Tid,
        };
        unsafe
        {
            KernelStrings.Encode(CommOf(report.Pid), new Span<byte>(ctx.Comm, 16));
            KernelStrings.Encode(report.Target, new Span<byte>(ctx.Target, 256));
        }
        Run(ref ctx);
        if ((MisResult)ctx.Result == MisResult.NoCgroup)
            throw new KeyNotFoundException($"cgroup {report.CgroupId} is not managed by this enforcer");
        // The kernel also emits a KILL event, which the event thread acts on; killing here too
        // means the caller's next step already sees a dead cgroup. Both writes are idempotent.
        if (ctx.DefconAfter == 1 && ctx.DefconBefore != 1 && (ctx.Flags & (uint)MisCgroupFlags.Killed) != 0)
            KillCgroup(report.CgroupId);
        return Outcome(ctx);
    }

    /// <summary>The cgroup's state with decay applied, or null when it is not managed.</summary>
    public CgroupState? State(ulong cgroupId) => StateAt(cgroupId, 0);

    /// <summary><see cref="State"/> at an explicit clock reading (see <see cref="ReportAt"/>).</summary>
    internal CgroupState? StateAt(ulong cgroupId, ulong nowNs)
    {
        var ctx = new MisReportCtx { CgroupId = cgroupId, NowNs = nowNs, Command = (uint)MisCommand.Query };
        Run(ref ctx);
        return (MisResult)ctx.Result == MisResult.NoCgroup ? null : ToState(ctx);
    }

    /// <summary>
    /// The cgroup's DEFCON level, decay applied: read from <c>mis_defcon_view</c> with a load when
    /// it holds now (the supervisor asks before every decision), else queried from the kernel.
    /// </summary>
    /// <exception cref="KeyNotFoundException">The cgroup is not managed: it has no level, and none is made up for it.</exception>
    public DefconLevel Defcon(ulong cgroupId) =>
        ViewedDefcon(cgroupId, MonotonicNs()) is int level
            ? DefconLevel.From(level)
            : State(cgroupId)?.Defcon ?? throw new KeyNotFoundException($"cgroup {cgroupId} is not managed by this enforcer: it has no DEFCON level");

    // Stopwatch is CLOCK_MONOTONIC in nanoseconds on Linux: the clock of bpf_ktime_get_ns.
    internal static ulong MonotonicNs()
    {
        long ticks = Stopwatch.GetTimestamp();
        return Stopwatch.Frequency == 1_000_000_000 ? (ulong)ticks : (ulong)(ticks * (1e9 / Stopwatch.Frequency));
    }

    /// <summary>Turns learning mode on or off for a managed cgroup.</summary>
    /// <exception cref="KeyNotFoundException">The cgroup is not managed.</exception>
    public void SetLearningMode(ulong cgroupId, bool enabled) => SetLearningModeAt(cgroupId, enabled, 0);

    /// <summary><see cref="SetLearningMode"/> at an explicit clock reading (decay is applied first; see <see cref="ReportAt"/>).</summary>
    internal void SetLearningModeAt(ulong cgroupId, bool enabled, ulong nowNs)
    {
        var ctx = new MisReportCtx { CgroupId = cgroupId, NowNs = nowNs, Command = (uint)MisCommand.SetLearning, Arg = enabled ? 1u : 0u };
        Run(ref ctx);
        if ((MisResult)ctx.Result == MisResult.NoCgroup)
            throw new KeyNotFoundException($"cgroup {cgroupId} is not managed by this enforcer");
    }

    /// <summary>
    /// The manual DEFCON override: sets the cgroup's violation count to the entry count of
    /// <paramref name="level"/> (0 for DEFCON 5, else the threshold that enters it) in one kernel
    /// exchange, emitting one DEFCON event, and a KILL event plus <c>cgroup.kill</c> when it
    /// enters DEFCON 1 with kill. Lowering the level is this same reset of the count; the kernel
    /// never clears a kill (callers refuse to lower a killed cgroup). The C# twin is
    /// <see cref="Defcon.DefconStateMachine.SetLevel"/>.
    /// </summary>
    /// <exception cref="KeyNotFoundException">The cgroup is not managed.</exception>
    public ViolationOutcome SetDefcon(ulong cgroupId, DefconLevel level) => SetDefconAt(cgroupId, level, 0);

    /// <summary><see cref="SetDefcon"/> at an explicit clock reading (decay is applied first; see <see cref="ReportAt"/>).</summary>
    internal ViolationOutcome SetDefconAt(ulong cgroupId, DefconLevel level, ulong nowNs)
    {
        var ctx = new MisReportCtx { CgroupId = cgroupId, NowNs = nowNs, Command = (uint)MisCommand.SetDefcon, Arg = (uint)level.Value };
        Run(ref ctx);
        if ((MisResult)ctx.Result == MisResult.NoCgroup)
            throw new KeyNotFoundException($"cgroup {cgroupId} is not managed by this enforcer");
        if (ctx.DefconAfter == 1 && ctx.DefconBefore != 1 && (ctx.Flags & (uint)MisCgroupFlags.Killed) != 0)
            KillCgroup(cgroupId);
        return Outcome(ctx);
    }

    /// <summary>
    /// Replaces the network rules of <paramref name="policyId"/> (see <see cref="NetRuleKeys"/> for
    /// how they match). New rules are written before the stale ones are removed, so a rule present
    /// in both sets never disappears in between. Each rule's kernel rule id is its index here.
    /// </summary>
    /// <exception cref="ArgumentException">A rule does not fit the kernel's rule key.</exception>
    public void SetNetRules(uint policyId, IEnumerable<NetRule> rules)
    {
        ArgumentNullException.ThrowIfNull(rules);
        var entries = rules.Select((r, i) => NetRuleKeys.ToKernel(r, policyId, (uint)i)).ToList();
        ReplaceEntries(_netRules, entries, (MisNetKey k) => k.PolicyId == policyId);
    }

    /// <summary>
    /// Replaces the Unix socket rules of <paramref name="policyId"/> (exact names; see
    /// <c>bpf/include/mis_unix.h</c>). New rules are written before stale ones are removed.
    /// </summary>
    public void SetUnixRules(uint policyId, IEnumerable<UnixRule> rules)
    {
        ArgumentNullException.ThrowIfNull(rules);
        var entries = rules.Select((r, i) => (Key: UnixKey(policyId, r.KernelName()), Value: new MisNetValue { Action = (uint)r.Action, RuleId = (uint)i })).ToList();
        ReplaceEntries(_unixRules, entries, (MisUnixKey k) => k.Scope == policyId);
    }

    // The names a cgroup's sockets listened on die with its management: a later cgroup that
    // reuses the id (ids are inode numbers) must not inherit them. Called under _gate.
    private void ForgetUnixNames(ulong cgroupId)
    {
        foreach (var key in _unixOwn.Keys(Marshal.SizeOf<MisUnixKey>()))
        {
            if (MemoryMarshal.Read<MisUnixKey>(key).Scope == cgroupId)
                _unixOwn.Delete(key);
        }
    }

    private static unsafe MisUnixKey UnixKey(ulong scope, byte[] name)
    {
        if (name.Length is 0 or > MisUnixKey.NameMax)
            throw new ArgumentException($"a Unix socket name is 1..{MisUnixKey.NameMax} bytes", nameof(name));
        var key = new MisUnixKey { Scope = scope, Len = (uint)name.Length };
        for (int i = 0; i < name.Length; i++)
            key.Name[i] = name[i];
        return key;
    }

    /// <summary>
    /// Replaces the exec backstop set of <paramref name="policyId"/>: files (by <c>stat</c>'s
    /// st_dev and st_ino) whose exec by a managed task counts a violation and kills the task.
    /// </summary>
    public void SetExecDeny(uint policyId, IEnumerable<(ulong Device, ulong Inode)> files)
    {
        ArgumentNullException.ThrowIfNull(files);
        var entries = files.Select(f => (Key: new MisExecKey { Dev = KernelDev(f.Device), Ino = f.Inode, PolicyId = policyId }, Value: 1u)).ToList();
        ReplaceEntries(_execDeny, entries, (MisExecKey k) => k.PolicyId == policyId);
    }

    /// <summary>
    /// Makes <paramref name="entries"/> the entries of <paramref name="map"/> that
    /// <paramref name="owned"/> selects (one policy's): new ones are written before stale ones are
    /// removed, so an entry present in both sets never disappears in between.
    /// </summary>
    private void ReplaceEntries<TKey, TValue>(BpfMap map, IReadOnlyList<(TKey Key, TValue Value)> entries, Func<TKey, bool> owned)
        where TKey : unmanaged
        where TValue : unmanaged
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            var keep = new HashSet<string>();
            foreach (var (key, value) in entries)
            {
                var k = key;
                var v = value;
                map.Update(BpfMap.Bytes(ref k), BpfMap.Bytes(ref v));
                keep.Add(Convert.ToHexString(BpfMap.Bytes(ref k)));
            }
            foreach (var stale in map.Keys(Marshal.SizeOf<TKey>()))
            {
                if (owned(MemoryMarshal.Read<TKey>(stale)) && !keep.Contains(Convert.ToHexString(stale)))
                    map.Delete(stale);
            }
        }
    }

    /// <inheritdoc />
    public void ApproveExec(ulong cgroupId, int tid, ulong device, ulong inode)
    {
        var approval = new MisExecApproval { Dev = KernelDev(device), Ino = inode, CgroupId = cgroupId };
        uint key = (uint)tid;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            _execApproved.Update(BpfMap.Bytes(ref key), BpfMap.Bytes(ref approval));
        }
    }

    // glibc's dev_t (what stat returns) to the kernel's internal MAJOR << 20 | MINOR, which
    // is what inode->i_sb->s_dev holds.
    internal static ulong KernelDev(ulong userDev)
    {
        ulong major = ((userDev >> 8) & 0xfff) | ((userDev >> 32) & ~0xfffUL);
        ulong minor = (userDev & 0xff) | ((userDev >> 12) & ~0xffUL);
        return (major << 20) | (minor & 0xfffff);
    }

    private void Run(ref MisReportCtx ctx)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        _report.TestRunInOut(MemoryMarshal.AsBytes(new Span<MisReportCtx>(ref ctx)));
        if ((MisResult)ctx.Result == MisResult.BadCommand)
            throw new InvalidOperationException($"mis_report refused command {ctx.Command}: the BPF object and this build disagree");
    }

    private static ViolationOutcome Outcome(in MisReportCtx ctx) =>
        new(ctx.Violations, DefconLevel.From((int)ctx.DefconBefore), DefconLevel.From((int)ctx.DefconAfter));

    private static CgroupState ToState(in MisReportCtx ctx) => new(
        ctx.CgroupId, ctx.Violations, DefconLevel.From((int)ctx.DefconAfter), ctx.SlowdownNsTotal, ctx.Syscalls,
        (ctx.Flags & (uint)MisCgroupFlags.Learning) != 0, (ctx.Flags & (uint)MisCgroupFlags.Killed) != 0,
        ctx.LearningViolations, ctx.PolicyId);

    // Runs on the event thread, before the event reaches the channel: a kill must not wait
    // behind a slow reader.
    private void OnEvent(KernelEvent e)
    {
        if (e.Type == KernelEventType.Kill)
            KillCgroup(e.CgroupId);
    }

    private void KillCgroup(ulong cgroupId)
    {
        string? path;
        lock (_gate)
            path = _managed.TryGetValue(cgroupId, out var managed) ? managed.Path : null;
        // Only a cgroup we manage, by its directory: never a PID remembered from earlier.
        if (path is not null && CgroupKiller.Kill(path))
            Interlocked.Increment(ref _cgroupKills);
    }

    // The reported task's name, for the event. Best effort: the task may be gone already.
    private static string CommOf(int pid)
    {
        if (pid <= 0)
            return "";
        try
        {
            return File.ReadAllText($"/proc/{pid}/comm").TrimEnd('\n');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }
}
