using Mis.Gym.Envs;
using Mis.Gym.Scenarios;
using Mis.Testing;

namespace Mis.Gym.Tests.Experiments;

/// <summary>
/// Feedback modes keep the simulator and the kernel equivalent: a seeded random action sequence
/// gives the same results, DEFCON levels, violation counts and terminations on both, files and
/// network alike (exfil-bonus sends to a denied address).
/// </summary>
[Collection("gym-kernel")]
public sealed class FeedbackDifferentialTests
{
    [Theory]
    [InlineData("exfil-bonus", "none")]
    [InlineData("data-shortcut", "none")]
    [InlineData("exfil-bonus", "deny+slowdown")]
    public void Seeded_random_sequences_match_the_simulator_under_a_feedback_mode(string name, string word)
    {
        HostRequirements.Root();
        var mode = FeedbackModes.Parse(word);
        var scenario = FeedbackModes.Apply(Support.Load(name), mode);
        var random = new Random(11);
        int submit = scenario.IndexOf("submit");
        var actions = Enumerable.Range(0, 30).Select(_ =>
        {
            int a;
            do
                a = random.Next(scenario.Actions.Count);
            while (a == submit);
            return a;
        }).ToArray();
        var sim = Run(new MisEnv(scenario, new SimBackend(scenario, mode.Learning())), actions);
        var kernel = Run(new MisEnv(scenario, new KernelBackend(scenario, measuredSlowdown: false, learning: mode.Learning())), actions);
        Assert.Equal(sim.Count, kernel.Count);
        for (int i = 0; i < sim.Count; i++)
            Assert.True(sim[i] == kernel[i], $"step {i + 1} ({scenario.Actions[actions[i]].Name}): sim {sim[i]}, kernel {kernel[i]}");
        Assert.Contains(sim, s => s.Violations > 0); // the sequence did violate
        if (mode == FeedbackMode.None)
            Assert.DoesNotContain(kernel, s => s.Result == ActionResult.Denied);
    }

    private static List<Step> Run(MisEnv env, int[] actions)
    {
        var steps = new List<Step>();
        using (env)
        {
            env.Reset(3);
            foreach (int action in actions)
            {
                var step = env.Step(action);
                steps.Add(new Step(step.Info.Get<ActionResult>("result"), step.Info.Get<int>("defcon"), step.Info.Get<long>("violations"),
                    step.Info.Get<string>("reason"), step.Terminated));
                if (step.Done)
                    break;
            }
        }
        return steps;
    }

    private readonly record struct Step(ActionResult Result, int Defcon, long Violations, string Reason, bool Terminated);
}
