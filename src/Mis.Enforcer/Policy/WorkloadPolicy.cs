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
internal sealed class WorkloadPolicy : IFileDecider
{
    private readonly TimeProvider _clock;
    private readonly object _gate = new();
    private List<InodeRule> _inodeRules;
    private DecisionCache? _cache;
    // Bumped (under _gate) whenever the inode rules in force change; part of every cache key.
    private long _generation;
    // When the next inode rule expires (ticks of _clock's UTC time); long.MaxValue: none does.
    private long _nextExpiryTicks = long.MaxValue;

    internal WorkloadPolicy(string name, Verdict defaultAction, IReadOnlyList<FileRule> fileRules,
        IReadOnlyList<NetRule> netRules, IReadOnlyList<InodeRule> inodeRules, TimeProvider? clock = null)
    {
        Name = name;
        DefaultAction = defaultAction;
        // Concrete paths also match by (device, inode): a hard link to /etc/shadow is /etc/shadow.
        FileRules = fileRules.Select(r => r.Path.IsConcrete ? r with { Identity = FileIdentity.Of(r.Path.Pattern) } : r).ToList();
        NetRules = netRules;
        _inodeRules = [.. inodeRules];
        _clock = clock ?? TimeProvider.System;
        _nextExpiryTicks = NextExpiry(_inodeRules);
        _cache = new DecisionCache(DefaultDecisionCacheSize);
    }

    /// <summary>The decision cache's size unless configured (the default of <c>[policy] decision_cache_size</c>).</summary>
    internal const int DefaultDecisionCacheSize = 65536;

    /// <summary>
    /// Entries of the decision cache (<c>[policy] decision_cache_size</c>); 0 turns it off.
    /// Default <see cref="DefaultDecisionCacheSize"/>. Setting it empties the cache.
    /// </summary>
    internal int DecisionCacheSize
    {
        get => _cache?.Capacity ?? 0;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _cache = value == 0 ? null : new DecisionCache(value);
        }
    }

    /// <summary>Hits and misses of the decision cache (zero while it is off).</summary>
    internal DecisionCacheStats DecisionCacheStats => _cache?.Stats ?? default;

    /// <summary>The policy's name (file name or "builtin").</summary>
    internal string Name { get; }

    /// <summary>The verdict when no rule matches at DEFCON 5 and 4.</summary>
    internal Verdict DefaultAction { get; }

    /// <summary>File rules in decision order.</summary>
    internal IReadOnlyList<FileRule> FileRules { get; }

    /// <summary>Network rules in decision order.</summary>
    internal IReadOnlyList<NetRule> NetRules { get; }

    /// <summary>Unix socket rules (exact names); the kernel denies unlisted names outside the workload's own.</summary>
    internal IReadOnlyList<UnixRule> UnixRules { get; init; } = [];

    /// <summary>Seed-shaped rules still in force (expired ones dropped).</summary>
    internal IReadOnlyList<InodeRule> InodeRules
    {
        get
        {
            lock (_gate)
                return _inodeRules.Where(r => !Expired(r)).ToList();
        }
    }

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
    internal (Verdict Verdict, string Reason) Explain(FileRequest access, int defcon)
    {
        if (access.Inode != 0)
        {
            foreach (var rule in InodeRules)
                if (rule.Device == access.Device && rule.Inode == access.Inode && (rule.SyscallNr == 0 || rule.SyscallNr == access.SyscallNr))
                    return (rule.Action, rule.Source);
        }
        foreach (var rule in FileRules)
        {
            if (!rule.AppliesTo(access.Op))
                continue;
            bool sameFile = rule.Identity is { } id && access.Inode != 0 && id.Device == access.Device && id.Inode == access.Inode;
            if (sameFile || rule.Path.Matches(access.Path))
                return (rule.Action, rule.Source);
        }
        if (defcon <= 2)
            return (Verdict.Deny, $"DEFCON {defcon}: everything not explicitly allowed is denied");
        if (defcon == 3 && access.Op == FileOp.Exec)
            return (Verdict.Deny, "DEFCON 3: exec of anything not explicitly allowed is denied");
        return (DefaultAction, $"{Name}: default {DefaultAction.ToString().ToLowerInvariant()}");
    }

    private bool Expired(InodeRule rule) => rule.Expires is { } at && _clock.GetUtcNow() >= at;
}
