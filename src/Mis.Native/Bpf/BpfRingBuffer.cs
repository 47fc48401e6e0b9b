using System.Runtime.InteropServices;

namespace Mis.Native.Bpf;

/// <summary>Receives one ring-buffer record; the span is valid only during the call.</summary>
public delegate void BpfRecordHandler(ReadOnlySpan<byte> record);

/// <summary>
/// A consumer of a <c>BPF_MAP_TYPE_RINGBUF</c> map (libbpf <c>struct ring_buffer</c>). One thread
/// calls <see cref="Poll"/>; the handler runs on that thread, inside the poll. Dispose only after
/// that thread has stopped polling; disposal is safe to call twice.
/// </summary>
public sealed unsafe class BpfRingBuffer : IDisposable
{

    private readonly BpfRecordHandler _handler;
    private GCHandle _self;
    private nint _ring;

    /// <summary>Attaches a consumer to <paramref name="map"/> (a loaded ring buffer map).</summary>
    /// <exception cref="BpfLoadException">libbpf could not set the consumer up (mmap, epoll).</exception>
    public BpfRingBuffer(BpfMap map, BpfRecordHandler handler)
    {
        _handler = handler;
        _self = GCHandle.Alloc(this);
        _ring = Libbpf.RingBufferNew(map.Fd, &OnSample, GCHandle.ToIntPtr(_self), 0);
        if (_ring == 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            _self.Free();
            throw new BpfLoadException($"cannot consume ring buffer '{map.Name}'", errno, LibbpfLog.Tail());
        }
    }

    /// <summary>The first exception a handler threw (the record was then skipped), or null.</summary>
    public Exception? HandlerFault { get; private set; }

    /// <summary>
    /// Waits up to <paramref name="timeoutMs"/> for records and hands each to the handler.
    /// Returns how many were consumed (0 on timeout or when a signal interrupted the wait).
    /// </summary>
    public int Poll(int timeoutMs)
    {
        nint ring = _ring != 0 ? _ring : throw new ObjectDisposedException(nameof(BpfRingBuffer));
        int rc = Libbpf.RingBufferPoll(ring, timeoutMs);
        if (rc == -Errno.EINTR)
            return 0;
        if (rc < 0)
            throw new BpfLoadException("ring buffer poll failed", -rc, "");
        return rc;
    }

    /// <summary>
    /// Hands every record already in the buffer to the handler, without waiting; called on the
    /// polling thread. Returns how many were consumed.
    /// </summary>
    public int Consume()
    {
        nint ring = _ring != 0 ? _ring : throw new ObjectDisposedException(nameof(BpfRingBuffer));
        int rc = Libbpf.RingBufferConsume(ring);
        if (rc < 0)
            throw new BpfLoadException("ring buffer consume failed", -rc, "");
        return rc;
    }

    /// <summary>Frees the consumer.</summary>
    public void Dispose()
    {
        nint ring = Interlocked.Exchange(ref _ring, 0);
        if (ring == 0)
            return;
        Libbpf.RingBufferFree(ring);
        _self.Free();
    }

    [UnmanagedCallersOnly]
    private static int OnSample(nint ctx, nint data, nuint size)
    {
        // An exception must not cross into libbpf's C frames: keep it, skip the record.
        var self = (BpfRingBuffer)GCHandle.FromIntPtr(ctx).Target!;
        try
        {
            self._handler(new ReadOnlySpan<byte>((void*)data, checked((int)size)));
        }
        catch (Exception e)
        {
            self.HandlerFault ??= e;
        }
        return 0;
    }
}
