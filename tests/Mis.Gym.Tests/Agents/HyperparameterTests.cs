using Mis.Gym.Agents;

namespace Mis.Gym.Tests.Agents;

/// <summary>Hyperparameters from the experiment file: bound onto the config records, or refused with a message that says why.</summary>
public sealed class HyperparameterTests
{
    private static ArgumentException Refused(string algorithm, string key, object value) =>
        Assert.ThrowsAny<ArgumentException>(() => AgentFactory.Create(algorithm, 10, 4, 1, new Dictionary<string, object> { [key] = value }).Dispose());

    [Theory]
    [InlineData("ppo", "clip_coef")]
    [InlineData("dqn", "target_network_frequency")]
    [InlineData("q", "octave_bins")]
    public void An_unknown_key_is_refused_with_the_known_ones(string algorithm, string aKnownKey)
    {
        var error = Refused(algorithm, "learning_rat", 0.1);
        Assert.Contains($"unknown {algorithm} hyperparameter \"learning_rat\"", error.Message);
        Assert.Contains("learning_rate", error.Message);
        Assert.Contains(aKnownKey, error.Message);
    }

    [Fact]
    public void A_value_of_the_wrong_type_names_the_key_what_was_given_and_what_is_expected()
    {
        var error = Refused("ppo", "learning_rate", "fast");
        Assert.Contains("ppo hyperparameter \"learning_rate\": expected a number in (0, 1], got \"fast\" (a string)", error.Message);
        error = Refused("dqn", "batch_size", 64.0);
        Assert.Contains("dqn hyperparameter \"batch_size\": expected an integer in [1, 1000000], got 64 (a number)", error.Message);
        error = Refused("ppo", "norm_adv", 1L);
        Assert.Contains("\"norm_adv\": expected true or false, got 1 (an integer)", error.Message);
    }

    [Theory]
    [InlineData("ppo", "gamma", 1.5, "expected a number in [0, 1], got 1.5")]
    [InlineData("ppo", "num_steps", 1L, "expected an integer in [2, 1000000], got 1")]
    [InlineData("dqn", "learning_rate", 0.0, "expected a number in (0, 1], got 0")]
    [InlineData("dqn", "train_frequency", 0L, "expected an integer ≥ 1, got 0")]
    [InlineData("q", "end_e", -0.1, "expected a number in [0, 1], got -0.1")]
    [InlineData("q", "learning_rate", double.NaN, "expected a number in (0, 1], got NaN")]
    public void A_value_out_of_range_says_the_range(string algorithm, string key, object value, string expected)
    {
        var error = Refused(algorithm, key, value);
        Assert.Contains($"\"{key}\": {expected}", error.Message);
    }

    [Fact]
    public void Integers_accept_longs_and_ints_and_numbers_accept_integers()
    {
        var resolved = AgentFactory.Resolve("ppo", new Dictionary<string, object> { ["num_steps"] = 64L, ["update_epochs"] = 3, ["gamma"] = 1L, ["clip_coef"] = 0.1f });
        var values = resolved.ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(64, values["num_steps"]);
        Assert.Equal(3, values["update_epochs"]);
        Assert.Equal(1.0, values["gamma"]);
        Assert.Equal(0.1, (double)values["clip_coef"], 1e-6);
        using var agent = (Ppo)AgentFactory.Create("ppo", 10, 4, 1, new Dictionary<string, object> { ["num_steps"] = 64L, ["gamma"] = 1L });
        Assert.Equal(new PpoConfig { NumSteps = 64, Gamma = 1.0 }, agent.Config);
    }

    [Theory]
    [InlineData("ppo", 16)]
    [InlineData("dqn", 17)]
    [InlineData("q", 8)]
    public void Resolve_lists_every_hyperparameter_with_its_default(string algorithm, int count)
    {
        var resolved = AgentFactory.Resolve(algorithm, new Dictionary<string, object>());
        Assert.Equal(count, resolved.Count);
        Assert.Equal(0.99, resolved.Single(kv => kv.Key == "gamma").Value);
        Assert.Empty(AgentFactory.Resolve("random", new Dictionary<string, object>()));
    }

    [Fact]
    public void Ppo_refuses_minibatches_too_small_to_normalise()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            AgentFactory.Create("ppo", 10, 4, 1, new Dictionary<string, object> { ["num_steps"] = 8L, ["num_minibatches"] = 5L }));
        Assert.Contains("num_steps (8) must be at least 2 × num_minibatches (5)", error.Message);
    }

    [Fact]
    public void A_config_made_in_code_is_checked_too()
    {
        var error = Assert.Throws<ArgumentException>(() => new Dqn(10, 4, 1, new DqnConfig { BatchSize = 0 }));
        Assert.Contains("\"batch_size\": expected an integer in [1, 1000000], got 0", error.Message);
    }

    [Fact]
    public void An_unknown_algorithm_is_refused_with_the_known_ones()
    {
        var error = Assert.Throws<ArgumentException>(() => AgentFactory.Create("a2c", 10, 4, 1, new Dictionary<string, object>()));
        Assert.Contains("ppo, dqn, q, random", error.Message);
    }
}
