using System.Globalization;
using System.Runtime.InteropServices;

namespace Mis.Gym.Agents;

/// <summary>Hyperparameters of <see cref="TabularQ"/>.</summary>
public sealed record TabularQConfig
{
    /// <summary><c>learning_rate</c>: α, how far each update moves Q(s, a) toward its target. Default 0.2.</summary>
    public double LearningRate { get; init; } = 0.2;

    /// <summary><c>gamma</c>: discount factor. Default 0.99.</summary>
    public double Gamma { get; init; } = 0.99;

    /// <summary><c>start_e</c>: exploration ε at step 0. Default 1.</summary>
    public double StartE { get; init; } = 1.0;

    /// <summary><c>end_e</c>: exploration ε after <see cref="ExplorationSteps"/>. Default 0.05.</summary>
    public double EndE { get; init; } = 0.05;

    /// <summary><c>exploration_steps</c>: steps over which ε falls linearly from <see cref="StartE"/> to <see cref="EndE"/>. Default 2,000.</summary>
    public int ExplorationSteps { get; init; } = 2_000;

    /// <summary><c>initial_q</c>: the value of a state–action pair never updated. Default 0.</summary>
    public double InitialQ { get; init; }

    /// <summary><c>linear_limit</c>: observation values up to this magnitude are rounded to the nearest integer (see <see cref="TabularQ.Bin"/>). Default 16.</summary>
    public double LinearLimit { get; init; } = 16;

    /// <summary><c>octave_bins</c>: beyond <see cref="LinearLimit"/>, bins per doubling of the magnitude. Default 2.</summary>
    public int OctaveBins { get; init; } = 2;

    /// <summary>The declaration of every key, its range and its field.</summary>
    internal static Hyperparameters<TabularQConfig> Keys { get; } = new Hyperparameters<TabularQConfig>("q")
        .Number("learning_rate", c => c.LearningRate, (c, v) => c with { LearningRate = v }, 0, 1, minExclusive: true)
        .Number("gamma", c => c.Gamma, (c, v) => c with { Gamma = v }, 0, 1)
        .Number("start_e", c => c.StartE, (c, v) => c with { StartE = v }, 0, 1)
        .Number("end_e", c => c.EndE, (c, v) => c with { EndE = v }, 0, 1)
        .Int("exploration_steps", c => c.ExplorationSteps, (c, v) => c with { ExplorationSteps = v }, 0)
        .Number("initial_q", c => c.InitialQ, (c, v) => c with { InitialQ = v }, -1e9, 1e9)
        .Number("linear_limit", c => c.LinearLimit, (c, v) => c with { LinearLimit = v }, 1, 1e9)
        .Int("octave_bins", c => c.OctaveBins, (c, v) => c with { OctaveBins = v }, 1, 1000);
}

/// <summary>
/// Tabular Q-learning, the baseline the deep agents must beat: a table from discretised
/// observation to one value per action, ε-greedy acting with a linear ε schedule, and the one-step
/// update <c>Q(s, a) += α·(r + γ·maxₐ′ Q(s′, a′)·(1 − terminated) − Q(s, a))</c> on every
/// <see cref="Observe"/> (a truncated step still bootstraps).
/// <para>
/// A state is the observation with every element put in an integer bin (<see cref="Bin"/>). MIS
/// observations (<see cref="Envs.ObservationLayout"/>) are 0/1 flags, the DEFCON level and counts,
/// which the bins keep exact, and milliseconds of slowdown and elapsed time, which become exact up to
/// <see cref="TabularQConfig.LinearLimit"/> and logarithmic beyond it, so the table stays small
/// while early and late in an episode stay apart. States are added as they are first updated.
/// </para>
/// <para>
/// Deterministic: ε draws and random actions come from <c>System.Random(seed)</c>; greedy ties go
/// to the lowest action index. <see cref="Save"/> writes the table and the step counter; a loaded
/// agent resumes the ε schedule but draws from a new random stream
/// (<see cref="AgentFiles.ResumedRandom"/>), so it is repeatable, not bit-identical to an
/// uninterrupted run.
/// </para>
/// </summary>
public sealed class TabularQ : IAgent
{
    private readonly TabularQConfig _config;
    private readonly int _observationSize, _actionCount, _seed;
    private readonly Dictionary<int[], double[]> _table = new(StateComparer.Instance);
    private Random _random;

    /// <summary>Makes the agent.</summary>
    /// <exception cref="ArgumentException">A hyperparameter out of range.</exception>
    internal TabularQ(int observationSize, int actionCount, int seed, TabularQConfig config)
    {
        AgentMath.CheckSizes(observationSize, actionCount);
        _config = TabularQConfig.Keys.Check(config);
        (_observationSize, _actionCount, _seed) = (observationSize, actionCount, seed);
        _random = new Random(seed);
    }

    /// <summary>Binds <paramref name="hyperparameters"/> and makes the agent (see <see cref="AgentFactory.Create"/>).</summary>
    internal static TabularQ Create(int observationSize, int actionCount, int seed, IReadOnlyDictionary<string, object> hyperparameters) =>
        new(observationSize, actionCount, seed, TabularQConfig.Keys.Bind(new TabularQConfig(), hyperparameters));

