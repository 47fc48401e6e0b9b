using TorchSharp;
using static TorchSharp.torch;

namespace Mis.Gym.Agents;

/// <summary>
/// Hyperparameters of <see cref="Ppo"/>; the keys are CleanRL's <c>ppo.py</c> argument names. The
/// defaults are CleanRL's, resized for MIS scenarios: one env, episodes of a few to a few dozen
/// steps, a handful of actions.
/// </summary>
public sealed record PpoConfig
{
    /// <summary><c>num_steps</c>: transitions per rollout; the policy is updated when a rollout is full. Default 128.</summary>
    public int NumSteps { get; init; } = 128;

    /// <summary><c>learning_rate</c>: Adam's step size (Adam's epsilon is 1e-5, as in CleanRL). Default 0.001.</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary><c>gamma</c>: discount factor. Default 0.99.</summary>
    public double Gamma { get; init; } = 0.99;

    /// <summary><c>gae_lambda</c>: λ of generalised advantage estimation. Default 0.95.</summary>
    public double GaeLambda { get; init; } = 0.95;

    /// <summary><c>num_minibatches</c>: minibatches each rollout is split into per epoch. Default 4.</summary>
    public int NumMinibatches { get; init; } = 4;

    /// <summary><c>update_epochs</c>: passes over each rollout. Default 4.</summary>
    public int UpdateEpochs { get; init; } = 4;

    /// <summary><c>norm_adv</c>: normalise advantages per minibatch. Default true.</summary>
    public bool NormAdv { get; init; } = true;

    /// <summary><c>clip_coef</c>: the surrogate's clip range ε (the ratio is kept in [1 − ε, 1 + ε]). Default 0.2.</summary>
    public double ClipCoef { get; init; } = 0.2;

    /// <summary><c>clip_vloss</c>: clip the value loss around the rollout's values, as the policy's is. Default true.</summary>
    public bool ClipVloss { get; init; } = true;

    /// <summary><c>ent_coef</c>: weight of the entropy bonus, which keeps the policy exploring. Default 0.01.</summary>
    public double EntCoef { get; init; } = 0.01;

    /// <summary><c>vf_coef</c>: weight of the value loss. Default 0.5.</summary>
    public double VfCoef { get; init; } = 0.5;

    /// <summary><c>max_grad_norm</c>: global gradient-norm clip. Default 0.5.</summary>
    public double MaxGradNorm { get; init; } = 0.5;

    /// <summary><c>target_kl</c>: stop an update's epochs early once the approximate KL divergence from the rollout's policy exceeds this; 0 never stops. Default 0.</summary>
    public double TargetKl { get; init; }

    /// <summary><c>hidden_size</c>: units per hidden layer of the actor and of the critic. Default 64.</summary>
    public int HiddenSize { get; init; } = 64;

    /// <summary><c>hidden_layers</c>: hidden layers of the actor and of the critic (tanh). Default 2.</summary>
    public int HiddenLayers { get; init; } = 2;

    /// <summary><c>torch_threads</c>: CPU threads for torch during an update (process-wide while it runs). 1 keeps updates bit-identical and is fastest for networks this small. Default 1.</summary>
    public int TorchThreads { get; init; } = 1;

