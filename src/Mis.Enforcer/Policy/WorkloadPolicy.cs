using Mis.Enforcer.Confinement;
using Mis.Native;

namespace Mis.Enforcer.Policy;

/// <summary>
/// The policy one workload runs under: its file, inode and network rules, with the built-in
/// defaults after its own. Decides file operations for the seccomp supervisor; its network rules
/// are compiled into the kernel's rule map.
/// </summary>
/// <remarks>
/// Order of decision: inode rules (the seed's AddRule shape, newest first), then file rules in
/// order, first match wins. A match on an allow rule makes the operation "explicitly allowed".
/// With no match, the DEFCON level decides: at DEFCON 2 and 1 everything not explicitly allowed is
/// denied, at DEFCON 3 execs are; otherwise <see cref="DefaultAction"/> applies.
/// </remarks>
public sealed class WorkloadPolicy : IFileDecider
{
    private readonly TimeProvider _clock;
    private readonly object _gate = new();
    private List<InodeRule> _inodeRules;
    private DecisionCache? _cache;
    // Bumped (under _gate) whenever the inode rules in force change; part of every cache key.
    private long _generation;
    // When the next inode rule expires (ticks of _clock's UTC time); long.MaxValue: none does.
    private long _nextExpiryTicks = long.MaxValue;
    // The files file rules have met by name, by identity: the rule follows the object to its other names.
    private readonly ProtectedObjects _objects = new();

    /// <summary>A policy of <paramref name="fileRules"/> (in decision order), <paramref name="netRules"/> and <paramref name="inodeRules"/>; what no rule matches gets <paramref name="defaultAction"/>.</summary>
    public WorkloadPolicy(string name, Verdict defaultAction, IReadOnlyList<FileRule> fileRules,
        IReadOnlyList<NetRule> netRules, IReadOnlyList<InodeRule> inodeRules, TimeProvider? clock = null)
    {
        Name = name;
        DefaultAction = defaultAction;
        // Concrete paths also match by (device, inode): a hard link to /etc/shadow is /etc/shadow.
        FileRules = fileRules.Select(r => r.Path.IsConcrete ? r with { Identity = FileIdentity.Of(r.Path.Pattern) } : r).ToList();
        for (int i = 0; i < FileRules.Count; i++)
            if (FileRules[i].Identity is { } identity)
                _objects.Add(identity, FileRules[i].Path.Pattern, i);
        NetRules = netRules;
        _inodeRules = [.. inodeRules];
        _clock = clock ?? TimeProvider.System;
        _nextExpiryTicks = NextExpiry(_inodeRules);
        _cache = new DecisionCache(DefaultDecisionCacheSize);
    }

    /// <summary>The decision cache's size unless configured (the default of <c>[policy] decision_cache_size</c>).</summary>
    public const int DefaultDecisionCacheSize = 65536;

