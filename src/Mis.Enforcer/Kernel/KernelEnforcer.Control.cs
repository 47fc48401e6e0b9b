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

    /// <inheritdoc />
    /// <remarks>Through mis_report, so that the event takes the same path as the hooks' trace events.</remarks>
    public void Trace(ViolationReport report)
    {
        var ctx = ReportContext(MisCommand.Trace, report, 0);
        Run(ref ctx);
    }

    // The context of a command about one task's operation (a violation, a trace).
    private static MisReportCtx ReportContext(MisCommand command, ViolationReport report, ulong nowNs)
    {
        ArgumentNullException.ThrowIfNull(report);
        var ctx = new MisReportCtx
        {
            CgroupId = report.CgroupId,
            NowNs = nowNs,
            Command = (uint)command,
            Op = (uint)report.Op,
            Pid = (uint)report.Pid,
            Tid = (uint)report.Tid,
        };
        unsafe
        {
            KernelStrings.Encode(CommOf(report.Pid), new Span<byte>(ctx.Comm, 16));
            KernelStrings.Encode(report.Target, new Span<byte>(ctx.Target, 256));
        }
        return ctx;
    }

    /// <summary>
    /// <see cref="Report"/> with the kernel's clock replaced by <paramref name="nowNs"/> (0: the real
    /// CLOCK_MONOTONIC), for deterministic tests of decay and for replaying traces.
    /// </summary>
    internal ViolationOutcome ReportAt(ViolationReport report, ulong nowNs)
    {
        var ctx = ReportContext(MisCommand.Violation, report, nowNs);
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
    /// Writes <paramref name="policy"/>'s file rules, with <paramref name="runtimeRules"/> (which
    /// apply to every policy), as the BPF LSM hooks decide with them under
    /// <paramref name="policyId"/> (bpf/include/mis_lsm.h); null removes them. Compiled first and
    /// written only whole: a policy the kernel cannot hold throws and changes nothing.
    /// </summary>
    /// <exception cref="NotSupportedException">The policy does not fit the kernel's tables (the message says why).</exception>
    internal void SetFilePolicy(uint policyId, WorkloadPolicy? policy, IReadOnlyList<InodeRule> runtimeRules) =>
        WriteFilePolicy(CompileFilePolicy(policyId, policy, runtimeRules));

    private static int s_filePolicyGeneration;

    /// <summary>A policy's file rules as the kernel's tables hold them (<see cref="CompileFilePolicy"/>), not written yet.</summary>
    internal sealed record CompiledFilePolicy(uint PolicyId, MisFilePolicy? File, PathAutomaton? Automaton,
        List<(MisExactKey Key, MisRuleSet Value)> Exact, List<(MisObjectKey Key, MisRuleSet Value)> Objects,
        List<(MisInodeKey Key, uint Value)> InodeActions);

    /// <summary>Compiles <paramref name="policy"/>'s file rules for the kernel without writing them (null: their removal).</summary>
    /// <exception cref="NotSupportedException">The policy does not fit the kernel's tables (the message says why).</exception>
    internal static unsafe CompiledFilePolicy CompileFilePolicy(uint policyId, WorkloadPolicy? policy, IReadOnlyList<InodeRule> runtimeRules)
    {
        var globs = new List<(int, PathGlob)>();
        var exact = new Dictionary<string, MisRuleSet>(StringComparer.Ordinal);
        var objects = new Dictionary<(ulong, ulong), MisRuleSet>();
        // A new generation for every compile: what the hooks remember of a path under older
        // rules (mis_path_rules) no longer answers once these are in force.
        var file = new MisFilePolicy { Generation = unchecked((uint)Interlocked.Increment(ref s_filePolicyGeneration)) };
        if (policy is not null)
        {
            if (policy.FileRules.Count > PathAutomaton.NoRule)
                throw new NotSupportedException($"the policy has {policy.FileRules.Count} file rules; the kernel holds {PathAutomaton.NoRule}");
            file.Rules = (uint)policy.FileRules.Count;
            file.DefaultAction = (uint)policy.DefaultAction;
            file.ExecAllowList = policy.ExecAllowList ? 1u : 0;
            for (int r = 0; r < policy.FileRules.Count; r++)
            {
                var rule = policy.FileRules[r];
                file.Action[r] = (byte)rule.Action;
                if (rule.Ops.HasFlag(FileOps.Read))
                    file.AppliesRead.Add(r);
                if (rule.Ops.HasFlag(FileOps.Write))
                    file.AppliesWrite.Add(r);
                if (rule.Ops.HasFlag(FileOps.Exec))
                    file.AppliesExec.Add(r);
                if (!rule.Path.IsConcrete)
                {
                    globs.Add((r, rule.Path));
                    continue;
                }
                if (System.Text.Encoding.UTF8.GetByteCount(rule.Path.Pattern) >= PathAutomaton.PathMax)
                    throw new NotSupportedException($"the path {rule.Path.Pattern} is longer than the kernel matches ({PathAutomaton.PathMax - 1} bytes)");
                var set = exact.GetValueOrDefault(rule.Path.Pattern);
                set.Add(r);
                exact[rule.Path.Pattern] = set;
                if (rule.Identity is { } id)
                {
                    var named = objects.GetValueOrDefault((KernelDev(id.Device), id.Inode));
                    named.Add(r);
                    objects[(KernelDev(id.Device), id.Inode)] = named;
                }
            }
        }
        // The runtime rules first, as the supervisor asks them (EnforcementSession.SlotDecider).
        var inodeActions = policy is null ? [] : InodeActions(runtimeRules.Concat(policy.InodeRules).ToList(), policyId);
        file.InodeRules = (uint)inodeActions.Count;
        return new CompiledFilePolicy(policyId, policy is null ? null : file,
            policy is null ? null : PathAutomaton.Compile(globs),
            exact.Select(e => (ExactKey(policyId, e.Key), e.Value)).ToList(),
            objects.Select(o => (new MisObjectKey { Dev = o.Key.Item1, Ino = o.Key.Item2, PolicyId = policyId }, o.Value)).ToList(),
            inodeActions);
    }

    /// <summary>Writes what <see cref="CompileFilePolicy"/> made: the policy entry last, so the hooks never see it half written.</summary>
    private void WriteFilePolicy(CompiledFilePolicy compiled)
    {
        uint policyId = compiled.PolicyId;
        SetGlobs(policyId, compiled.Automaton);
        ReplaceEntries(_exactPaths, compiled.Exact, (MisExactKey k) => k.PolicyId == policyId);
        // Objects the hooks followed by identity stay: they are what the rules met during the run.
        foreach (var (objectKey, set) in compiled.Objects)
        {
            var key = objectKey;
            var value = set;
            lock (_gate)
                _fileObjects.Update(BpfMap.Bytes(ref key), BpfMap.Bytes(ref value));
        }
        if (compiled.File is null)
            ReplaceEntries(_fileObjects, new List<(MisObjectKey, MisRuleSet)>(), (MisObjectKey k) => k.PolicyId == policyId);
        ReplaceEntries(_inodeRules, compiled.InodeActions, (MisInodeKey k) => k.PolicyId == policyId);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            if (compiled.File is not { } file)
                _filePolicies.Delete(BpfMap.Bytes(ref policyId));
            else
                _filePolicies.Update(BpfMap.Bytes(ref policyId), BpfMap.Bytes(ref file));
        }
    }

    /// <summary>
    /// The seed's inode rules (newest first) as (dev, inode, syscall) -> action: for a syscall
    /// some rule names, the newest rule for it or for any syscall; for 0, the newest for any.
    /// </summary>
    private static List<(MisInodeKey Key, uint Value)> InodeActions(IReadOnlyList<InodeRule> rules, uint policyId)
    {
        var result = new Dictionary<(ulong, ulong, int), uint>();
        foreach (var group in rules.GroupBy(r => (r.Device, r.Inode)))
        {
            foreach (int nr in group.Select(r => r.SyscallNr).Append(0).Distinct())
            {
                var first = group.FirstOrDefault(r => r.SyscallNr == 0 || (nr != 0 && r.SyscallNr == nr));
                if (first is not null)
                    result[(group.Key.Device, group.Key.Inode, nr)] = (uint)first.Action;
            }
        }
        return result.Select(e => (new MisInodeKey { Dev = KernelDev(e.Key.Item1), Ino = e.Key.Item2, PolicyId = policyId, Syscall = (uint)e.Key.Item3 }, e.Value)).ToList();
    }

    private static unsafe MisExactKey ExactKey(uint policyId, string path)
    {
        var key = new MisExactKey { PolicyId = policyId };
        KernelStrings.Encode(path, new Span<byte>(key.Path, PathAutomaton.PathMax));
        return key;
    }

    /// <summary>
    /// Replaces the compiled path globs of <paramref name="policyId"/> (see <see cref="PathAutomaton"/>);
    /// null removes them. New words are written before stale ones are removed.
    /// </summary>
    internal unsafe void SetGlobs(uint policyId, PathAutomaton? automaton)
    {
        var entries = new List<(MisGlobKey Key, MisGlobWord Value)>();
        for (int w = 0; automaton is not null && w < automaton.Words.Count; w++)
        {
            var word = automaton.Words[w];
            var value = new MisGlobWord { Start = word.Start, Eps1 = word.Eps1, Eps3 = word.Eps3, Final = word.Final, Tree = word.Tree };
            for (int c = 0; c < 256; c++)
            {
                value.Adv[c] = word.Adv[c];
                value.Loop[c] = word.Loop[c];
            }
            for (int p = 0; p < 64; p++)
                value.Rule[p] = word.Rule[p];
            entries.Add((new MisGlobKey { PolicyId = policyId, Word = (uint)w }, value));
        }
        ReplaceEntries(_globs, entries, (MisGlobKey k) => k.PolicyId == policyId);
    }

    /// <summary>
    /// The file rules of <paramref name="policyId"/> whose globs the kernel's matcher finds in
    /// <paramref name="path"/> (at most <see cref="PathAutomaton.PathMax"/> - 1 bytes of it): the
    /// code the in-kernel file backend decides with, run on demand.
    /// </summary>
    internal unsafe IReadOnlySet<int> KernelGlobMatch(uint policyId, string path)
    {
        var ctx = new MisGlobMatchCtx { PolicyId = policyId };
        KernelStrings.Encode(path, new Span<byte>(ctx.Path, PathAutomaton.PathMax));
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        _globMatch.TestRunInOut(MemoryMarshal.AsBytes(new Span<MisGlobMatchCtx>(ref ctx)));
        var rules = new SortedSet<int>();
        for (int r = 0; r < 256; r++)
            if ((ctx.Matched[r >> 6] & (1UL << (r & 63))) != 0)
                rules.Add(r);
        return rules;
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
