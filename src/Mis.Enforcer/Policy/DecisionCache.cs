using System.Collections.Concurrent;

namespace Mis.Enforcer.Policy;

/// <summary>Hits and misses of a policy's decision cache so far.</summary>
/// <param name="Hits">Decisions answered from the cache.</param>
/// <param name="Misses">Decisions computed (and then cached).</param>
public readonly record struct DecisionCacheStats(long Hits, long Misses)
{
    /// <summary>Hits over all lookups, or null before the first.</summary>
    internal double? HitRate => Hits + Misses == 0 ? null : (double)Hits / (Hits + Misses);

    /// <summary>The counts of two caches together.</summary>
    public static DecisionCacheStats operator +(DecisionCacheStats a, DecisionCacheStats b) => new(a.Hits + b.Hits, a.Misses + b.Misses);
}

/// <summary>
/// The verdicts a <see cref="WorkloadPolicy"/> already computed, keyed on everything a verdict
/// depends on: the operation, the canonical path, the file's (device, inode) as opened, the
/// syscall, the DEFCON level, and the policy's rule generation. The file rules of a policy never
/// change (a reload builds a new policy, with a new cache); the generation changes whenever its
/// inode rules or the files it follows by identity do (added, removed, or one expired), so an entry computed under other rules is
/// never found again, even one inserted by a decision that raced the change. A changed file has
/// another inode, hence another key. Bounded: when full it is emptied and refilled.
/// </summary>
public sealed class DecisionCache(int capacity)
{
    private readonly ConcurrentDictionary<Key, Verdict> _entries = new();
    private long _inserted;
    private long _hits;
    private long _misses;

    /// <summary>Entries kept at most.</summary>
    internal int Capacity { get; } = capacity > 0 ? capacity : throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "a decision cache needs room for at least one entry");

    internal DecisionCacheStats Stats => new(Interlocked.Read(ref _hits), Interlocked.Read(ref _misses));

    internal bool TryGet(FileRequest access, int defcon, long generation, out Verdict verdict)
    {
        if (_entries.TryGetValue(new Key(access, defcon, generation), out verdict))
        {
            Interlocked.Increment(ref _hits);
            return true;
        }
        Interlocked.Increment(ref _misses);
        return false;
    }

    internal void Add(FileRequest access, int defcon, long generation, Verdict verdict)
    {
        if (Interlocked.Increment(ref _inserted) > Capacity)
        {
            _entries.Clear();
            Interlocked.Exchange(ref _inserted, 1);
        }
        _entries[new Key(access, defcon, generation)] = verdict;
    }

    private readonly record struct Key(FileOp Op, string Path, ulong Device, ulong Inode, int SyscallNr, bool NewName, bool Interpreter, bool WrittenDuringRun, int Defcon, long Generation)
    {
        internal Key(FileRequest a, int defcon, long generation)
            : this(a.Op, a.Path, a.Device, a.Inode, a.SyscallNr, a.NewName, a.Interpreter, a.WrittenDuringRun, defcon, generation)
        {
        }
    }
}
