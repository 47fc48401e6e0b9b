using Mis.Gym.Spaces;

namespace Mis.Gym.Wrappers;

/// <summary>
/// Base of every wrapper (Gymnasium's <c>gymnasium.Wrapper</c>): forwards to <see cref="Env"/> and
/// lets a subclass change what passes through. It enforces the episode lifecycle itself, because
/// a wrapper can end an episode the inner environment considers running (<see cref="TimeLimit{TObs, TAct}"/>):
/// stepping after the wrapper reported terminated or truncated throws, whatever the inner
/// environment would do.
/// </summary>
/// <typeparam name="TObs">Observation type.</typeparam>
/// <typeparam name="TAct">Action type.</typeparam>
public abstract class Wrapper<TObs, TAct> : IEnv<TObs, TAct>
{
    private bool _ended;
    private bool _closed;

    /// <summary>Wraps <paramref name="env"/>.</summary>
    /// <param name="env">The environment to wrap; this wrapper owns it from now on (closing closes it).</param>
    protected Wrapper(IEnv<TObs, TAct> env)
    {
        ArgumentNullException.ThrowIfNull(env);
        Env = env;
    }

    /// <summary>The wrapped environment.</summary>
    public IEnv<TObs, TAct> Env { get; }

    /// <inheritdoc />
    public virtual Space<TObs> ObservationSpace => Env.ObservationSpace;

    /// <inheritdoc />
    public Space<TAct> ActionSpace => Env.ActionSpace;

    /// <inheritdoc />
    public ResetResult<TObs> Reset(int? seed = null, IReadOnlyDictionary<string, object>? options = null)
    {
        var result = ResetCore(seed, options);
        _ended = false;
        return result;
    }

    /// <inheritdoc />
    public StepResult<TObs> Step(TAct action)
    {
        if (_ended && !_closed)
            throw new InvalidOperationException($"{GetType().Name}.Step called after the episode ended (terminated or truncated): call Reset first");
        var result = StepCore(action);
        _ended = result.Done;
        return result;
    }

    /// <inheritdoc />
    public void Close()
    {
        if (_closed)
            return;
        _closed = true;
        Env.Close();
    }

    /// <summary>Same as <see cref="Close"/>.</summary>
    public void Dispose()
    {
        Close();
        GC.SuppressFinalize(this);
    }

    /// <summary>Resets the inner environment; override to transform the result.</summary>
    /// <param name="seed">The seed, passed on.</param>
    /// <param name="options">The options, passed on.</param>
    /// <returns>The (transformed) reset result.</returns>
    protected virtual ResetResult<TObs> ResetCore(int? seed, IReadOnlyDictionary<string, object>? options) => Env.Reset(seed, options);

    /// <summary>Steps the inner environment; override to transform the result.</summary>
    /// <param name="action">The action, passed on.</param>
    /// <returns>The (transformed) step result.</returns>
    protected virtual StepResult<TObs> StepCore(TAct action) => Env.Step(action);
}
