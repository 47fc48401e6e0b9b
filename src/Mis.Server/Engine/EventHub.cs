using System.Threading.Channels;
using Mis.Enforcer.Events;

namespace Mis.Server.Engine;

/// <summary>
/// Fans enforcement events out to WatchEvents streams (and to <c>[logging] events_path</c>).
/// Each subscriber has a bounded queue of its own: a slow reader loses its own events, counted
/// in <see cref="Lost"/>, and never holds up the kernel's event thread or another reader.
/// </summary>
public sealed class EventHub : IDisposable
{
    internal const int SubscriberCapacity = 8192;

    private readonly Lock _gate = new();
    private readonly EventLog? _file;
    private readonly Lock _fileGate = new();
    private bool _fileClosed;
    private Subscription[] _subscribers = [];
    private bool _completed;
    private long _lost;

    /// <summary>Also appends every event to <paramref name="eventsPath"/> when given.</summary>
    internal EventHub(string? eventsPath) => _file = eventsPath is null ? null : new EventLog(eventsPath);

    /// <summary>Events dropped because a subscriber's queue was full.</summary>
    internal long Lost => Interlocked.Read(ref _lost);

    /// <summary>
    /// Subscribes to the events of <paramref name="cgroupId"/> (0: all) of the given kinds (empty:
    /// all) that <paramref name="visible"/> lets through (null: every one; it runs on the
    /// publishing thread, so it must be quick).
    /// </summary>
    internal Subscription Subscribe(ulong cgroupId, IReadOnlyCollection<string> kinds, Func<EnforcementEvent, bool>? visible = null)
    {
        var subscription = new Subscription(this, cgroupId, kinds.Count == 0 ? null : kinds.ToHashSet(StringComparer.Ordinal), visible);
        lock (_gate)
        {
            if (_completed)
                subscription.Channel.Writer.TryComplete();
            else
                _subscribers = [.. _subscribers, subscription];
        }
        return subscription;
    }

    internal void Publish(EnforcementEvent e)
    {
        if (_file is not null)
            lock (_fileGate)
                if (!_fileClosed)
                    _file.Write(e);
        foreach (var s in Volatile.Read(ref _subscribers))
            if (s.Wants(e) && !s.Channel.Writer.TryWrite(e))
                Interlocked.Increment(ref _lost);
    }

    /// <summary>Ends every stream (shutdown); later subscriptions end at once.</summary>
    internal void Complete()
    {
        lock (_gate)
        {
            _completed = true;
            foreach (var s in _subscribers)
                s.Channel.Writer.TryComplete();
            _subscribers = [];
        }
    }

    /// <summary>Closes the events file; events published later (a straggling teardown) are not written.</summary>
    public void Dispose()
    {
        lock (_fileGate)
        {
            _fileClosed = true;
            _file?.Dispose();
        }
    }

    private void Remove(Subscription subscription)
    {
        lock (_gate)
            _subscribers = _subscribers.Where(s => s != subscription).ToArray();
    }

    /// <summary>One reader's filtered queue; dispose to unsubscribe.</summary>
    public sealed class Subscription(EventHub hub, ulong cgroupId, HashSet<string>? kinds, Func<EnforcementEvent, bool>? visible) : IDisposable
    {
        internal Channel<EnforcementEvent> Channel { get; } = System.Threading.Channels.Channel.CreateBounded<EnforcementEvent>(
            new BoundedChannelOptions(SubscriberCapacity) { FullMode = BoundedChannelFullMode.Wait, SingleReader = true });

        internal ChannelReader<EnforcementEvent> Reader => Channel.Reader;

        internal bool Wants(EnforcementEvent e) =>
            (cgroupId == 0 || e.CgroupId == cgroupId) && (kinds is null || kinds.Contains(e.Event)) && (visible is null || visible(e));

        /// <inheritdoc />
        public void Dispose()
        {
            hub.Remove(this);
            Channel.Writer.TryComplete();
        }
    }
}
