namespace Mis.Bench.Suite;

/// <summary>How much of each measurement <c>mis bench --all</c> makes: the full run, or a quick one that only shows everything works.</summary>
internal sealed record BenchSizes
{
    internal int Operations { get; init; } = 10_000;
    internal int OverheadIterations { get; init; } = 500_000;
    internal int OverheadRounds { get; init; } = 5;
    internal int TransitionCycles { get; init; } = 50;
    internal int KillRepetitions { get; init; } = 5;
    internal int EventSyscalls { get; init; } = 1_000_000;
    internal int GrpcCalls { get; init; } = 2000;
    internal double GrpcSeconds { get; init; } = 2;
    internal int RealEnvSteps { get; init; } = 40;
    internal double SimSeconds { get; init; } = 2;
    internal double AnomalySeconds { get; init; } = 1;

    /// <summary>The full run (a few minutes).</summary>
    internal static BenchSizes Full { get; } = new();

    /// <summary>Small enough for a test: every figure is produced, none is precise.</summary>
    internal static BenchSizes Quick { get; } = new()
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
    };
}