    /// <summary>The declaration of every key, its range and its field.</summary>
    internal static Hyperparameters<PpoConfig> Keys { get; } = new Hyperparameters<PpoConfig>("ppo")
        .Int("num_steps", c => c.NumSteps, (c, v) => c with { NumSteps = v }, 2, 1_000_000)
        .Number("learning_rate", c => c.LearningRate, (c, v) => c with { LearningRate = v }, 0, 1, minExclusive: true)
        .Number("gamma", c => c.Gamma, (c, v) => c with { Gamma = v }, 0, 1)
        .Number("gae_lambda", c => c.GaeLambda, (c, v) => c with { GaeLambda = v }, 0, 1)
        .Int("num_minibatches", c => c.NumMinibatches, (c, v) => c with { NumMinibatches = v }, 1, 500_000)
        .Int("update_epochs", c => c.UpdateEpochs, (c, v) => c with { UpdateEpochs = v }, 1, 1000)
        .Flag("norm_adv", c => c.NormAdv, (c, v) => c with { NormAdv = v })
        .Number("clip_coef", c => c.ClipCoef, (c, v) => c with { ClipCoef = v }, 0, 1, minExclusive: true)
        .Flag("clip_vloss", c => c.ClipVloss, (c, v) => c with { ClipVloss = v })
        .Number("ent_coef", c => c.EntCoef, (c, v) => c with { EntCoef = v }, 0, 10)
        .Number("vf_coef", c => c.VfCoef, (c, v) => c with { VfCoef = v }, 0, 100)
        .Number("max_grad_norm", c => c.MaxGradNorm, (c, v) => c with { MaxGradNorm = v }, 0, 1e6, minExclusive: true)
        .Number("target_kl", c => c.TargetKl, (c, v) => c with { TargetKl = v }, 0, 100)
        .Int("hidden_size", c => c.HiddenSize, (c, v) => c with { HiddenSize = v }, 1, 4096)
        .Int("hidden_layers", c => c.HiddenLayers, (c, v) => c with { HiddenLayers = v }, 1, 8)
        .Int("torch_threads", c => c.TorchThreads, (c, v) => c with { TorchThreads = v }, 1, 256);
}

/// <summary>
/// Proximal Policy Optimization for discrete actions, after CleanRL's <c>ppo.py</c>, for one env
/// fed step by step: separate actor and critic MLPs (tanh) on the <see cref="AgentMath.Symlog"/> of
/// the observation; a rollout of <see cref="PpoConfig.NumSteps"/> transitions; advantages by GAE
/// (<see cref="Gae"/>), bootstrapped through truncations but not through terminations; then
/// <see cref="PpoConfig.UpdateEpochs"/> epochs of shuffled minibatches on the clipped surrogate, the
/// (clipped) value loss and an entropy bonus, with one Adam optimiser and a global gradient clip.
/// <para>
/// <see cref="Observe"/> must receive one env's transitions in the order they happened (a rollout
/// may span episodes and an episode may span rollouts). Acting runs on a managed copy of the actor
/// (<see cref="MlpMirror"/>); the rollout's log-probabilities and values are computed in one batch
/// at the start of the update, from the same weights that acted.
/// </para>
/// <para>
/// Deterministic: initial weights, action sampling and minibatch order come from
/// <c>System.Random(seed)</c>, torch runs the update on <see cref="PpoConfig.TorchThreads"/> threads
/// (1 by default: bit-identical), and nothing uses torch's global generator, so the same seed and
/// the same transitions give the same actions and weights. More than one torch thread may change
/// float summation order, and with it the curve.
/// </para>
/// <para>
/// <see cref="Save"/> writes the actor, critic, Adam state, counters and the partial rollout; a
/// loaded agent continues the same update schedule, but draws from a new random stream
/// (<see cref="AgentFiles.ResumedRandom"/>), so its curve is repeatable but not bit-identical to
/// an uninterrupted run.
/// </para>
/// </summary>
public sealed class Ppo : IAgent
{
    private readonly PpoConfig _config;
    private readonly int _observationSize, _actionCount, _seed;
    private readonly Mlp _actor, _critic;
    private readonly MlpMirror _actorMirror;
    private readonly TorchSharp.Modules.Adam _optimizer;
    private readonly TorchSharp.Modules.Parameter[] _parameters;
    private readonly float[] _input;
    private readonly double[] _probabilities;
    private Random _random;

    // The rollout, one row per transition (observations already symlogged).
    private readonly float[] _obs, _nextObs, _rewards;
    private readonly long[] _actions;
    private readonly bool[] _terminated, _done;
    private int _stored;

