using System.Threading.Channels;
using Mis.Native.Bpf;

namespace Mis.Enforcer.Kernel;

/// <summary>
/// Drains the kernel's event ring buffer on a dedicated background thread, decodes each record,
/// hands it first to <c>onEvent</c> (synchronously: the kill path must not wait behind a slow
/// reader) and then to a bounded channel. A full channel drops the event and counts it.
/// </summary>
internal sealed class KernelEventPump : IDisposable
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

    private void Run()
    {
        while (!_stop)
            _ring.Poll(PollTimeoutMs);
        _ring.Poll(0); // what arrived before the stop
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
