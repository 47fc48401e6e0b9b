using Mis.Enforcer.Policy;

namespace Mis.Server.Engine;

/// <summary>
/// The rules added over gRPC (AddRule): files by (device, inode), newest first, each with an
/// optional expiry on <see cref="TimeProvider"/>'s clock. They sit ahead of every policy file and
/// survive ReloadPolicy. An expired rule stops matching at its expiry instant whatever the timer
/// does (<see cref="Active"/> filters by the clock); the timer only prunes it and raises
/// <see cref="Changed"/>, so the kernel's exec backstop forgets it too.
/// </summary>
public sealed class RuntimeRules : IDisposable
{
    private readonly TimeProvider _clock;
    private readonly Lock _gate = new();
    private readonly ITimer _timer;
    private List<InodeRule> _rules = [];

    internal RuntimeRules(TimeProvider clock)
    {
        _clock = clock;
        _timer = clock.CreateTimer(_ => Prune(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Raised after the set changed: a rule added, removed or expired.</summary>
    internal event Action? Changed;

    /// <summary>Rules in force now, newest first.</summary>
    internal IReadOnlyList<InodeRule> Active
    {
        get
        {
            var now = _clock.GetUtcNow();
            lock (_gate)
                return _rules.Where(r => r.Expires is not { } at || at > now).ToList();
        }
    }

    /// <summary>How many rules <see cref="Active"/> holds now, without copying them (GetStats asks on every call).</summary>
    internal int ActiveCount
    {
        get
        {
            var now = _clock.GetUtcNow();
            int count = 0;
            lock (_gate)
                foreach (var r in _rules)
                    if (r.Expires is not { } at || at > now)
                        count++;
            return count;
        }
    }

    /// <summary>Adds a rule ahead of the others; <paramref name="ttl"/> zero means no expiry.</summary>
    internal InodeRule Add(ulong device, ulong inode, int syscallNr, Verdict action, TimeSpan ttl)
    {
        DateTimeOffset? expires = ttl > TimeSpan.Zero ? _clock.GetUtcNow() + ttl : null;
        var rule = new InodeRule(device, inode, syscallNr, action, expires,
            $"AddRule: inode {inode} dev {device}{(expires is { } at ? $" until {at:O}" : "")}");
        lock (_gate)
        {
            _rules = [rule, .. _rules];
            Rearm();
        }
        Changed?.Invoke();
        return rule;
    }

    /// <summary>Removes every rule on (device, inode); returns how many were in force.</summary>
    internal int Remove(ulong device, ulong inode)
    {
        var now = _clock.GetUtcNow();
        int removed;
        lock (_gate)
        {
            removed = _rules.Count(r => r.Device == device && r.Inode == inode && (r.Expires is not { } at || at > now));
            _rules = _rules.Where(r => r.Device != device || r.Inode != inode).ToList();
            Rearm();
        }
        if (removed > 0)
            Changed?.Invoke();
        return removed;
    }

    /// <summary>The first rule in force that matches the access, or null.</summary>
    internal InodeRule? Match(FileRequest access) => access.Inode == 0 ? null : Active.FirstOrDefault(r => r.AppliesTo(access));

    /// <inheritdoc />
    public void Dispose() => _timer.Dispose();

    private void Prune()
    {
        var now = _clock.GetUtcNow();
        bool pruned;
        lock (_gate)
        {
            int before = _rules.Count;
            _rules = _rules.Where(r => r.Expires is not { } at || at > now).ToList();
            pruned = _rules.Count != before;
            Rearm();
        }
        if (pruned)
            Changed?.Invoke();
    }

    // Called under the lock: one timer, set for the earliest expiry still pending.
    private void Rearm()
    {
        var next = _rules.Where(r => r.Expires is not null).Select(r => r.Expires!.Value).DefaultIfEmpty(DateTimeOffset.MaxValue).Min();
        var due = next == DateTimeOffset.MaxValue ? Timeout.InfiniteTimeSpan : next - _clock.GetUtcNow();
        // Timers cannot be set beyond ~49 days; a long TTL is reached by re-arming daily.
        if (due != Timeout.InfiniteTimeSpan)
            due = due < TimeSpan.Zero ? TimeSpan.Zero : due > TimeSpan.FromDays(1) ? TimeSpan.FromDays(1) : due;
        _timer.Change(due, Timeout.InfiniteTimeSpan);
    }
}