    /// <summary>Makes the agent.</summary>
    /// <exception cref="ArgumentException">A hyperparameter out of range, or minibatches too small (each needs at least 2 transitions).</exception>
    internal Ppo(int observationSize, int actionCount, int seed, PpoConfig config)
    {
        AgentMath.CheckSizes(observationSize, actionCount);
        _config = PpoConfig.Keys.Check(config);
        if (config.NumSteps < 2 * config.NumMinibatches)
            throw new ArgumentException($"ppo hyperparameters: num_steps ({config.NumSteps}) must be at least 2 × num_minibatches ({config.NumMinibatches}), so every minibatch has 2 transitions to normalise over", nameof(config));
        (_observationSize, _actionCount, _seed) = (observationSize, actionCount, seed);
        _random = new Random(seed);

        int[] hidden = [.. Enumerable.Repeat(config.HiddenSize, config.HiddenLayers)];
        _actor = new Mlp("actor", [observationSize, .. hidden, actionCount], Activation.Tanh, _random, outputGain: 0.01);
        _critic = new Mlp("critic", [observationSize, .. hidden, 1], Activation.Tanh, _random, outputGain: 1.0);
        _actorMirror = new MlpMirror(_actor);
        _parameters = [.. _actor.parameters(), .. _critic.parameters()];
        _optimizer = new Mis.Torch.Adam(_parameters, config.LearningRate, eps: 1e-5);

        _input = new float[observationSize];
        _probabilities = new double[actionCount];
        int n = config.NumSteps;
        (_obs, _nextObs) = (new float[n * observationSize], new float[n * observationSize]);
        (_rewards, _actions, _terminated, _done) = (new float[n], new long[n], new bool[n], new bool[n]);
    }

    /// <summary>Binds <paramref name="hyperparameters"/> and makes the agent (see <see cref="AgentFactory.Create"/>).</summary>
    internal static Ppo Create(int observationSize, int actionCount, int seed, IReadOnlyDictionary<string, object> hyperparameters) =>
        new(observationSize, actionCount, seed, PpoConfig.Keys.Bind(new PpoConfig(), hyperparameters));

    /// <inheritdoc />
    public string Algorithm => "ppo";

    /// <summary>The hyperparameters.</summary>
    internal PpoConfig Config => _config;

    /// <summary>Transitions observed.</summary>
    internal long Steps { get; private set; }

    /// <summary>Policy updates done (one per full rollout).</summary>
    internal long Updates { get; private set; }

    /// <summary>Losses of the last update's last minibatch: policy, value, entropy, approximate KL.</summary>
    internal (float Policy, float Value, float Entropy, float ApproxKl) LastLosses { get; private set; }

    // ---- acting ----------------------------------------------------------------------------

    /// <inheritdoc />
    public int Act(float[] observation)
    {
        Policy(observation);
        double u = _random.NextDouble(), cumulative = 0;
        for (int a = 0; a < _actionCount - 1; a++)
        {
            cumulative += _probabilities[a];
            if (u < cumulative)
                return a;
        }
        return _actionCount - 1;
    }

    /// <inheritdoc />
    public int ActGreedy(float[] observation)
    {
        AgentMath.CheckObservation(observation, _observationSize);
        AgentMath.SymlogAll(observation, _input);
        return AgentMath.Argmax(_actorMirror.Forward(_input));
    }

    // Softmax of the actor's logits into _probabilities.
    private void Policy(float[] observation)
    {
        AgentMath.CheckObservation(observation, _observationSize);
        AgentMath.SymlogAll(observation, _input);
        var logits = _actorMirror.Forward(_input);
        float max = logits[AgentMath.Argmax(logits)];
        double sum = 0;
        for (int a = 0; a < _actionCount; a++)
            sum += _probabilities[a] = Math.Exp(logits[a] - max);
        for (int a = 0; a < _actionCount; a++)
            _probabilities[a] /= sum;
    }

    // ---- learning --------------------------------------------------------------------------