    /// <summary>
    /// Entries of the decision cache (<c>[policy] decision_cache_size</c>); 0 turns it off.
    /// Default <see cref="DefaultDecisionCacheSize"/>. Setting it empties the cache.
    /// </summary>
    public int DecisionCacheSize
    {
        get => _cache?.Capacity ?? 0;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _cache = value == 0 ? null : new DecisionCache(value);
        }
    }

    /// <summary>Hits and misses of the decision cache (zero while it is off).</summary>
    public DecisionCacheStats DecisionCacheStats => _cache?.Stats ?? default;

    /// <summary>The policy's name (file name or "builtin").</summary>
    public string Name { get; }

    /// <summary>The verdict when no rule matches at DEFCON 5 and 4.</summary>
    public Verdict DefaultAction { get; }

    /// <summary>
    /// <c>[policy] exec = "allowlist"</c>: only what an allow rule names may be run (as at DEFCON 3,
    /// at every level), and nothing changed during the run or without a name (memfd, O_TMPFILE)
    /// may be run at all. The mode an exec rule needs to hold: a deny rule on a program cannot stop
    /// a copy of it, or ld.so reading it as a library, since neither is an exec of that file.
    /// </summary>
    internal bool ExecAllowList { get; init; }

    /// <summary>File rules in decision order.</summary>
    public IReadOnlyList<FileRule> FileRules { get; }

    /// <summary>Network rules in decision order.</summary>
    public IReadOnlyList<NetRule> NetRules { get; }

    /// <summary>Unix socket rules (exact names); the kernel denies unlisted names outside the workload's own.</summary>
    public IReadOnlyList<UnixRule> UnixRules { get; init; } = [];

    /// <summary>Seed-shaped rules still in force (expired ones dropped).</summary>
    public IReadOnlyList<InodeRule> InodeRules
    {
        get
        {
            lock (_gate)
                return _inodeRules.Where(r => !Expired(r)).ToList();
        }
    }

    /// <summary>
    /// The files the kernel's exec backstop refuses for this policy: every concrete path a deny
    /// rule forbids executing, and every inode deny rule (this policy's and
    /// <paramref name="runtimeRules"/>', which apply to every policy) that covers exec (syscall 0,
    /// execve or execveat). The kernel kills a task that ends up executing one of them although
    /// the supervisor approved something else (a path rewritten meanwhile); the one place this set
    /// is computed, for every caller.
    /// </summary>
    internal IReadOnlyList<(ulong Device, ulong Inode)> ExecDenySet(IEnumerable<InodeRule> runtimeRules) =>
        FileRules
            .Where(r => r.Action == Verdict.Deny && r.Ops.HasFlag(FileOps.Exec) && r.Identity is not null)
            .Select(r => (r.Identity!.Value.Device, r.Identity.Value.Inode))
            .Concat(InodeRules.Concat(runtimeRules)
                .Where(r => r.Action == Verdict.Deny && r.SyscallNr is 0 or Syscalls.Execve or Syscalls.Execveat)
                .Select(r => (r.Device, r.Inode)))
            .Distinct()
            .ToList();

    /// <summary>Adds a seed-shaped rule (AddRule); it takes precedence over older ones.</summary>
    internal void AddInodeRule(InodeRule rule)
    {
        lock (_gate)
        {
            _inodeRules.Insert(0, rule);
            _nextExpiryTicks = NextExpiry(_inodeRules);
            _generation++;
        }
    }

    /// <summary>Removes seed-shaped rules on (device, inode); returns how many were removed.</summary>
    internal int RemoveInodeRules(ulong device, ulong inode)
    {
        lock (_gate)
        {
            int removed = _inodeRules.RemoveAll(r => r.Device == device && r.Inode == inode);
            _nextExpiryTicks = NextExpiry(_inodeRules);
            _generation++;
            return removed;
        }
    }

    /// <inheritdoc />
    /// <remarks>Answered from the decision cache when the same request was decided under the same rules at the same level.</remarks>
    public Verdict Decide(FileRequest access, int defcon)
    {
        if (_cache is not { } cache)
            return Explain(access, defcon).Verdict;
        long generation = Generation();
        if (cache.TryGet(access, defcon, generation, out var verdict))
            return verdict;
        // The generation was read before the rules: a change racing this decision bumps it, so
        // what this computes is filed under the old one and never found again.
        verdict = Explain(access, defcon).Verdict;
        cache.Add(access, defcon, generation, verdict);
        return verdict;
    }

    /// <summary>The current rule generation, first retiring every inode rule whose time is up.</summary>
    private long Generation()
    {
        if (_clock.GetUtcNow().UtcTicks < Volatile.Read(ref _nextExpiryTicks))
            return Volatile.Read(ref _generation);
        lock (_gate)
        {
            long now = _clock.GetUtcNow().UtcTicks;
            if (now >= _nextExpiryTicks)
            {
                _inodeRules.RemoveAll(Expired);
                _nextExpiryTicks = NextExpiry(_inodeRules);
                _generation++;
            }
            return _generation;
        }
    }

    private static long NextExpiry(List<InodeRule> rules) =>
        rules.Count == 0 ? long.MaxValue : rules.Min(r => r.Expires?.UtcTicks ?? long.MaxValue);

    /// <summary>The verdict and the rule (or level) that produced it, for events and tests.</summary>
    /// <remarks>
    /// A file rule matches by path, or by the identity of a file it matched by path before: a rule
    /// protects the object, not one spelling of it. The identities are recorded (see
    /// <see cref="ProtectedObjects"/>) whenever a file a rule names could be reached by another name
    /// — it has other hard links, or this operation gives it one (link, rename) — and for concrete
    /// paths whenever they are met, so a file replaced during the run is protected too.
    /// </remarks>
    public (Verdict Verdict, string Reason) Explain(FileRequest access, int defcon)
    {
        if (access.Inode != 0)
        {
            foreach (var rule in InodeRules)
                if (rule.AppliesTo(access))
                    return (rule.Action, rule.Source);
        }
        if (access.Op == FileOp.Exec && access.WrittenDuringRun && ExecAllowList)
            return (Verdict.Deny, $"{Name}: exec allow-list: nothing changed during the run, or without a name, may be run");
        // The rules whose pattern matches the path, each pattern tried once.
        List<int>? byPath = null;
        for (int i = 0; i < FileRules.Count; i++)
            if (FileRules[i].Path.Matches(access.Path))
                (byPath ??= []).Add(i);
        var identity = new FileIdentity(access.Device, access.Inode);
        if (access.Inode != 0 && !Remember(access, identity, byPath))
            return (Verdict.Deny, $"{Name}: {ProtectedObjects.Capacity} files followed by identity already; no more new names for named files");
        var named = access.Inode != 0 ? _objects.RulesOf(identity) : null;
        for (int i = 0; i < FileRules.Count; i++)
        {
            var rule = FileRules[i];
            if (!rule.AppliesTo(access.Op))
                continue;
            if (byPath is not null && byPath.Contains(i))
                return (rule.Action, rule.Source);
            if (named is not null && named.Contains(i))
                return (rule.Action, $"{rule.Source} (the same file as {_objects.NameOf(identity)})");
        }
        // A program's interpreter (ld.so) is loaded as part of a program that was decided itself:
        // only a rule that names it refuses it.
        if (access.Interpreter)
            return (Verdict.Allow, "the program interpreter of a decided program");
        if (defcon <= 2)
            return (Verdict.Deny, $"DEFCON {defcon}: everything not explicitly allowed is denied");
        if (defcon == 3 && access.Op == FileOp.Exec)
            return (Verdict.Deny, "DEFCON 3: exec of anything not explicitly allowed is denied");
        if (ExecAllowList && access.Op == FileOp.Exec)
            return (Verdict.Deny, $"{Name}: exec allow-list: exec of anything not explicitly allowed is denied");
        return (DefaultAction, $"{Name}: default {DefaultAction.ToString().ToLowerInvariant()}");
    }

    private bool Expired(InodeRule rule) => rule.Expires is { } at && _clock.GetUtcNow() >= at;

    /// <summary>Records what each exact-path rule's file is now.</summary>
    private void RefreshConcrete()
    {
        for (int i = 0; i < FileRules.Count; i++)
            if (FileRules[i].Path.IsConcrete && FileIdentity.Of(FileRules[i].Path.Pattern) is { } now
                && _objects.Add(now, FileRules[i].Path.Pattern, i) == ProtectedObjects.Outcome.Added)
                BumpGeneration();
    }

    /// <summary>A followed file was added: no cached verdict on another name of it may survive.</summary>
    private void BumpGeneration()
    {
        lock (_gate)
            _generation++;
    }

    /// <summary>
    /// Records the identity of a file that file rules match by path when it has, or is about to
    /// get, another name; bumps the rule generation when that changes a decision (so no cached
    /// verdict on another name of it survives). False when the record is full and the operation
    /// gives the file a new name: then it must be refused, or the new name would be unprotected.
    /// </summary>
    private bool Remember(FileRequest access, FileIdentity identity, List<int>? matching)
    {
        bool concrete = matching is not null && matching.Exists(i => FileRules[i].Path.IsConcrete);
        if (matching is null && access.Links > 1 && !access.Directory)
            RefreshConcrete(); // another name of a file an exact-path rule names now (replaced since the policy was built)? A stat per such rule, so only where a hard link could be one.
        if (matching is null || !(access.NewName || access.Links > 1 || concrete))
            return true;
        var added = _objects.Add(identity, access.Path, matching);
        if (added == ProtectedObjects.Outcome.Added)
            BumpGeneration();
        return added != ProtectedObjects.Outcome.Full || !access.NewName;
    }
}
