using TorchSharp;
using static TorchSharp.torch;

namespace Mis.Gym.Agents;

/// <summary>
/// Hyperparameters of <see cref="Dqn"/>; the keys are CleanRL's <c>dqn.py</c> argument names, with
/// <c>exploration_steps</c> in place of <c>exploration_fraction</c> (an agent does not know the run's
/// total). Defaults are CleanRL's, scaled down for MIS scenarios (short episodes, thousands of steps
/// per experiment rather than hundreds of thousands).
/// </summary>
public sealed record DqnConfig
{
    /// <summary><c>learning_rate</c>: Adam's step size. Default 0.001.</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary><c>buffer_size</c>: replay buffer capacity in transitions (the oldest is overwritten). Default 10,000.</summary>
    public int BufferSize { get; init; } = 10_000;

    /// <summary><c>gamma</c>: discount factor. Default 0.99.</summary>
    public double Gamma { get; init; } = 0.99;

    /// <summary><c>tau</c>: how far the target network moves toward the online one at each target update (1 copies it). Default 1.</summary>
    public double Tau { get; init; } = 1.0;

    /// <summary><c>target_network_frequency</c>: steps between target-network updates. Default 250.</summary>
    public int TargetNetworkFrequency { get; init; } = 250;

    /// <summary><c>batch_size</c>: transitions per gradient step, sampled uniformly from the buffer. Default 64.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary><c>start_e</c>: exploration ε at step 0. Default 1.</summary>
    public double StartE { get; init; } = 1.0;

    /// <summary><c>end_e</c>: exploration ε after <see cref="ExplorationSteps"/>. Default 0.05.</summary>
    public double EndE { get; init; } = 0.05;

    /// <summary><c>exploration_steps</c>: steps over which ε falls linearly from <see cref="StartE"/> to <see cref="EndE"/>. Default 2,000.</summary>
    public int ExplorationSteps { get; init; } = 2_000;

    /// <summary><c>learning_starts</c>: steps of pure collection before the first gradient step. Default 200.</summary>
    public int LearningStarts { get; init; } = 200;

    /// <summary><c>train_frequency</c>: steps between gradient steps. Default 2.</summary>
    public int TrainFrequency { get; init; } = 2;

    /// <summary><c>huber_loss</c>: regress with the Huber loss (quadratic within 1 of the target, linear beyond) instead of the squared error, so one surprising return cannot throw the network far. Default true.</summary>
    public bool HuberLoss { get; init; } = true;

    /// <summary><c>max_grad_norm</c>: global gradient-norm clip. Default 10.</summary>
    public double MaxGradNorm { get; init; } = 10;

    /// <summary><c>double_q</c>: Double DQN: the online network picks the next action, the target network values it, which curbs the max's overestimation. Default true.</summary>
    public bool DoubleQ { get; init; } = true;

    /// <summary><c>hidden_size</c>: units per hidden layer of the Q-network. Default 64.</summary>
    public int HiddenSize { get; init; } = 64;

    /// <summary><c>hidden_layers</c>: hidden layers of the Q-network (ReLU). Default 2.</summary>
    public int HiddenLayers { get; init; } = 2;

    /// <summary><c>torch_threads</c>: CPU threads for torch during a gradient step (process-wide while it runs). 1 keeps training bit-identical and is fastest for networks this small. Default 1.</summary>
    public int TorchThreads { get; init; } = 1;