    /// <inheritdoc />
    public void Observe(in Transition transition)
    {
        AgentMath.CheckObservation(transition.Observation, _observationSize);
        AgentMath.CheckObservation(transition.NextObservation, _observationSize);
        ArgumentOutOfRangeException.ThrowIfNegative(transition.Action);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(transition.Action, _actionCount);
        int t = _stored;
        AgentMath.SymlogAll(transition.Observation, _obs.AsSpan(t * _observationSize, _observationSize));
        AgentMath.SymlogAll(transition.NextObservation, _nextObs.AsSpan(t * _observationSize, _observationSize));
        _actions[t] = transition.Action;
        _rewards[t] = (float)transition.Reward;
        _terminated[t] = transition.Terminated;
        _done[t] = transition.Done;
        _stored++;
        Steps++;
        if (_stored == _config.NumSteps)
        {
            Update();
            _stored = 0;
        }
    }

    /// <summary>
    /// Generalised advantage estimation over a rollout of one env's consecutive transitions:
    /// <c>δₜ = rₜ + γ·V(s′ₜ)·(1 − terminatedₜ) − V(sₜ)</c> and <c>Aₜ = δₜ + γλ·(1 − doneₜ)·Aₜ₊₁</c>.
    /// A truncated step still bootstraps from its next state's value, but its advantage does not
    /// run on into the next episode; the rollout's last step has no <c>Aₜ₊₁</c>.
    /// </summary>
    internal static void Gae(ReadOnlySpan<float> rewards, ReadOnlySpan<float> values, ReadOnlySpan<float> nextValues,
                             ReadOnlySpan<bool> terminated, ReadOnlySpan<bool> done, double gamma, double lambda, Span<float> advantages)
    {
        double next = 0;
        for (int t = rewards.Length - 1; t >= 0; t--)
        {
            double delta = rewards[t] + (terminated[t] ? 0 : gamma * nextValues[t]) - values[t];
            next = delta + (done[t] ? 0 : gamma * lambda * next);
            advantages[t] = (float)next;
        }
    }

    private void Update()
    {
        torch.set_num_threads(_config.TorchThreads);
        int n = _config.NumSteps;
        using var scope = NewDisposeScope();
        // Every scalar held until the update ends: TorchSharp's implicit ones (from a double, or the
        // alpha of 1 in tensor + tensor, the 2 of square()) can be freed by a collection during the native call (Mis.Torch.Adam).
        double c = _config.ClipCoef;
        using Scalar one = 1.0.ToScalar(), two = 2.ToScalar(), half = 0.5.ToScalar(), advEps = 1e-8.ToScalar(), entCoef = _config.EntCoef.ToScalar(), vfCoef = _config.VfCoef.ToScalar();
        using Scalar ratioLow = (1 - c).ToScalar(), ratioHigh = (1 + c).ToScalar(), valueLow = (-c).ToScalar(), valueHigh = c.ToScalar();
        var obs = tensor(_obs, [n, _observationSize]);
        var nextObs = tensor(_nextObs, [n, _observationSize]);
        var actions = tensor(_actions, [n, 1]);

        // The rollout as the acting policy saw it: log π(a|s), V(s) and V(s′), in one batch each.
        Tensor oldLogp, oldValues;
        var advantages = new float[n];
        using (no_grad())
        {
            oldLogp = _actor.call(obs).log_softmax(1).gather(1, actions).squeeze(1);
            oldValues = _critic.call(obs).squeeze(1);
            var values = oldValues.data<float>().ToArray();
            var nextValues = _critic.call(nextObs).squeeze(1).data<float>().ToArray();
            Gae(_rewards, values, nextValues, _terminated, _done, _config.Gamma, _config.GaeLambda, advantages);
        }
        var adv = tensor(advantages);
        var returns = adv.add(oldValues, one);

        var order = Enumerable.Range(0, n).Select(i => (long)i).ToArray();
        int minibatches = _config.NumMinibatches;
        for (int epoch = 0; epoch < _config.UpdateEpochs; epoch++)
        {
            _random.Shuffle(order);
            double approxKl = 0;
            for (int m = 0; m < minibatches; m++)
            {
                // Near-equal slices of the shuffled order: each has at least ⌊n / minibatches⌋ ≥ 2 transitions.
                int start = m * n / minibatches, end = (m + 1) * n / minibatches;
                using var inner = NewDisposeScope();
                var idx = tensor(order[start..end]);
                var mbObs = obs.index_select(0, idx);

                var logpAll = _actor.call(mbObs).log_softmax(1);
                var newLogp = logpAll.gather(1, actions.index_select(0, idx)).squeeze(1);
                var entropy = -(logpAll.exp() * logpAll).sum(1).mean();
                var logRatio = newLogp - oldLogp.index_select(0, idx);
                var ratio = logRatio.exp();

                var mbAdv = adv.index_select(0, idx);
                if (_config.NormAdv)
                    mbAdv = (mbAdv - mbAdv.mean()) / mbAdv.std().add(advEps, one);
                var policyLoss = torch.maximum(-mbAdv * ratio, -mbAdv * ratio.clamp(ratioLow, ratioHigh)).mean();

                var newValues = _critic.call(mbObs).squeeze(1);
                var mbReturns = returns.index_select(0, idx);
                Tensor valueLoss;
                if (_config.ClipVloss)
                {
                    var mbOldValues = oldValues.index_select(0, idx);
                    var clipped = mbOldValues.add((newValues - mbOldValues).clamp(valueLow, valueHigh), one);
                    valueLoss = half * torch.maximum((newValues - mbReturns).pow(two), (clipped - mbReturns).pow(two)).mean();
                }
                else
                {
                    valueLoss = half * (newValues - mbReturns).pow(two).mean();
                }

                var loss = (policyLoss - entCoef * entropy).add(vfCoef * valueLoss, one);
                _optimizer.zero_grad();
                loss.backward();
                nn.utils.clip_grad_norm_(_parameters, _config.MaxGradNorm);
                _optimizer.step();

                using (no_grad())
                    approxKl = (ratio.sub(one) - logRatio).mean().item<float>();
                LastLosses = (policyLoss.item<float>(), valueLoss.item<float>(), entropy.item<float>(), (float)approxKl);
            }
            if (_config.TargetKl > 0 && approxKl > _config.TargetKl)
                break;
        }
        _actorMirror.Refresh(_actor);
        Updates++;
    }

