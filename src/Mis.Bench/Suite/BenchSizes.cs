namespace Mis.Bench.Suite;

/// <summary>How much of each measurement <c>mis bench --all</c> makes: the full run, or a quick one that only shows everything works.</summary>
public sealed record BenchSizes
{
    /// <summary>Operations the load generator makes per run (--ops).</summary>
    public int Operations { get; init; } = 10_000;
    /// <summary>getppid calls per configuration per round of the kernel overhead bench.</summary>
    public int OverheadIterations { get; init; } = 500_000;
    /// <summary>Interleaved rounds of the kernel overhead bench (the figure is their median).</summary>
    public int OverheadRounds { get; init; } = 5;
    /// <summary>DEFCON escalate/decay cycles timed.</summary>
    public int TransitionCycles { get; init; } = 50;
    /// <summary>Times a DEFCON 1 kill is timed.</summary>
    public int KillRepetitions { get; init; } = 5;
    /// <summary>Syscalls streamed through the ring buffer in learning mode.</summary>
    public int EventSyscalls { get; init; } = 1_000_000;
    /// <summary>Control-plane calls timed per RPC.</summary>
    public int GrpcCalls { get; init; } = 2000;
    /// <summary>Seconds of control-plane load.</summary>
    public double GrpcSeconds { get; init; } = 2;
    /// <summary>Kernel-backend environment steps timed.</summary>
    public int RealEnvSteps { get; init; } = 40;
    /// <summary>Seconds of simulator stepping.</summary>
    public double SimSeconds { get; init; } = 2;
    /// <summary>Seconds of anomaly scoring per model.</summary>
    public double AnomalySeconds { get; init; } = 1;

    /// <summary>Sizes of the workloads of <c>--workloads</c>.</summary>
    public Workloads.WorkloadSizes Workloads { get; init; } = Mis.Bench.Workloads.WorkloadSizes.Full;
    /// <summary>Counted rounds of the workloads (each runs bare, floor, floor addfd and MIS once).</summary>
    public int WorkloadRounds { get; init; } = 5;

    /// <summary>The full run (a few minutes).</summary>
    public static BenchSizes Full { get; } = new();

    /// <summary>Small enough for a test: every figure is produced, none is precise.</summary>
    public static BenchSizes Quick { get; } = new()
    {
        Operations = 300,
        OverheadIterations = 20_000,
        OverheadRounds = 1,
        TransitionCycles = 3,
        KillRepetitions = 1,
        EventSyscalls = 50_000,
        GrpcCalls = 200,
        GrpcSeconds = 0.3,
        RealEnvSteps = 5,
        SimSeconds = 0.3,
        AnomalySeconds = 0.2,
        Workloads = Mis.Bench.Workloads.WorkloadSizes.Quick,
        WorkloadRounds = 1,
    };
}