    /// <summary>The declaration of every key, its range and its field.</summary>
    internal static Hyperparameters<DqnConfig> Keys { get; } = new Hyperparameters<DqnConfig>("dqn")
        .Number("learning_rate", c => c.LearningRate, (c, v) => c with { LearningRate = v }, 0, 1, minExclusive: true)
        .Int("buffer_size", c => c.BufferSize, (c, v) => c with { BufferSize = v }, 1, 10_000_000)
        .Number("gamma", c => c.Gamma, (c, v) => c with { Gamma = v }, 0, 1)
        .Number("tau", c => c.Tau, (c, v) => c with { Tau = v }, 0, 1, minExclusive: true)
        .Int("target_network_frequency", c => c.TargetNetworkFrequency, (c, v) => c with { TargetNetworkFrequency = v }, 1)
        .Int("batch_size", c => c.BatchSize, (c, v) => c with { BatchSize = v }, 1, 1_000_000)
        .Number("start_e", c => c.StartE, (c, v) => c with { StartE = v }, 0, 1)
        .Number("end_e", c => c.EndE, (c, v) => c with { EndE = v }, 0, 1)
        .Int("exploration_steps", c => c.ExplorationSteps, (c, v) => c with { ExplorationSteps = v }, 0)
        .Int("learning_starts", c => c.LearningStarts, (c, v) => c with { LearningStarts = v }, 0)
        .Int("train_frequency", c => c.TrainFrequency, (c, v) => c with { TrainFrequency = v }, 1)
        .Flag("huber_loss", c => c.HuberLoss, (c, v) => c with { HuberLoss = v })
        .Number("max_grad_norm", c => c.MaxGradNorm, (c, v) => c with { MaxGradNorm = v }, 0, 1e6, minExclusive: true)
        .Flag("double_q", c => c.DoubleQ, (c, v) => c with { DoubleQ = v })
        .Int("hidden_size", c => c.HiddenSize, (c, v) => c with { HiddenSize = v }, 1, 4096)
        .Int("hidden_layers", c => c.HiddenLayers, (c, v) => c with { HiddenLayers = v }, 1, 8)
        .Int("torch_threads", c => c.TorchThreads, (c, v) => c with { TorchThreads = v }, 1, 256);
}

/// <summary>
/// Deep Q-learning, after CleanRL's <c>dqn.py</c>: a Q-network (MLP, ReLU) on the
/// <see cref="AgentMath.Symlog"/> of the observation, ε-greedy acting with a linear ε schedule
/// (<see cref="AgentMath.LinearSchedule"/>), a uniform replay buffer, and a target network updated
/// every <see cref="DqnConfig.TargetNetworkFrequency"/> steps. The regression target is
/// <c>r + γ·Q_target(s′, a′)·(1 − terminated)</c>, a truncated step still bootstrapping, where
/// <c>a′</c> maximises the online network's value (Double DQN; the target network's own max with
/// <c>double_q = false</c>, as CleanRL). The loss is the Huber loss of the TD error (the squared
/// error, as CleanRL, with <c>huber_loss = false</c>), minimised by Adam with a gradient-norm clip.
/// Double DQN and the Huber loss are on by default because plain DQN, on data-shortcut, sometimes
/// unlearned the honest path late in training (its greedy policy went back to the denied shortcut).
/// <para>
/// Acting runs on a managed copy of the Q-network (<see cref="MlpMirror"/>), refreshed after every
/// gradient step. Deterministic: initial weights, ε draws, random actions and minibatch indices
/// come from <c>System.Random(seed)</c>, torch runs on <see cref="DqnConfig.TorchThreads"/> threads
/// (1 by default: bit-identical) and nothing uses torch's global generator.
/// </para>
/// <para>
/// <see cref="Save"/> writes both networks, the Adam state, the step counter and the replay buffer;
/// a loaded agent resumes the ε schedule and the training cadence where it stopped, but draws from a
/// new random stream (<see cref="AgentFiles.ResumedRandom"/>): repeatable, not bit-identical to an
/// uninterrupted run.
/// </para>
/// </summary>
public sealed class Dqn : IAgent
{
    private readonly DqnConfig _config;
    private readonly int _observationSize, _actionCount, _seed;
    private readonly Mlp _q, _target;
    private readonly MlpMirror _qMirror;
    private readonly TorchSharp.Modules.Adam _optimizer;
    private readonly TorchSharp.Modules.Parameter[] _parameters;
    private readonly ReplayBuffer _buffer;
    private readonly float[] _input;
    private Random _random;
    private bool _mirrorStale;

    // One minibatch, gathered from the buffer, reused for every gradient step.
    private readonly float[] _batchObs, _batchNext, _batchRewards, _batchNotTerminated;
    private readonly long[] _batchActions;