    // ---- saving ----------------------------------------------------------------------------

    private string Identity => $"ppo observations={_observationSize} actions={_actionCount} {_config}";

    /// <inheritdoc />
    public void Save(string directory)
    {
        AgentFiles.WriteIdentity(directory, Identity);
        _actor.save(Path.Combine(directory, "actor.dat"));
        _critic.save(Path.Combine(directory, "critic.dat"));
        _optimizer.save_state_dict(Path.Combine(directory, "optimizer.dat"));
        using var writer = new BinaryWriter(File.Create(Path.Combine(directory, "state.dat")));
        writer.Write(Steps);
        writer.Write(Updates);
        writer.Write(_stored);
        AgentFiles.Write(writer, _obs);
        AgentFiles.Write(writer, _nextObs);
        AgentFiles.Write(writer, _rewards);
        AgentFiles.Write(writer, _actions);
        AgentFiles.Write(writer, _terminated);
        AgentFiles.Write(writer, _done);
    }

    /// <inheritdoc />
    public void Load(string directory)
    {
        AgentFiles.CheckIdentity(directory, Identity);
        _actor.load(Path.Combine(directory, "actor.dat"));
        _critic.load(Path.Combine(directory, "critic.dat"));
        _optimizer.load_state_dict(Path.Combine(directory, "optimizer.dat"));
        using var reader = new BinaryReader(File.OpenRead(Path.Combine(directory, "state.dat")));
        Steps = reader.ReadInt64();
        Updates = reader.ReadInt64();
        _stored = reader.ReadInt32();
        AgentFiles.Read(reader, _obs);
        AgentFiles.Read(reader, _nextObs);
        AgentFiles.Read(reader, _rewards);
        AgentFiles.Read(reader, _actions);
        AgentFiles.Read(reader, _terminated);
        AgentFiles.Read(reader, _done);
        _actorMirror.Refresh(_actor);
        _random = AgentFiles.ResumedRandom(_seed, Steps);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _optimizer.Dispose();
        _actor.Dispose();
        _critic.Dispose();
    }
}
