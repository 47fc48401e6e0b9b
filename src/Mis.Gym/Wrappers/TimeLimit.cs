namespace Mis.Gym.Wrappers;

/// <summary>
/// Truncates episodes after <see cref="MaxEpisodeSteps"/> steps (Gymnasium's <c>TimeLimit</c>): the
/// step that reaches the limit reports <c>truncated = true</c>, whether or not it also terminated.
/// A step budget is a limit outside the MDP, so it truncates and never terminates.
/// </summary>
/// <typeparam name="TObs">Observation type.</typeparam>
/// <typeparam name="TAct">Action type.</typeparam>
public sealed class TimeLimit<TObs, TAct> : Wrapper<TObs, TAct>
{
    /// <summary>Wraps <paramref name="env"/> with a step budget.</summary>
    /// <param name="env">The environment.</param>
    /// <param name="maxEpisodeSteps">Steps per episode, at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxEpisodeSteps"/> is less than 1.</exception>
    public TimeLimit(IEnv<TObs, TAct> env, int maxEpisodeSteps)
        : base(env)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEpisodeSteps, 1);
        MaxEpisodeSteps = maxEpisodeSteps;
    }

    /// <summary>The step budget of an episode.</summary>
    public int MaxEpisodeSteps { get; }

    /// <summary>Steps taken in the current episode.</summary>
    public int ElapsedSteps { get; private set; }

    /// <inheritdoc />
    protected override ResetResult<TObs> ResetCore(int? seed, IReadOnlyDictionary<string, object>? options)
    {
        ElapsedSteps = 0;
        return Env.Reset(seed, options);
    }

    /// <inheritdoc />
    protected override StepResult<TObs> StepCore(TAct action)
    {
        var result = Env.Step(action);
        ElapsedSteps++;
        return ElapsedSteps >= MaxEpisodeSteps ? result with { Truncated = true } : result;
    }
}