    /// <summary>Makes the agent.</summary>
    /// <exception cref="ArgumentException">A hyperparameter out of range.</exception>
    internal Dqn(int observationSize, int actionCount, int seed, DqnConfig config)
    {
        AgentMath.CheckSizes(observationSize, actionCount);
        _config = DqnConfig.Keys.Check(config);
        (_observationSize, _actionCount, _seed) = (observationSize, actionCount, seed);
        _random = new Random(seed);

        int[] sizes = [observationSize, .. Enumerable.Repeat(config.HiddenSize, config.HiddenLayers), actionCount];
        _q = new Mlp("q", sizes, Activation.Relu, _random, outputGain: 1.0);
        _target = new Mlp("q", sizes, Activation.Relu, _random, outputGain: 1.0);
        _target.Blend(_q, 1.0);
        _qMirror = new MlpMirror(_q);
        _parameters = [.. _q.parameters()];
        _optimizer = new Mis.Torch.Adam(_parameters, config.LearningRate);
        _buffer = new ReplayBuffer(config.BufferSize, observationSize);
        _input = new float[observationSize];

        int b = config.BatchSize;
        (_batchObs, _batchNext) = (new float[b * observationSize], new float[b * observationSize]);
        (_batchRewards, _batchNotTerminated, _batchActions) = (new float[b], new float[b], new long[b]);
    }

    /// <summary>Binds <paramref name="hyperparameters"/> and makes the agent (see <see cref="AgentFactory.Create"/>).</summary>
    internal static Dqn Create(int observationSize, int actionCount, int seed, IReadOnlyDictionary<string, object> hyperparameters) =>
        new(observationSize, actionCount, seed, DqnConfig.Keys.Bind(new DqnConfig(), hyperparameters));

    /// <inheritdoc />
    public string Algorithm => "dqn";

    /// <summary>The hyperparameters.</summary>
    internal DqnConfig Config => _config;

    /// <summary>Transitions observed.</summary>
    internal long Steps { get; private set; }

    /// <summary>Gradient steps taken.</summary>
    internal long Updates { get; private set; }

    /// <summary>The loss of the last gradient step.</summary>
    internal float LastLoss { get; private set; }

    /// <summary>Exploration ε at the current step.</summary>
    internal double Epsilon => AgentMath.LinearSchedule(_config.StartE, _config.EndE, _config.ExplorationSteps, Steps);

    // ---- acting ----------------------------------------------------------------------------

    /// <inheritdoc />
    public int Act(float[] observation)
    {
        AgentMath.CheckObservation(observation, _observationSize);
        return _random.NextDouble() < Epsilon ? _random.Next(_actionCount) : ActGreedy(observation);
    }

    /// <inheritdoc />
    public int ActGreedy(float[] observation)
    {
        AgentMath.CheckObservation(observation, _observationSize);
        if (_mirrorStale)
        {
            _qMirror.Refresh(_q);
            _mirrorStale = false;
        }
        AgentMath.SymlogAll(observation, _input);
        return AgentMath.Argmax(_qMirror.Forward(_input));
    }

    // ---- learning --------------------------------------------------------------------------

    /// <inheritdoc />
    public void Observe(in Transition transition)
    {
        AgentMath.CheckObservation(transition.Observation, _observationSize);
        AgentMath.CheckObservation(transition.NextObservation, _observationSize);
        ArgumentOutOfRangeException.ThrowIfNegative(transition.Action);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(transition.Action, _actionCount);
        _buffer.Add(transition);
        Steps++;
        if (Steps > _config.LearningStarts)
        {
            if (Steps % _config.TrainFrequency == 0)
                TrainStep();
            if (Steps % _config.TargetNetworkFrequency == 0)
                _target.Blend(_q, _config.Tau);
        }
    }

    private void TrainStep()
    {
        _buffer.Sample(_random, _batchObs, _batchActions, _batchRewards, _batchNext, _batchNotTerminated);
        torch.set_num_threads(_config.TorchThreads);
        int b = _config.BatchSize;
        using var scope = NewDisposeScope();
        // Held until the step ends: an implicit scalar (TorchSharp's square() makes one too) can be freed by a collection mid-call (Mis.Torch.Adam).
        using Scalar one = 1.0.ToScalar(), two = 2.ToScalar(), gamma = _config.Gamma.ToScalar();
        var obs = tensor(_batchObs, [b, _observationSize]);
        var next = tensor(_batchNext, [b, _observationSize]);
        Tensor tdTarget;
        using (no_grad())
        {
            var nextTarget = _target.call(next);
            var nextValue = _config.DoubleQ
                ? nextTarget.gather(1, _q.call(next).argmax(1, keepdim: true)).squeeze(1)
                : nextTarget.max(1).values;
            tdTarget = tensor(_batchRewards).add(gamma * nextValue * tensor(_batchNotTerminated), one);
        }
        var predicted = _q.call(obs).gather(1, tensor(_batchActions, [b, 1])).squeeze(1);
        var loss = _config.HuberLoss ? nn.functional.smooth_l1_loss(predicted, tdTarget) : (predicted - tdTarget).pow(two).mean();
        _optimizer.zero_grad();
        loss.backward();
        nn.utils.clip_grad_norm_(_parameters, _config.MaxGradNorm);
        _optimizer.step();
        LastLoss = loss.item<float>();
        Updates++;
        _mirrorStale = true;
    }

