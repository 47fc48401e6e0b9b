using Mis.Gym.Envs;
using Mis.Gym.Scenarios;
using Mis.Testing;

namespace Mis.Gym.Tests;

/// <summary>
/// The simulator against the real kernel: the same action sequences (seeded random ones and a
/// scripted escalation) give the same DEFCON trajectory, the same results (denials, errors, the
/// kill) at the same steps, and the same terminations. Time-based decay is left out (scenarios
/// with it from the random sequences, decay itself from the scripted ones): the kernel decays on
/// real time, the simulator on its own clock.
/// </summary>
[Collection("gym-kernel")]
public sealed class KernelDifferentialTests
{
    [Theory]
    [InlineData("data-shortcut", 1)]
    [InlineData("data-shortcut", 2)]
    [InlineData("privileged-tool", 3)]
    [InlineData("privileged-tool", 4)]
    public void Seeded_random_sequences_match_the_simulator(string name, int seed)
    {
        HostRequirements.Root();
        var scenario = Support.Load(name);
        var random = new Random(seed);
        int submit = scenario.IndexOf("submit");
        var actions = Enumerable.Range(0, 40).Select(_ =>
        {
            int a;
            do
                a = random.Next(scenario.Actions.Count);
            while (a == submit);
            return a;
        }).ToArray();
        Compare(scenario, actions, seed);
    }

    [Theory]
    [InlineData("data-shortcut", "peek_answers", 15)]
    [InlineData("privileged-tool", "sudo_restart", 8)]
    [InlineData("exfil-bonus", "upload_dataset", 15)]
    public void A_scripted_escalation_is_killed_at_the_same_step(string name, string action, int killStep)
    {
        HostRequirements.Root();
        // Decay off: the kernel forgives on real time, so a step slowed by a loaded machine would
        // forgive a violation the simulator's clock does not (exfil-bonus has decay).
        var loaded = Support.Load(name);
        var scenario = loaded with { Defcon = loaded.Defcon with { DecayIntervalMs = 0 } };
        var (sim, kernel) = Compare(scenario, Enumerable.Repeat(scenario.IndexOf(action), killStep + 5).ToArray(), seed: 7);
        Assert.Equal(killStep, sim.FindIndex(s => s.Result == ActionResult.Killed) + 1);
        Assert.Equal(killStep, kernel.FindIndex(s => s.Result == ActionResult.Killed) + 1);
        Assert.Equal([5, 4, 3, 2, 1], kernel.Select(s => s.Defcon).Distinct().Order().Reverse());
    }

    private static (List<Step> Sim, List<Step> Kernel) Compare(ActionScenario scenario, int[] actions, int seed)
    {
        var sim = Run(new MisEnv(scenario, new SimBackend(scenario)), actions, seed);
        var kernel = Run(new MisEnv(scenario, new KernelBackend(scenario, measuredSlowdown: false)), actions, seed);
        Assert.Equal(sim.Count, kernel.Count);
        for (int i = 0; i < sim.Count; i++)
            Assert.True(sim[i] == kernel[i], $"step {i + 1} ({scenario.Actions[actions[i]].Name}): sim {sim[i]}, kernel {kernel[i]}");
        return (sim, kernel);
    }

    private static List<Step> Run(MisEnv env, int[] actions, int seed)
    {
        var steps = new List<Step>();
        using (env)
        {
            env.Reset(seed);
            foreach (int action in actions)
            {
                var step = env.Step(action);
                steps.Add(new Step((ActionResult)step.Info["result"], (int)step.Info["defcon"], (long)step.Info["violations"], step.Terminated));
                if (step.Terminated || step.Truncated)
                    break;
            }
        }
        return steps;
    }

    private readonly record struct Step(ActionResult Result, int Defcon, long Violations, bool Terminated);
}
