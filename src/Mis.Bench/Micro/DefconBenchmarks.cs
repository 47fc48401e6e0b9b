using BenchmarkDotNet.Attributes;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Defcon;

namespace Mis.Bench.Micro;

/// <summary>The C# twin of the kernel's DEFCON state machine (the simulator runs it on every step).</summary>
[MemoryDiagnoser]
public class DefconBenchmarks
{
    private DefconStateMachine _machine = null!;
    private DefconStateMachine _normal = null!;

    /// <summary>A fresh machine on the default ladder, without kill so it can climb forever.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var ladder = new DefconConfig { KillAtLevel1 = false };
        _machine = new DefconStateMachine(ladder, clockNs: () => 0);
        _normal = new DefconStateMachine(ladder, clockNs: () => 0);
    }

    /// <summary>One violation recorded (a transition every few calls, then level 1 for good).</summary>
    [Benchmark]
    public int RecordViolation() => _machine.RecordViolation().DefconAfter;

    /// <summary>One syscall of a cgroup at DEFCON 5: the per-syscall path of the simulator.</summary>
    [Benchmark]
    public ulong SyscallAtDefcon5() => _normal.Syscall().SlowdownNs;
}
