using System.Collections.Concurrent;
using Mis.Native;

namespace Mis.Enforcer.Policy;

/// <summary>
/// The files a policy's file rules have matched by name, by (device, inode), with the rules that
/// matched: a hard link, a renamed parent or a rename of the file itself gives it a name no
/// pattern matches, and the rules must follow it there. Bounded (<see cref="Capacity"/>): a
/// workload cannot make the enforcer remember without end; what it cannot record, it refuses to
/// rename or link (see <see cref="WorkloadPolicy"/>).
/// </summary>
public sealed class ProtectedObjects
{
    /// <summary>Files recorded at most per policy.</summary>
    internal const int Capacity = 100_000;

    private readonly ConcurrentDictionary<FileIdentity, Entry> _entries = new();

    private sealed record Entry(string Name, int[] Rules);

    /// <summary>What following a name found about the object it names.</summary>
    public enum Outcome
    {
        /// <summary>Nothing new: the file was recorded with these rules already.</summary>
        Known,
        /// <summary>Recorded now (or more rules added to it).</summary>
        Added,
        /// <summary>Not recorded: the record is full.</summary>
        Full,
    }

    /// <summary>Records that rule <paramref name="rule"/> matched the file <paramref name="identity"/> by the name <paramref name="name"/>.</summary>
    internal Outcome Add(FileIdentity identity, string name, int rule) => Add(identity, name, [rule]);

    /// <summary>Records that <paramref name="rules"/> matched the file <paramref name="identity"/> by the name <paramref name="name"/>.</summary>
    internal Outcome Add(FileIdentity identity, string name, IReadOnlyCollection<int> rules)
    {
        while (true)
        {
            if (!_entries.TryGetValue(identity, out var known))
            {
                if (_entries.Count >= Capacity)
                    return Outcome.Full;
                if (_entries.TryAdd(identity, new Entry(name, [.. rules.Distinct().Order()])))
                    return Outcome.Added;
                continue;
            }
            if (rules.All(r => Array.BinarySearch(known.Rules, r) >= 0))
                return Outcome.Known;
            var merged = new Entry(known.Name, [.. known.Rules.Union(rules).Order()]);
            if (_entries.TryUpdate(identity, merged, known))
                return Outcome.Added;
        }
    }

    /// <summary>The indices of the rules that matched <paramref name="identity"/> by name, or null.</summary>
    internal IReadOnlyCollection<int>? RulesOf(FileIdentity identity) =>
        _entries.TryGetValue(identity, out var entry) ? entry.Rules : null;

    /// <summary>The name by which the file was first matched (for the reason of a decision).</summary>
    internal string NameOf(FileIdentity identity) => _entries.TryGetValue(identity, out var entry) ? entry.Name : "?";
}
