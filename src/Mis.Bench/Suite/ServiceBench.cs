using System.Diagnostics;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging.Abstractions;
using Mis.Anomaly;
using Mis.Anomaly.Models;
using Mis.Bench.Anomaly;
using Mis.Bench.Gym;
using Mis.Bench.Kernel;
using Mis.Enforcer.Configuration;
using Mis.Gym.Envs;
using Mis.Gym.Scenarios;
using Mis.Policy.V1;
using Mis.Server.Engine;
using Mis.Server.Hosting;

namespace Mis.Bench.Suite;

/// <summary>gRPC GetStats on loopback: sequential latency and concurrent throughput.</summary>
/// <param name="Latency">One caller, one call at a time.</param>
/// <param name="CallsPerSecond">Calls completed per second by <paramref name="Callers"/> concurrent callers.</param>
/// <param name="Callers">Concurrent callers of the throughput run.</param>
public sealed record GrpcFigures(LatencySummary Latency, double CallsPerSecond, int Callers);

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
/// <c>mis enforcer</c> host in this process, called over loopback TCP), a real environment's step,
/// the simulator (reusing <see cref="GymBench"/>) and anomaly scoring (reusing <c>mis anomaly
/// bench</c>'s measurement).
/// </summary>
public static class ServiceBench
{
    /// <summary>GetStats latency over <paramref name="calls"/> sequential calls, then throughput for <paramref name="seconds"/>.</summary>
    public static async Task<GrpcFigures> GrpcAsync(int calls = 2000, double seconds = 2, int callers = 4)
    {
        string dir = Directory.CreateTempSubdirectory("mis-bench-grpc-").FullName;
        try
        {
            var config = MisConfig.Default with
            {
                Grpc = new GrpcConfig { Enabled = true, BindAddress = "127.0.0.1", Port = 0 },
                Paths = MisConfig.Default.Paths with { StateDir = Path.Combine(dir, "state") },
                Logging = MisConfig.Default.Logging with { AuditLogPath = Path.Combine(dir, "audit.jsonl") },
            };
            await using var host = await EnforcerHost.StartAsync(new EngineOptions { Config = config }, NullLoggerFactory.Instance);
            using var channel = GrpcChannel.ForAddress(host.GrpcTcpAddress ?? throw new InvalidOperationException("the enforcer host has no TCP address"));
            var client = new PolicyService.PolicyServiceClient(channel);
            var request = new GetStatsRequest();
            for (int i = 0; i < 200; i++) // warm-up: connection, JIT
                await client.GetStatsAsync(request);
            var samples = new double[calls];
            for (int i = 0; i < calls; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                await client.GetStatsAsync(request);
                samples[i] = Stopwatch.GetElapsedTime(t0).Ticks * 100.0;
            }
            long done = 0;
            var clock = Stopwatch.StartNew();
            var until = TimeSpan.FromSeconds(seconds);
            await Task.WhenAll(Enumerable.Range(0, callers).Select(_ => Task.Run(async () =>
            {
                while (clock.Elapsed < until)
                {
                    await client.GetStatsAsync(request);
                    Interlocked.Increment(ref done);
                }
            })));
            return new GrpcFigures(LatencySummary.Of(samples), done / clock.Elapsed.TotalSeconds, callers);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

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