    /// <inheritdoc />
    public string Algorithm => "q";

    /// <summary>The hyperparameters.</summary>
    internal TabularQConfig Config => _config;

    /// <summary>Transitions observed.</summary>
    internal long Steps { get; private set; }

    /// <summary>States in the table.</summary>
    internal int States => _table.Count;

    /// <summary>Exploration ε at the current step.</summary>
    internal double Epsilon => AgentMath.LinearSchedule(_config.StartE, _config.EndE, _config.ExplorationSteps, Steps);

    /// <summary>
    /// The bin of one observation value: <c>round(x)</c> when <c>|x| ≤ L</c>
    /// (<see cref="TabularQConfig.LinearLimit"/>); beyond, <c>sign(x)·(⌈L⌉ + ⌈log₂(|x| / L)·k⌉)</c>
    /// with <c>k</c> = <see cref="TabularQConfig.OctaveBins"/> bins per doubling. NaN is bin 0.
    /// </summary>
    internal static int Bin(float x, double linearLimit, int octaveBins)
    {
        double magnitude = Math.Abs((double)x);
        if (double.IsNaN(magnitude))
            return 0;
        if (magnitude <= linearLimit)
            return (int)Math.Round(x, MidpointRounding.AwayFromZero);
        double bins = Math.Ceiling(linearLimit) + Math.Ceiling(Math.Log2(magnitude / linearLimit) * octaveBins);
        return (int)(Math.Sign(x) * Math.Min(bins, int.MaxValue));
    }

    /// <summary>The state (table key) of an observation.</summary>
    internal int[] State(float[] observation)
    {
        AgentMath.CheckObservation(observation, _observationSize);
        var state = new int[observation.Length];
        for (int i = 0; i < state.Length; i++)
            state[i] = Bin(observation[i], _config.LinearLimit, _config.OctaveBins);
        return state;
    }

    // ---- acting ----------------------------------------------------------------------------

    /// <inheritdoc />
    public int Act(float[] observation)
    {
        var state = State(observation);
        return _random.NextDouble() < Epsilon ? _random.Next(_actionCount) : Greedy(state);
    }

    /// <inheritdoc />
    public int ActGreedy(float[] observation) => Greedy(State(observation));

    private int Greedy(int[] state) => _table.TryGetValue(state, out var values) ? AgentMath.Argmax(values) : 0;

    // ---- learning --------------------------------------------------------------------------

    /// <inheritdoc />
    public void Observe(in Transition transition)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(transition.Action);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(transition.Action, _actionCount);
        var state = State(transition.Observation);
        var next = State(transition.NextObservation);
        double bootstrap = transition.Terminated ? 0
            : _table.TryGetValue(next, out var nextValues) ? nextValues.Max() : _config.InitialQ;
        double target = transition.Reward + _config.Gamma * bootstrap;

        ref var values = ref CollectionsMarshal.GetValueRefOrAddDefault(_table, state, out bool existed);
        if (!existed)
            values = Enumerable.Repeat(_config.InitialQ, _actionCount).ToArray();
        values![transition.Action] += _config.LearningRate * (target - values[transition.Action]);
        Steps++;
    }

    // ---- saving ----------------------------------------------------------------------------

    private string Identity => $"q observations={_observationSize} actions={_actionCount} {_config}";

    /// <inheritdoc />
    public void Save(string directory)
    {
        AgentFiles.WriteIdentity(directory, Identity);
        // Text, one state per line ("bins | values"), so a table can be read and diffed.
        using var writer = new StreamWriter(Path.Combine(directory, "table.txt"));
        writer.WriteLine(Steps.ToString(CultureInfo.InvariantCulture));
        foreach (var (state, values) in _table)
            writer.WriteLine($"{string.Join(' ', state)} | {string.Join(' ', values.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}");
    }

    /// <inheritdoc />
    public void Load(string directory)
    {
        AgentFiles.CheckIdentity(directory, Identity);
        string path = Path.Combine(directory, "table.txt");
        using var reader = new StreamReader(path);
        _table.Clear();
        Steps = long.Parse(reader.ReadLine() ?? throw new InvalidDataException($"{path} is empty"), CultureInfo.InvariantCulture);
        int lineNumber = 1;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            var parts = line.Split(" | ");
            var state = parts[0].Split(' ').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
            var values = parts.Length == 2 ? parts[1].Split(' ').Select(s => double.Parse(s, CultureInfo.InvariantCulture)).ToArray() : [];
            if (state.Length != _observationSize || values.Length != _actionCount)
                throw new InvalidDataException($"{path}:{lineNumber}: expected {_observationSize} bins and {_actionCount} values");
            _table[state] = values;
        }
        _random = AgentFiles.ResumedRandom(_seed, Steps);
    }

    /// <inheritdoc />
    public void Dispose()
    {
    }

    // Compares states element by element.
    private sealed class StateComparer : IEqualityComparer<int[]>
    {
        internal static readonly StateComparer Instance = new();

        public bool Equals(int[]? x, int[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(int[] state)
        {
            var hash = new HashCode();
            hash.AddBytes(MemoryMarshal.AsBytes(state.AsSpan()));
            return hash.ToHashCode();
        }
    }
}
