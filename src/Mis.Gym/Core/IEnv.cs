using Mis.Gym.Spaces;

namespace Mis.Gym;

/// <summary>
/// A reinforcement-learning environment with Gymnasium's contract (<c>gymnasium.Env</c>):
/// <list type="bullet">
/// <item><see cref="Reset"/> starts an episode and returns the first observation and an info dictionary.
/// Only a reset with a seed re-seeds the environment's random source; a reset without one continues
/// the current stream (or, before any seed, starts from an unpredictable one).</item>
/// <item><see cref="Step"/> applies one action. <see cref="StepResult{TObs}.Terminated"/> says the
/// episode's MDP reached a terminal state (task submitted, workload killed); a value bootstrapped
/// from the next state must then be zero. <see cref="StepResult{TObs}.Truncated"/> says a limit
/// outside the MDP stopped it (step or time budget); the next state still has value. Both can be true.</item>
/// <item>Calling <see cref="Step"/> before <see cref="Reset"/>, or after a step that ended the
/// episode, throws <see cref="InvalidOperationException"/>; an action outside
/// <see cref="ActionSpace"/> throws <see cref="ArgumentOutOfRangeException"/>.</item>
/// <item><see cref="Close"/> releases resources and may be called any number of times.</item>
/// </list>
/// </summary>
/// <typeparam name="TObs">Observation type (an element of <see cref="ObservationSpace"/>).</typeparam>
/// <typeparam name="TAct">Action type (an element of <see cref="ActionSpace"/>).</typeparam>
public interface IEnv<TObs, TAct> : IDisposable
{
    /// <summary>Every observation <see cref="Reset"/> and <see cref="Step"/> return belongs to this space.</summary>
    Space<TObs> ObservationSpace { get; }

    /// <summary>The actions <see cref="Step"/> accepts.</summary>
    Space<TAct> ActionSpace { get; }

    /// <summary>Starts a new episode.</summary>
    /// <param name="seed">Re-seeds the environment's random source when given; null continues the current one.</param>
    /// <param name="options">Environment-specific reset options, or null.</param>
    /// <returns>The first observation and an info dictionary.</returns>
    ResetResult<TObs> Reset(int? seed = null, IReadOnlyDictionary<string, object>? options = null);

    /// <summary>Applies <paramref name="action"/> and advances the episode by one step.</summary>
    /// <param name="action">An element of <see cref="ActionSpace"/>.</param>
    /// <returns>Observation, reward, terminated, truncated and info.</returns>
    /// <exception cref="InvalidOperationException">No episode is running: call <see cref="Reset"/> first.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="action"/> is not in <see cref="ActionSpace"/>.</exception>
    StepResult<TObs> Step(TAct action);

    /// <summary>Releases the environment's resources. Safe to call more than once.</summary>
    void Close();
}

/// <summary>What <see cref="IEnv{TObs, TAct}.Reset"/> returns: <c>(obs, info)</c>.</summary>
/// <typeparam name="TObs">Observation type.</typeparam>
/// <param name="Observation">The episode's first observation.</param>
/// <param name="Info">Auxiliary diagnostics; never null.</param>
public readonly record struct ResetResult<TObs>(TObs Observation, Info Info);

/// <summary>What <see cref="IEnv{TObs, TAct}.Step"/> returns: <c>(obs, reward, terminated, truncated, info)</c>.</summary>
/// <typeparam name="TObs">Observation type.</typeparam>
/// <param name="Observation">The observation after the action.</param>
/// <param name="Reward">The reward for the transition.</param>
/// <param name="Terminated">The MDP reached a terminal state (do not bootstrap from <paramref name="Observation"/>).</param>
/// <param name="Truncated">A limit outside the MDP ended the episode (bootstrap from <paramref name="Observation"/>).</param>
/// <param name="Info">Auxiliary diagnostics; never null.</param>
public readonly record struct StepResult<TObs>(TObs Observation, double Reward, bool Terminated, bool Truncated, Info Info)
{
    /// <summary>The episode is over, either way: the next call must be a reset.</summary>
    public bool Done => Terminated || Truncated;
}
