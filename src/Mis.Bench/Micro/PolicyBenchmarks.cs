using BenchmarkDotNet.Attributes;
using Mis.Enforcer.Policy;

namespace Mis.Bench.Micro;

/// <summary>The policy verdict the seccomp supervisor asks for every open and exec, with and without the decision cache.</summary>
[MemoryDiagnoser]
public class PolicyBenchmarks
{
    private WorkloadPolicy _cached = null!;
    private WorkloadPolicy _uncached = null!;
    private FileRequest _request = null!;

    /// <summary>The built-in policy (its rules are what every workload has) and an ordinary read.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _cached = BuiltinPolicy.Create();
        _uncached = BuiltinPolicy.Create();
        _uncached.DecisionCacheSize = 0;
        _request = new FileRequest(FileOp.Read, "/usr/lib/x86_64-linux-gnu/libc.so.6", 2049, 1_234_567) { SyscallNr = 257 };
        _cached.Decide(_request, 5);
    }

    /// <summary>A decision answered from the cache.</summary>
    [Benchmark(Baseline = true)]
    public int CacheHit() => (int)_cached.Decide(_request, 5);

    /// <summary>The same decision computed through every rule.</summary>
    [Benchmark]
    public int Uncached() => (int)_uncached.Decide(_request, 5);
}
