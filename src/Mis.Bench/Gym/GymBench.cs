using System.Diagnostics;
using Mis.Gym;
using Mis.Gym.Envs;
using Mis.Gym.Scenarios;
using Mis.Gym.Vector;

namespace Mis.Bench.Gym;

/// <summary>One throughput measurement.</summary>
/// <param name="What">What was stepped.</param>
/// <param name="Steps">Environment steps taken (a vector step of N envs counts N).</param>
/// <param name="Elapsed">Wall time they took.</param>
/// <param name="Cpu">CPU time the process used meanwhile (all its threads, the GC's included).</param>
public sealed record BenchResult(string What, long Steps, TimeSpan Elapsed, TimeSpan Cpu)
{
    /// <summary>Steps per second of wall time.</summary>
    public double StepsPerSecond => Steps / Elapsed.TotalSeconds;

    /// <summary>Steps per second of CPU time: the per-core rate, unaffected by other processes competing for the cores.</summary>
    public double StepsPerCpuSecond => Steps / Cpu.TotalSeconds;
}

/// <summary>
/// A plain stopwatch measurement of simulator throughput (until BenchmarkDotNet arrives): random
/// actions, episodes reset as they end, a short warm-up so the JIT's tiering is done first. The
/// synchronous measurements run on the calling thread, i.e. one core.
/// </summary>
public static class GymBench
{
    private const int Chunk = 4096;

    /// <summary>One env as <see cref="MisGym.Make(string, string, bool)"/> makes it (TimeLimit included), reset on every end.</summary>
    public static BenchResult Single(ActionScenario scenario, TimeSpan duration)
    {
        using var env = MisGym.Make(scenario);
        var rng = new Random(0);
        int n = scenario.Actions.Count;
        env.Reset(seed: 0);
        return Measure("single env (TimeLimit, Info, fresh obs per step)", duration, steps =>
        {
            for (int i = 0; i < steps; i++)
            {
                if (env.Step(rng.Next(n)).Done)
                    env.Reset();
            }
            return steps;
        });
    }

    /// <summary>A vector env of <paramref name="numEnvs"/> sub-envs, synchronous (one thread) or asynchronous (a thread each).</summary>
    public static BenchResult Vector(ActionScenario scenario, int numEnvs, bool async, TimeSpan duration)
    {
        var factories = Enumerable.Range(0, numEnvs).Select(_ => (Func<IEnv<float[], int>>)(() => MisGym.Make(scenario))).ToArray();
        using VectorEnv<float[], int> vec = async ? new AsyncVectorEnv<float[], int>(factories) : new SyncVectorEnv<float[], int>(factories);
        var rng = new Random(0);
        int n = scenario.Actions.Count;
        var actions = new int[numEnvs];
        vec.Reset(seed: 0);
        string what = async ? $"async vector env, {numEnvs} envs ({numEnvs} threads)" : $"sync vector env, {numEnvs} envs (1 thread)";
        return Measure(what, duration, steps =>
        {
            int batches = Math.Max(1, steps / numEnvs);
            for (int b = 0; b < batches; b++)
            {
                for (int i = 0; i < actions.Length; i++)
                    actions[i] = rng.Next(n);
                vec.Step(actions);
            }
            return (long)batches * numEnvs;
        });
    }

    /// <summary>The simulator backend alone (no Gymnasium layer): the ceiling the env layer is measured against.</summary>
    public static BenchResult Backend(ActionScenario scenario, TimeSpan duration)
    {
        using var backend = new SimBackend(scenario);
        var rng = new Random(0);
        int n = scenario.Actions.Count;
        backend.BeginEpisode();
        return Measure("sim backend alone (no env layer)", duration, steps =>
        {
            for (int i = 0; i < steps; i++)
            {
                if (backend.Perform(rng.Next(n), failsByItself: false).Result == ActionResult.Killed)
                    backend.BeginEpisode();
            }
            return steps;
        });
    }

    private static BenchResult Measure(string what, TimeSpan duration, Func<int, long> run)
    {
        var warmup = Stopwatch.StartNew();
        while (warmup.Elapsed < TimeSpan.FromMilliseconds(300))
            run(Chunk);
        long steps = 0;
        using var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < duration)
            steps += run(Chunk);
        var elapsed = clock.Elapsed;
        process.Refresh();
        return new BenchResult(what, steps, elapsed, process.TotalProcessorTime - cpuBefore);
    }
}
