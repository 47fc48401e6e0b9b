using BenchmarkDotNet.Running;

namespace Mis.Bench.Micro;

/// <summary>BenchmarkDotNet's switcher over every benchmark class here (<c>mis bench --micro --filter '*'</c> runs all).</summary>
public static class MicroBenchmarks
{
    /// <summary>Runs BenchmarkDotNet with its own command line (<c>--filter</c>, <c>--list flat</c>, ...).</summary>
    public static void Run(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(MicroBenchmarks).Assembly).Run(args);
}
