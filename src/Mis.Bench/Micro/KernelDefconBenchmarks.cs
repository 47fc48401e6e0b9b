using BenchmarkDotNet.Attributes;
using Mis.Enforcer.Session;

namespace Mis.Bench.Micro;

/// <summary>
/// The DEFCON read the seccomp supervisor makes before every file and exec decision, against a
/// real managed cgroup (root and BPF needed): the load from the memory-mapped
/// <c>mis_defcon_view</c> that <see cref="Mis.Enforcer.Kernel.KernelEnforcer.Defcon"/> makes
/// now, and the <c>mis_report</c> query through BPF_PROG_TEST_RUN it made before (the baseline,
/// still its answer when decay is due).
/// </summary>
public class KernelDefconBenchmarks
{
    private EnforcementSession? _session;
    private ManagedCgroupLease? _cgroup;

    /// <summary>A session and one managed cgroup at DEFCON 5.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _session = EnforcementSession.Open(new SessionOptions());
        _cgroup = _session.Manage("bench-defcon-read");
    }

    /// <summary>Ends the session.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _cgroup?.Dispose();
        _session?.Dispose();
    }

    /// <summary>The kernel query: one BPF_PROG_TEST_RUN of mis_report.</summary>
    [Benchmark(Baseline = true)]
    public int Query() => _session!.Kernel.State(_cgroup!.Id)!.Defcon;

    /// <summary>What the supervisor reads: the published word, one load.</summary>
    [Benchmark]
    public int View() => _session!.Kernel.Defcon(_cgroup!.Id);
}
