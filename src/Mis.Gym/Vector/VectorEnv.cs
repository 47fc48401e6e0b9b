using Mis.Gym.Spaces;

namespace Mis.Gym.Vector;

/// <summary>What a vector environment's reset returns: one observation and info per sub-environment.</summary>
/// <typeparam name="TObs">Observation type.</typeparam>
/// <param name="Observations">Observation of sub-environment <c>i</c> at index <c>i</c>.</param>
/// <param name="Infos">Info of sub-environment <c>i</c> at index <c>i</c>.</param>
public sealed record VectorResetResult<TObs>(TObs[] Observations, Info[] Infos);

/// <summary>What a vector environment's step returns: one entry per sub-environment, fresh arrays every call.</summary>
/// <typeparam name="TObs">Observation type.</typeparam>
/// <param name="Observations">Observations.</param>
/// <param name="Rewards">Rewards.</param>
/// <param name="Terminated">Terminated flags.</param>
/// <param name="Truncated">Truncated flags.</param>
/// <param name="Infos">Infos.</param>
public sealed record VectorStepResult<TObs>(TObs[] Observations, double[] Rewards, bool[] Terminated, bool[] Truncated, Info[] Infos);

/// <summary>
/// Runs <see cref="NumEnvs"/> copies of an environment as one batch (Gymnasium's <c>VectorEnv</c>),
/// with Gymnasium's default <b>next-step autoreset</b>:
/// <list type="bullet">
/// <item>The step on which a sub-environment terminates or truncates returns that episode's last
/// observation, reward and flags, as the sub-environment gave them.</item>
/// <item>The <em>next</em> <see cref="Step"/> call does not step that sub-environment: it resets it
/// (without a seed, so its random stream continues), ignores its action, and returns the reset
/// observation and info with reward 0, terminated = false and truncated = false.</item>
/// <item><see cref="Reset"/> resets every sub-environment and clears pending autoresets; with a
/// seed, sub-environment <c>i</c> is reset with <c>seed + i</c>.</item>
/// </list>
/// Subclasses choose only how the per-sub-environment work runs (<see cref="RunAll"/>): in turn
/// (<see cref="SyncVectorEnv{TObs, TAct}"/>) or each on its own thread
/// (<see cref="AsyncVectorEnv{TObs, TAct}"/>). Since each sub-environment's work depends on nothing
/// but its own state and action, both give identical results for the same seeds and actions.
/// </summary>
/// <typeparam name="TObs">Observation type of each sub-environment.</typeparam>
/// <typeparam name="TAct">Action type of each sub-environment.</typeparam>
public abstract class VectorEnv<TObs, TAct> : IDisposable
{
    private readonly IEnv<TObs, TAct>[] _envs;
    private readonly bool[] _autoreset;
    private bool _closed;

    /// <summary>Creates the sub-environments, one per factory call, on the calling thread.</summary>
    /// <param name="envFactories">One factory per sub-environment; at least one.</param>
    /// <exception cref="ArgumentException">No factory, or sub-environments with different spaces.</exception>
    protected VectorEnv(IReadOnlyList<Func<IEnv<TObs, TAct>>> envFactories)
    {
        ArgumentNullException.ThrowIfNull(envFactories);
        if (envFactories.Count == 0)
            throw new ArgumentException("expected at least one sub-environment factory", nameof(envFactories));
        _envs = new IEnv<TObs, TAct>[envFactories.Count];
        try
        {
            for (int i = 0; i < _envs.Length; i++)
                _envs[i] = envFactories[i]() ?? throw new ArgumentException($"factory {i} returned null", nameof(envFactories));
        }
        catch
        {
            foreach (var env in _envs)
                env?.Close();
            throw;
        }
        SingleObservationSpace = _envs[0].ObservationSpace;
        SingleActionSpace = _envs[0].ActionSpace;
        for (int i = 1; i < _envs.Length; i++)
        {
            if (!Equals(_envs[i].ObservationSpace, SingleObservationSpace) || !Equals(_envs[i].ActionSpace, SingleActionSpace))
                throw new ArgumentException($"sub-environment {i} has other spaces than sub-environment 0", nameof(envFactories));
        }
        _autoreset = new bool[_envs.Length];
    }

    /// <summary>Number of sub-environments.</summary>
    public int NumEnvs => _envs.Length;

    /// <summary>Observation space of one sub-environment.</summary>
    public Space<TObs> SingleObservationSpace { get; }

