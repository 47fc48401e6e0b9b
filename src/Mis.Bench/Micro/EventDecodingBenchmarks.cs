using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Mis.Enforcer.Kernel;

namespace Mis.Bench.Micro;

/// <summary>Decoding ring-buffer records into events (the event pump does this for every record).</summary>
[MemoryDiagnoser]
public class EventDecodingBenchmarks
{
    private byte[] _violation = [];
    private byte[] _syscall = [];

    /// <summary>Two records as the kernel writes them: a violation with a target path, and a header-only syscall event.</summary>
    [GlobalSetup]
    public unsafe void Setup()
    {
        var e = new MisEvent { TimestampNs = 123_456_789, CgroupId = 4242, Violations = 7, Type = (uint)KernelEventType.Violation, Pid = 100, Tid = 101, Op = 1, Decision = 1, Defcon = 3, PrevDefcon = 4 };
        "python3"u8.CopyTo(new Span<byte>(e.Comm, 16));
        "/etc/shadow"u8.CopyTo(new Span<byte>(e.Target, 256));
        _violation = MemoryMarshal.AsBytes(new ReadOnlySpan<MisEvent>(in e)).ToArray();
        e.Type = (uint)KernelEventType.Syscall;
        e.Value = 39;
        _syscall = _violation[..MisEvent.HeaderSize];
        MemoryMarshal.AsBytes(new ReadOnlySpan<MisEvent>(in e))[..MisEvent.HeaderSize].CopyTo(_syscall);
    }

    /// <summary>A full record (violation, 256-byte target).</summary>
    [Benchmark]
    public int Violation() => KernelEvent.TryDecode(_violation, out var e) ? e!.Defcon : -1;

    /// <summary>A header-only record (learning mode's syscall stream, the most frequent one).</summary>
    [Benchmark]
    public int Syscall() => KernelEvent.TryDecode(_syscall, out var e) ? e!.Defcon : -1;
}
