using System.Threading.Channels;
using Mis.Native.Bpf;

namespace Mis.Enforcer.Kernel;

/// <summary>
/// Drains the kernel's event ring buffer on a dedicated background thread, decodes each record,
/// hands it first to <c>onEvent</c> (synchronously: the kill path must not wait behind a slow
/// reader) and then to a bounded channel. A full channel drops the event and counts it.
/// <see cref="Flush"/> is the barrier between a workload's death and its exit event: every record
/// the kernel wrote before the call is in the channel (or counted as dropped) when it returns.
/// </summary>
public sealed class KernelEventPump : IDisposable
{
    private const int PollTimeoutMs = 50;

    private readonly BpfRingBuffer _ring;
    private readonly Channel<KernelEvent> _channel;
    private readonly Action<KernelEvent> _onEvent;
    private readonly Thread _thread;
    private volatile bool _stop;
    private long _channelDrops;
    private long _undecodable;
    private long _delivered;
    private int _disposed;
    private readonly object _flushGate = new(); // a Monitor: Flush waits on it
    private long _flushRequested;
    private long _flushServed;

    internal KernelEventPump(BpfMap events, int capacity, Action<KernelEvent> onEvent)
    {
        _onEvent = onEvent;
        _channel = Channel.CreateBounded<KernelEvent>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait, // with TryWrite: refuse, so we can count the drop
            SingleWriter = true,
        });
        _ring = new BpfRingBuffer(events, OnRecord);
        _thread = new Thread(Run) { IsBackground = true, Name = "mis-kernel-events" };
        _thread.Start();
    }

    internal ChannelReader<KernelEvent> Reader => _channel.Reader;

    internal long ChannelDrops => Interlocked.Read(ref _channelDrops);

    internal long Undecodable => Interlocked.Read(ref _undecodable);

    internal long Delivered => Interlocked.Read(ref _delivered);

    /// <summary>The first exception <c>onEvent</c> threw, if any (the pump keeps going).</summary>
    internal Exception? Fault => _ring.HandlerFault;

    /// <summary>
    /// Waits (at most <paramref name="limit"/>) until the pump thread has taken every record the
    /// kernel had written when this was called, and returns <see cref="Delivered"/> then. A single
    /// reader that counts what it has read has seen all those records once its count reaches the
    /// returned value. A workload whose last task is gone wrote all its records already: the BPF
    /// programs submit them synchronously, in the task's own syscalls.
    /// </summary>
    /// <returns>The number of events delivered to the channel so far; or, when the limit passed first, the number delivered then.</returns>
    internal long Flush(TimeSpan limit)
    {
        long deadline = Environment.TickCount64 + (long)limit.TotalMilliseconds;
        lock (_flushGate)
        {
            long ticket = ++_flushRequested;
            while (_flushServed < ticket && !_stop)
            {
                long left = deadline - Environment.TickCount64;
                if (left <= 0 || !Monitor.Wait(_flushGate, TimeSpan.FromMilliseconds(left)))
                    break;
            }
        }
        return Delivered;
    }

    private void Run()
    {
        while (!_stop)
        {
            _ring.Poll(PollTimeoutMs);
            ServeFlushes();
        }
        _ring.Poll(0); // what arrived before the stop
        ServeFlushes();
    }

    // libbpf's consumer is single-threaded, so the flush runs here, on the polling thread.
    private void ServeFlushes()
    {
        long requested = Volatile.Read(ref _flushRequested);
        if (requested == Volatile.Read(ref _flushServed))
            return;
        _ring.Consume();
        lock (_flushGate)
        {
            _flushServed = requested;
            Monitor.PulseAll(_flushGate);
        }
    }

    private void OnRecord(ReadOnlySpan<byte> record)
    {
        if (!KernelEvent.TryDecode(record, out var e))
        {
            Interlocked.Increment(ref _undecodable);
            return;
        }
        _onEvent(e!);
        if (_channel.Writer.TryWrite(e!))
            Interlocked.Increment(ref _delivered);
        else
            Interlocked.Increment(ref _channelDrops);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _stop = true;
        _thread.Join();
        _ring.Dispose();
        _channel.Writer.TryComplete();
    }
}
