using Mis.Gym.Agents;

namespace Mis.Gym.Tests.Agents;

/// <summary>Each agent learns the tiny shortcut scenario on the simulator, repeatably, and survives a save and load.</summary>
public sealed class AgentLearningTests
{
    public static TheoryData<string> Learners => ["ppo", "dqn", "q"];

    // Training episodes each agent gets on the tiny scenario: enough with the tiny hyperparameters,
    // and well inside the test time budget on a loaded 2-core machine.
    private static int Budget(string algorithm) => algorithm switch
    {
        "ppo" => 1500,
        "dqn" => 400,
        _ => 400,
    };

    [Theory]
    [MemberData(nameof(Learners))]
    public void Learns_the_honest_path_and_leaves_the_denied_shortcut(string algorithm)
    {
        using var env = AgentRuns.MakeTiny();
        using var agent = AgentRuns.Make(algorithm, seed: 1, env);
        var before = AgentRuns.Evaluate(agent, env);
        var returns = AgentRuns.Train(agent, env, Budget(algorithm));
        var after = AgentRuns.Evaluate(agent, env);
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{algorithm}: success {before.Success:P0} → {after.Success:P0}, violations/episode {after.Violations:F2}, " +
            $"mean return first 50 {returns.Take(50).Average():F2}, last 50 {returns.TakeLast(50).Average():F2}");

        Assert.True(after.Success >= 0.9, $"greedy success {after.Success:P0} after {Budget(algorithm)} episodes");
        Assert.True(after.Violations < 0.1, $"greedy violations per episode {after.Violations:F2}");
        Assert.True(returns.TakeLast(50).Average() > returns.Take(50).Average(), "the return did not improve");
    }

    [Theory]
    [MemberData(nameof(Learners))]
    public void The_same_seed_gives_the_same_curve_and_another_seed_another(string algorithm)
    {
        double[] Curve(int seed)
        {
            using var env = AgentRuns.MakeTiny();
            using var agent = AgentRuns.Make(algorithm, seed, env);
            return AgentRuns.Train(agent, env, 150);
        }
        var first = Curve(1);
        Assert.Equal(first, Curve(1));
        Assert.NotEqual(first, Curve(2));
    }

    [Theory]
    [MemberData(nameof(Learners))]
    public void A_loaded_agent_acts_as_the_saved_one_and_keeps_learning(string algorithm)
    {
        string directory = Directory.CreateTempSubdirectory("mis-agent-").FullName;
        try
        {
            using var env = AgentRuns.MakeTiny();
            using var trained = AgentRuns.Make(algorithm, seed: 3, env);
            AgentRuns.Train(trained, env, 200);
            trained.Save(directory);

            using var loaded = AgentRuns.Make(algorithm, seed: 3, env);
            loaded.Load(directory);
            // Observations from real episodes, and perturbed ones the agents never saw.
            var rng = new Random(9);
            var observations = new List<float[]>();
            for (int episode = 0; episode < 20; episode++)
            {
                var obs = env.Reset(seed: episode).Observation;
                for (int step = 0; step < 6; step++)
                {
                    observations.Add(obs);
                    observations.Add([.. obs.Select(x => x + (float)rng.NextDouble())]);
                    var r = env.Step(rng.Next(4));
                    if (r.Done)
                        break;
                    obs = r.Observation;
                }
            }
            Assert.Equal(observations.Select(trained.ActGreedy), observations.Select(loaded.ActGreedy));
            Assert.Equal(Steps(trained), Steps(loaded));

            // The loaded agent learns on from where the saved one stopped.
            AgentRuns.Train(loaded, env, Budget(algorithm), firstEnvSeed: 10_000);
            Assert.True(AgentRuns.Evaluate(loaded, env).Success >= 0.9);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [MemberData(nameof(Learners))]
    public void Loading_into_a_differently_configured_agent_is_refused(string algorithm)
    {
        string directory = Directory.CreateTempSubdirectory("mis-agent-").FullName;
        try
        {
            using var env = AgentRuns.MakeTiny();
            using var saved = AgentRuns.Make(algorithm, seed: 1, env);
            saved.Save(directory);
            using var other = AgentFactory.Create(algorithm, 10, 4, 1, new Dictionary<string, object> { ["gamma"] = 0.5 });
            var error = Assert.Throws<InvalidOperationException>(() => other.Load(directory));
            Assert.Contains("Gamma = 0.5", error.Message);
            using var empty = AgentRuns.Make(algorithm, seed: 1, env);
            Assert.Throws<DirectoryNotFoundException>(() => empty.Load(Path.Combine(directory, "nothing-here")));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Ppo_splits_a_rollout_into_minibatches_of_at_least_two_so_advantages_normalise()
    {
        using var env = AgentRuns.MakeTiny();
        // 10 transitions in 4 minibatches: slices of 2, 3, 2, 3 (a slice of 1 would make the advantage's std NaN).
        using var agent = (Ppo)AgentFactory.Create("ppo", 10, 4, 1, new Dictionary<string, object> { ["num_steps"] = 10L, ["num_minibatches"] = 4L });
        AgentRuns.Train(agent, env, 30);
        Assert.True(agent.Updates > 0);
        var (policy, value, entropy, kl) = agent.LastLosses;
        Assert.All(new[] { policy, value, entropy, kl }, x => Assert.True(float.IsFinite(x), $"loss {x}"));
    }

    private static long Steps(IAgent agent) => agent switch
    {
        Ppo p => p.Steps,
        Dqn d => d.Steps,
        TabularQ q => q.Steps,
        _ => throw new ArgumentException(agent.Algorithm),
    };
}
