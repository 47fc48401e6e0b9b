namespace Mis.Gym.Wrappers;

/// <summary>
/// Multiplies every reward by a constant (Gymnasium's <c>TransformReward(env, lambda r: scale * r)</c>).
/// The info's reward decomposition is left as the environment reported it: plots show the
/// environment's units, training sees the scaled ones.
/// </summary>
/// <typeparam name="TObs">Observation type.</typeparam>
/// <typeparam name="TAct">Action type.</typeparam>
public sealed class ScaleReward<TObs, TAct> : Wrapper<TObs, TAct>
{
    /// <summary>Wraps <paramref name="env"/>, scaling its rewards by <paramref name="scale"/>.</summary>
    /// <param name="env">The environment.</param>
    /// <param name="scale">The factor; finite.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="scale"/> is NaN or infinite.</exception>
    public ScaleReward(IEnv<TObs, TAct> env, double scale)
        : base(env)
    {
        if (!double.IsFinite(scale))
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "expected a finite factor");
        Scale = scale;
    }

    /// <summary>The factor applied to each reward.</summary>
    public double Scale { get; }

    /// <inheritdoc />
    protected override StepResult<TObs> StepCore(TAct action)
    {
        var result = Env.Step(action);
        return result with { Reward = result.Reward * Scale };
    }
}

/// <summary>
/// Scales rewards so that the discounted return has roughly unit variance (Gymnasium's
/// <c>NormalizeReward</c>, the "reward scaling" of PPO implementations): it keeps a running
/// variance of <c>G = gamma * G * (1 - terminated) + r</c> and divides each reward by
/// <c>sqrt(var + epsilon)</c>. The mean is not subtracted, so the sign of rewards is kept.
/// </summary>
/// <typeparam name="TObs">Observation type.</typeparam>
/// <typeparam name="TAct">Action type.</typeparam>
public sealed class NormalizeReward<TObs, TAct> : Wrapper<TObs, TAct>
{
    private readonly RunningMeanStd _returnStats = new(1);
    private readonly double[] _one = new double[1];
    private double _discountedReturn;

    /// <summary>Wraps <paramref name="env"/>.</summary>
    /// <param name="env">The environment.</param>
    /// <param name="gamma">Discount of the return whose variance is tracked, in [0, 1].</param>
    /// <param name="epsilon">Added to the variance before the square root, positive.</param>
    public NormalizeReward(IEnv<TObs, TAct> env, double gamma = 0.99, double epsilon = 1e-8)
        : base(env)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(gamma, 0.0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(gamma, 1.0);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(epsilon);
        Gamma = gamma;
        Epsilon = epsilon;
    }

    /// <summary>The discount of the tracked return.</summary>
    public double Gamma { get; }

    /// <summary>Added to the variance before the square root.</summary>
    public double Epsilon { get; }

    /// <summary>Whether the running statistics are updated (turn off for evaluation).</summary>
    public bool UpdateRunningStats { get; set; } = true;

    /// <inheritdoc />
    protected override StepResult<TObs> StepCore(TAct action)
    {
        var result = Env.Step(action);
        _discountedReturn = _discountedReturn * Gamma * (result.Terminated ? 0.0 : 1.0) + result.Reward;
        if (UpdateRunningStats)
        {
            _one[0] = _discountedReturn;
            _returnStats.Update(_one);
        }
        return result with { Reward = result.Reward / Math.Sqrt(_returnStats.Var[0] + Epsilon) };
    }
}
