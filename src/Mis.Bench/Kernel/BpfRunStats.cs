using Microsoft.Win32.SafeHandles;
using Mis.Native;
using Mis.Native.Bpf;

namespace Mis.Bench.Kernel;

/// <summary>A program's cumulative run statistics, as the kernel keeps them while BPF statistics are enabled.</summary>
/// <param name="RunTimeNs">Total nanoseconds spent in the program.</param>
/// <param name="RunCount">Times the program ran.</param>
public readonly record struct BpfRunCounters(ulong RunTimeNs, ulong RunCount)
{
    /// <summary>What happened between <paramref name="before"/> and this reading.</summary>
    internal BpfRunCounters Since(BpfRunCounters before) => new(RunTimeNs - before.RunTimeNs, RunCount - before.RunCount);

    /// <summary>Mean nanoseconds per run, or null when the program did not run.</summary>
    internal double? MeanNs => RunCount == 0 ? null : (double)RunTimeNs / RunCount;
}

/// <summary>
/// Turns the kernel's per-program run-time statistics on for as long as this object lives
/// (<c>BPF_ENABLE_STATS</c> with <c>BPF_STATS_RUN_TIME</c>: the kernel counts while any such fd is
/// open) and reads them back (<c>run_time_ns</c>, <c>run_cnt</c> of <c>struct bpf_prog_info</c>).
/// Counting costs two clock reads per program run, so overhead ratios are measured with it off.
/// </summary>
public sealed unsafe class BpfRunStats : IDisposable
{
    private const int StatsRunTime = 0; // enum bpf_stats_type: BPF_STATS_RUN_TIME
    // Offsets in struct bpf_prog_info (include/uapi/linux/bpf.h; stable ABI, appended to only).
    private const int RunTimeOffset = 192;
    private const int RunCountOffset = 200;
    private const int InfoPrefix = 208;

    private readonly SafeFileHandle _fd;

    private BpfRunStats(SafeFileHandle fd) => _fd = fd;

    /// <summary>Turns statistics on; throws with the kernel's reason when it refuses (needs CAP_SYS_ADMIN).</summary>
    internal static BpfRunStats Enable()
    {
        int fd = Libbpf.EnableStats(StatsRunTime);
        if (fd < 0)
            throw new IOException($"BPF_ENABLE_STATS: {Errno.Describe(-fd)}");
        return new BpfRunStats(new SafeFileHandle(fd, ownsHandle: true));
    }

    /// <summary>Reads the counters of the program behind <paramref name="programFd"/> (zero while statistics were never on).</summary>
    internal static BpfRunCounters Read(int programFd)
    {
        byte* info = stackalloc byte[InfoPrefix];
        new Span<byte>(info, InfoPrefix).Clear();
        uint length = InfoPrefix;
        int rc = Libbpf.ObjGetInfoByFd(programFd, info, &length);
        if (rc != 0)
            throw new IOException($"bpf_obj_get_info_by_fd({programFd}): {Errno.Describe(-rc)}");
        if (length < InfoPrefix)
            return default; // a kernel older than 5.1 has no statistics
        return new BpfRunCounters(*(ulong*)(info + RunTimeOffset), *(ulong*)(info + RunCountOffset));
    }

    /// <summary>Turns statistics off again (unless someone else holds them on).</summary>
    public void Dispose() => _fd.Dispose();
}