    /// <summary>Action space of one sub-environment.</summary>
    public Space<TAct> SingleActionSpace { get; }

    /// <summary>The sub-environments (for inspection; stepping them directly breaks autoreset bookkeeping).</summary>
    public IReadOnlyList<IEnv<TObs, TAct>> Envs => _envs;

    /// <summary>Resets every sub-environment.</summary>
    /// <param name="seed">When given, sub-environment <c>i</c> is seeded with <c>seed + i</c>; null continues each one's stream.</param>
    /// <param name="options">Reset options passed to every sub-environment.</param>
    /// <returns>Observations and infos.</returns>
    public VectorResetResult<TObs> Reset(int? seed = null, IReadOnlyDictionary<string, object>? options = null)
    {
        ObjectDisposedException.ThrowIf(_closed, this);
        var obs = new TObs[_envs.Length];
        var infos = new Info[_envs.Length];
        RunAll(i =>
        {
            var (o, info) = _envs[i].Reset(seed is { } s ? unchecked(s + i) : null, options);
            (obs[i], infos[i], _autoreset[i]) = (o, info, false);
        });
        return new VectorResetResult<TObs>(obs, infos);
    }

    /// <summary>Steps every sub-environment with its action, autoresetting as documented on the type.</summary>
    /// <param name="actions">One action per sub-environment.</param>
    /// <returns>Batched results.</returns>
    /// <exception cref="ArgumentException">Not exactly <see cref="NumEnvs"/> actions.</exception>
    public VectorStepResult<TObs> Step(TAct[] actions)
    {
        ObjectDisposedException.ThrowIf(_closed, this);
        ArgumentNullException.ThrowIfNull(actions);
        if (actions.Length != _envs.Length)
            throw new ArgumentException($"expected {_envs.Length} actions, one per sub-environment, got {actions.Length}", nameof(actions));
        var r = new VectorStepResult<TObs>(new TObs[_envs.Length], new double[_envs.Length],
            new bool[_envs.Length], new bool[_envs.Length], new Info[_envs.Length]);
        RunAll(i =>
        {
            if (_autoreset[i])
            {
                var (o, info) = _envs[i].Reset();
                (r.Observations[i], r.Infos[i]) = (o, info);
            }
            else
            {
                var s = _envs[i].Step(actions[i]);
                (r.Observations[i], r.Rewards[i], r.Terminated[i], r.Truncated[i], r.Infos[i]) =
                    (s.Observation, s.Reward, s.Terminated, s.Truncated, s.Info);
            }
            _autoreset[i] = r.Terminated[i] || r.Truncated[i];
        });
        return r;
    }

    /// <summary>Closes every sub-environment. Safe to call more than once.</summary>
    public void Close()
    {
        if (_closed)
            return;
        _closed = true;
        CloseCore();
        foreach (var env in _envs)
            env.Close();
    }

    /// <summary>Same as <see cref="Close"/>.</summary>
    public void Dispose()
    {
        Close();
        GC.SuppressFinalize(this);
    }

    /// <summary>
    /// Runs <paramref name="work"/> once for each sub-environment index and returns when all are
    /// done. Each call touches only its own index. If calls throw, the exception of the lowest
    /// index is rethrown; the batch is then in an undefined state and should be reset.
    /// </summary>
    /// <param name="work">The per-sub-environment work.</param>
    protected abstract void RunAll(Action<int> work);

    /// <summary>Stops whatever <see cref="RunAll"/> uses (threads); called once, before the sub-environments close.</summary>
    protected virtual void CloseCore()
    {
    }
}

/// <summary>Steps the sub-environments one after another on the calling thread (Gymnasium's <c>SyncVectorEnv</c>).</summary>
/// <typeparam name="TObs">Observation type.</typeparam>
/// <typeparam name="TAct">Action type.</typeparam>
public sealed class SyncVectorEnv<TObs, TAct> : VectorEnv<TObs, TAct>
{
    /// <summary>Creates the sub-environments.</summary>
    /// <param name="envFactories">One factory per sub-environment.</param>
    public SyncVectorEnv(IReadOnlyList<Func<IEnv<TObs, TAct>>> envFactories)
        : base(envFactories)
    {
    }

    /// <inheritdoc />
    protected override void RunAll(Action<int> work)
    {
        for (int i = 0; i < NumEnvs; i++)
            work(i);
    }
}
