using BenchmarkDotNet.Attributes;
using Mis.Gym;
using Mis.Gym.Envs;
using Mis.Gym.Scenarios;

namespace Mis.Bench.Micro;

/// <summary>One simulator step (random actions, reset as episodes end), as an RL agent drives it.</summary>
[MemoryDiagnoser]
public class SimulatorBenchmarks
{
    private IEnv<float[], int> _env = null!;
    private Random _rng = null!;
    private int _actions;

    /// <summary>The data-shortcut scenario on the sim backend, with its TimeLimit.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var scenario = ScenarioFile.LoadActions(Path.Combine(Repository.Root, "experiments", "scenarios", "data-shortcut.toml"), "the simulator benchmark");
        _env = MisGym.Make(scenario);
        _actions = scenario.Actions.Count;
        _rng = new Random(0);
        _env.Reset(seed: 0);
    }

    /// <summary>Closes the env.</summary>
    [GlobalCleanup]
    public void Cleanup() => _env.Close();

    /// <summary>One step.</summary>
    [Benchmark]
    public double Step()
    {
        var result = _env.Step(_rng.Next(_actions));
        if (result.Done)
            _env.Reset();
        return result.Reward;
    }
}