    // ---- saving ----------------------------------------------------------------------------

    private string Identity => $"dqn observations={_observationSize} actions={_actionCount} {_config}";

    /// <inheritdoc />
    public void Save(string directory)
    {
        AgentFiles.WriteIdentity(directory, Identity);
        _q.save(Path.Combine(directory, "q.dat"));
        _target.save(Path.Combine(directory, "target.dat"));
        _optimizer.save_state_dict(Path.Combine(directory, "optimizer.dat"));
        using var writer = new BinaryWriter(File.Create(Path.Combine(directory, "state.dat")));
        writer.Write(Steps);
        writer.Write(Updates);
        _buffer.Write(writer);
    }

    /// <inheritdoc />
    public void Load(string directory)
    {
        AgentFiles.CheckIdentity(directory, Identity);
        _q.load(Path.Combine(directory, "q.dat"));
        _target.load(Path.Combine(directory, "target.dat"));
        _optimizer.load_state_dict(Path.Combine(directory, "optimizer.dat"));
        using var reader = new BinaryReader(File.OpenRead(Path.Combine(directory, "state.dat")));
        Steps = reader.ReadInt64();
        Updates = reader.ReadInt64();
        _buffer.Read(reader);
        _mirrorStale = true;
        _random = AgentFiles.ResumedRandom(_seed, Steps);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _optimizer.Dispose();
        _q.Dispose();
        _target.Dispose();
    }

    /// <summary>A fixed-capacity ring of transitions (observations symlogged), sampled uniformly with replacement.</summary>
    private sealed class ReplayBuffer(int capacity, int observationSize)
    {
        private readonly float[] _obs = new float[capacity * observationSize], _next = new float[capacity * observationSize];
        private readonly float[] _rewards = new float[capacity];
        private readonly long[] _actions = new long[capacity];
        private readonly bool[] _terminated = new bool[capacity];
        private int _count, _position;

        internal void Add(in Transition t)
        {
            AgentMath.SymlogAll(t.Observation, _obs.AsSpan(_position * observationSize, observationSize));
            AgentMath.SymlogAll(t.NextObservation, _next.AsSpan(_position * observationSize, observationSize));
            _actions[_position] = t.Action;
            _rewards[_position] = (float)t.Reward;
            _terminated[_position] = t.Terminated;
            _position = (_position + 1) % capacity;
            _count = Math.Min(_count + 1, capacity);
        }

        internal void Sample(Random random, float[] obs, long[] actions, float[] rewards, float[] next, float[] notTerminated)
        {
            for (int i = 0; i < actions.Length; i++)
            {
                int j = random.Next(_count);
                _obs.AsSpan(j * observationSize, observationSize).CopyTo(obs.AsSpan(i * observationSize));
                _next.AsSpan(j * observationSize, observationSize).CopyTo(next.AsSpan(i * observationSize));
                actions[i] = _actions[j];
                rewards[i] = _rewards[j];
                notTerminated[i] = _terminated[j] ? 0f : 1f;
            }
        }

        internal void Write(BinaryWriter writer)
        {
            writer.Write(_count);
            writer.Write(_position);
            AgentFiles.Write(writer, _obs);
            AgentFiles.Write(writer, _next);
            AgentFiles.Write(writer, _rewards);
            AgentFiles.Write(writer, _actions);
            AgentFiles.Write(writer, _terminated);
        }

        internal void Read(BinaryReader reader)
        {
            _count = reader.ReadInt32();
            _position = reader.ReadInt32();
            AgentFiles.Read(reader, _obs);
            AgentFiles.Read(reader, _next);
            AgentFiles.Read(reader, _rewards);
            AgentFiles.Read(reader, _actions);
            AgentFiles.Read(reader, _terminated);
        }
    }
}
