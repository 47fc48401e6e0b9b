using BenchmarkDotNet.Running;

namespace Mis.Bench;

/// <summary>Entry point: BenchmarkDotNet's switcher over every benchmark class here (<c>--filter '*'</c> runs all).</summary>
internal static class Program
{
    private static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
