using System.Globalization;

namespace Mis.Gym.Agents;

/// <summary>Makes agents by algorithm name, with hyperparameters given as the experiment file's key/value pairs.</summary>
public static class AgentFactory
{
    /// <summary>Algorithm names <see cref="Create"/> knows.</summary>
    public static IReadOnlyList<string> Algorithms { get; } = ["ppo", "dqn", "q", "random"];

    /// <summary>Makes an agent.</summary>
    /// <param name="algorithm">One of <see cref="Algorithms"/>.</param>
    /// <param name="observationSize">Length of the observation vector.</param>
    /// <param name="actionCount">Number of discrete actions.</param>
    /// <param name="seed">Seeds every random choice the agent makes (initial weights, exploration, minibatches).</param>
    /// <param name="hyperparameters">Overrides of the algorithm's defaults; values are <see cref="long"/>, <see cref="double"/>, <see cref="bool"/> or <see cref="string"/>, as TOML gives them.</param>
    /// <exception cref="ArgumentException">Unknown algorithm, unknown hyperparameter, or a value of the wrong type or out of range; the message names it and what is expected.</exception>
    public static IAgent Create(string algorithm, int observationSize, int actionCount, int seed, IReadOnlyDictionary<string, object> hyperparameters) => algorithm switch
    {
        "random" => RandomAgent.Create(actionCount, seed, hyperparameters),
        "ppo" => Ppo.Create(observationSize, actionCount, seed, hyperparameters),
        "dqn" => Dqn.Create(observationSize, actionCount, seed, hyperparameters),
        "q" => TabularQ.Create(observationSize, actionCount, seed, hyperparameters),
        _ => throw Unknown(algorithm),
    };

    /// <summary>
    /// Every hyperparameter of <paramref name="algorithm"/> as <see cref="Create"/> would use it: the
    /// defaults with <paramref name="hyperparameters"/> applied, by key, in the algorithm's order.
    /// For the run log, which records the resolved values and the seed at the start of every run.
    /// </summary>
    /// <exception cref="ArgumentException">As <see cref="Create"/>.</exception>
    internal static IReadOnlyList<KeyValuePair<string, object>> Resolve(string algorithm, IReadOnlyDictionary<string, object> hyperparameters) => algorithm switch
    {
        "random" => RandomAgent.Resolve(hyperparameters),
        "ppo" => PpoConfig.Keys.Resolved(PpoConfig.Keys.Bind(new PpoConfig(), hyperparameters)),
        "dqn" => DqnConfig.Keys.Resolved(DqnConfig.Keys.Bind(new DqnConfig(), hyperparameters)),
        "q" => TabularQConfig.Keys.Resolved(TabularQConfig.Keys.Bind(new TabularQConfig(), hyperparameters)),
        _ => throw Unknown(algorithm),
    };

    private static ArgumentException Unknown(string algorithm) =>
        new($"unknown agent algorithm \"{algorithm}\"; expected one of: {string.Join(", ", Algorithms)}", nameof(algorithm));
}

/// <summary>
/// The baseline that learns nothing: uniform random actions, seeded. A resumed agent continues its
/// seed's stream exactly where the saved one stopped (it saves how many actions it drew and a load
/// draws them again), so a run killed and resumed gives the actions of one that never stopped.
/// </summary>
public sealed class RandomAgent : IAgent
{
    private const string DrawsFile = "random-draws.txt";
    private readonly int _seed;
    private readonly int[] _choices;
    private Random _random;
    private long _draws;

    private RandomAgent(int[] choices, int seed) => (_choices, _seed, _random) = (choices, seed, new Random(seed));

    /// <summary>
    /// A random agent that only ever picks among <paramref name="actions"/> (uniformly): an
    /// experiment's collector of normal behaviour takes the actions its policy allows.
    /// </summary>
    /// <exception cref="ArgumentException">No actions to choose from.</exception>
    public static RandomAgent Among(IReadOnlyList<int> actions, int seed) =>
        actions.Count > 0 ? new RandomAgent([.. actions], seed) : throw new ArgumentException("a random agent needs at least one action to choose from", nameof(actions));

    internal static RandomAgent Create(int actionCount, int seed, IReadOnlyDictionary<string, object> hyperparameters)
    {
        Resolve(hyperparameters);
        return new RandomAgent([.. Enumerable.Range(0, actionCount)], seed);
    }

    /// <summary>The resolved hyperparameters: none, and none accepted.</summary>
    internal static IReadOnlyList<KeyValuePair<string, object>> Resolve(IReadOnlyDictionary<string, object> hyperparameters)
    {
        if (hyperparameters.Count > 0)
            throw new ArgumentException($"unknown hyperparameter \"{hyperparameters.Keys.First()}\" for random; it has none", nameof(hyperparameters));
        return [];
    }

    /// <inheritdoc />
    public string Algorithm => "random";

    /// <inheritdoc />
    public int Act(float[] observation) => Draw();

    /// <inheritdoc />
    public int ActGreedy(float[] observation) => Draw();

    /// <inheritdoc />
    public void Observe(in Transition transition)
    {
    }

    /// <inheritdoc />
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, DrawsFile), _draws.ToString(CultureInfo.InvariantCulture));
    }

    /// <inheritdoc />
    /// <remarks>Replays the saved number of draws: one <see cref="Random.Next(int)"/> per step, cheap next to the steps themselves. A directory saved before draws were recorded starts the stream afresh.</remarks>
    public void Load(string directory)
    {
        string path = Path.Combine(directory, DrawsFile);
        if (!File.Exists(path))
            return;
        long draws = long.Parse(File.ReadAllText(path), NumberStyles.None, CultureInfo.InvariantCulture);
        (_random, _draws) = (new Random(_seed), 0);
        while (_draws < draws)
            Draw();
    }

    /// <inheritdoc />
    public void Dispose()
    {
    }

    private int Draw()
    {
        _draws++;
        return _choices[_random.Next(_choices.Length)];
    }
}
