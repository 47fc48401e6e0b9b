using System.Diagnostics;
using Mis.Anomaly;
using Mis.Anomaly.Models;
using Mis.Bench.Anomaly;
using Mis.Bench.Gym;
using Mis.Bench.Kernel;
using Mis.Gym.Envs;
using Mis.Gym.Scenarios;

namespace Mis.Bench.Suite;

/// <summary>Steps of a real (kernel-backend) environment.</summary>
/// <param name="Scenario">The scenario stepped.</param>
/// <param name="Step">Latency of one step (a real action of a real process under the enforcer).</param>
public sealed record RealEnvFigures(string Scenario, LatencySummary Step);

/// <summary>Simulator throughput (GymBench).</summary>
/// <param name="Scenario">The scenario stepped.</param>
/// <param name="StepsPerSecond">Steps per wall second.</param>
/// <param name="StepsPerCpuSecond">Steps per CPU second of the process: the per-core rate.</param>
public sealed record SimFigures(string Scenario, double StepsPerSecond, double StepsPerCpuSecond);

/// <summary>Anomaly scoring throughput (the n-gram model on the committed corpus).</summary>
/// <param name="Algo">The model.</param>
/// <param name="TraceSyscallsPerSecond">Offline scoring of whole traces.</param>
/// <param name="OnlineSyscallsPerSecond">Online scoring, one window per stride.</param>
public sealed record AnomalyFigures(string Algo, double TraceSyscallsPerSecond, double OnlineSyscallsPerSecond);

/// <summary>
/// End-to-end figures of the parts above the kernel: the gRPC control plane (a real
/// <c>mis enforcer</c> host in this process, called over loopback TCP and its Unix socket), a real environment's step,
/// the simulator (reusing <see cref="GymBench"/>) and anomaly scoring (reusing <c>mis anomaly
/// bench</c>'s measurement). The gRPC part is in ServiceBench.Grpc.cs.
/// </summary>
public static partial class ServiceBench
{
    /// <summary>Steps the kernel backend of <paramref name="scenarioFile"/> with seeded random actions.</summary>
    public static RealEnvFigures RealEnv(string scenarioFile, int steps = 40)
    {
        var scenario = ScenarioFile.LoadActions(scenarioFile, "the real env benchmark");
        using var env = MisGym.Make(scenario, MisGym.Kernel);
        var rng = new Random(0);
        env.Reset(seed: 0);
        var samples = new double[steps];
        for (int i = 0; i < steps; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            bool done = env.Step(rng.Next(scenario.Actions.Count)).Done;
            samples[i] = Stopwatch.GetElapsedTime(t0).Ticks * 100.0;
            if (done)
                env.Reset();
        }
        return new RealEnvFigures(scenario.Name, LatencySummary.Of(samples));
    }

    /// <summary>The simulator's single-env throughput (GymBench.Single).</summary>
    public static SimFigures Sim(string scenarioFile, double seconds = 2)
    {
        var scenario = ScenarioFile.LoadActions(scenarioFile, "the simulator benchmark");
        var r = GymBench.Single(scenario, TimeSpan.FromSeconds(seconds));
        return new SimFigures(scenario.Name, r.StepsPerSecond, r.StepsPerCpuSecond);
    }

    /// <summary>The n-gram model's scoring throughput on <paramref name="corpus"/> (as <c>mis anomaly bench</c>).</summary>
    public static AnomalyFigures Anomaly(string corpus, double seconds = 1)
    {
        var row = ScoringBench.Run(corpus, [Algorithms.Ngram], new TrainOptions(), TimeSpan.FromSeconds(seconds)).Single();
        return new AnomalyFigures(Algorithms.Ngram, row.TraceSyscallsPerSecond, row.OnlineSyscallsPerSecond);
    }
}
