using Mis.Gym.Spaces;

namespace Mis.Gym;

/// <summary>
/// Base class that holds the parts of the <see cref="IEnv{TObs, TAct}"/> contract every environment
/// shares, so a concrete environment only writes its dynamics (<see cref="ResetCore"/>,
/// <see cref="StepCore"/>): seeding (<see cref="NpRandom"/>, re-created only by a seeded reset, as
/// Gymnasium's <c>np_random</c>), the episode lifecycle (no step before a reset or after the
/// episode ended), action validation, and idempotent <see cref="Close"/>.
/// </summary>
/// <typeparam name="TObs">Observation type.</typeparam>
/// <typeparam name="TAct">Action type.</typeparam>
public abstract class Env<TObs, TAct> : IEnv<TObs, TAct>
{
    private Random? _random;
    private EpisodeState _state = EpisodeState.NotStarted;
    private bool _closed;

    private enum EpisodeState { NotStarted, Running, Ended }

    /// <inheritdoc />
    public abstract Space<TObs> ObservationSpace { get; }

    /// <inheritdoc />
    public abstract Space<TAct> ActionSpace { get; }

    /// <summary>
    /// The environment's random source. A seeded <see cref="Reset"/> replaces it with
    /// <c>new Random(seed)</c>; before any seed it is seeded unpredictably, as Gymnasium does.
    /// </summary>
    protected Random NpRandom => _random ??= new Random();

    /// <summary>The seed of the last seeded reset, or null when never seeded.</summary>
    public int? NpRandomSeed { get; private set; }

    /// <inheritdoc />
    public ResetResult<TObs> Reset(int? seed = null, IReadOnlyDictionary<string, object>? options = null)
    {
        ObjectDisposedException.ThrowIf(_closed, this);
        if (seed is { } s)
        {
            _random = new Random(s);
            NpRandomSeed = s;
        }
        var result = ResetCore(options);
        _state = EpisodeState.Running;
        return result;
    }

    /// <inheritdoc />
    public StepResult<TObs> Step(TAct action)
    {
        ObjectDisposedException.ThrowIf(_closed, this);
        if (_state != EpisodeState.Running)
        {
            throw new InvalidOperationException(_state == EpisodeState.NotStarted
                ? $"{GetType().Name}.Step called before Reset: call Reset to start an episode"
                : $"{GetType().Name}.Step called after the episode ended (terminated or truncated): call Reset first");
        }
        if (!ActionSpace.Contains(action))
            throw new ArgumentOutOfRangeException(nameof(action), action, $"expected an action in {ActionSpace}");
        var result = StepCore(action);
        if (result.Done)
            _state = EpisodeState.Ended;
        return result;
    }

    /// <inheritdoc />
    public void Close()
    {
        if (_closed)
            return;
        _closed = true;
        CloseCore();
    }

    /// <summary>Same as <see cref="Close"/>.</summary>
    public void Dispose()
    {
        Close();
        GC.SuppressFinalize(this);
    }

    /// <summary>Starts an episode; <see cref="NpRandom"/> is already seeded when a seed was given.</summary>
    /// <param name="options">The reset options, or null.</param>
    /// <returns>The first observation and info.</returns>
    protected abstract ResetResult<TObs> ResetCore(IReadOnlyDictionary<string, object>? options);

    /// <summary>One step of a running episode; <paramref name="action"/> is already known to be in <see cref="ActionSpace"/>.</summary>
    /// <param name="action">The action.</param>
    /// <returns>The step's result.</returns>
    protected abstract StepResult<TObs> StepCore(TAct action);

    /// <summary>Releases resources; called once, by the first <see cref="Close"/>.</summary>
    protected virtual void CloseCore()
    {
    }
}
