using Mis.Gym.Spaces;

namespace Mis.Gym.Wrappers;

/// <summary>
/// Normalises each observation element to roughly zero mean and unit variance with running
/// statistics (Gymnasium's <c>NormalizeObservation</c>): <c>(obs - mean) / sqrt(var + epsilon)</c>,
/// the statistics updated with every observation of reset and step before it is normalised.
/// Observations become unbounded, so the observation space becomes an unbounded box.
/// </summary>
/// <typeparam name="TAct">Action type.</typeparam>
public sealed class NormalizeObservation<TAct> : Wrapper<float[], TAct>
{
    private readonly RunningMeanStd _stats;
    private readonly Box _space;

    /// <summary>Wraps <paramref name="env"/>, whose observation space must be a <see cref="Box"/>.</summary>
    /// <param name="env">The environment.</param>
    /// <param name="epsilon">Added to the variance before the square root, positive.</param>
    /// <exception cref="ArgumentException">The observation space is not a box.</exception>
    public NormalizeObservation(IEnv<float[], TAct> env, double epsilon = 1e-8)
        : base(env)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(epsilon);
        if (env.ObservationSpace is not Box box)
            throw new ArgumentException($"expected a Box observation space, got {env.ObservationSpace}", nameof(env));
        Epsilon = epsilon;
        _stats = new RunningMeanStd(box.Size);
        _space = new Box(
            Enumerable.Repeat(float.NegativeInfinity, box.Size).ToArray(),
            Enumerable.Repeat(float.PositiveInfinity, box.Size).ToArray(),
            [.. box.Shape]);
    }

    /// <summary>Added to the variance before the square root.</summary>
    public double Epsilon { get; }

    /// <summary>The running statistics (read them to save a trained agent's normalisation).</summary>
    public RunningMeanStd Statistics => _stats;

    /// <summary>Whether the statistics are updated (turn off for evaluation).</summary>
    public bool UpdateRunningStats { get; set; } = true;

    /// <inheritdoc />
    public override Space<float[]> ObservationSpace => _space;

    /// <inheritdoc />
    protected override ResetResult<float[]> ResetCore(int? seed, IReadOnlyDictionary<string, object>? options)
    {
        var result = Env.Reset(seed, options);
        return result with { Observation = Normalize(result.Observation) };
    }

    /// <inheritdoc />
    protected override StepResult<float[]> StepCore(TAct action)
    {
        var result = Env.Step(action);
        return result with { Observation = Normalize(result.Observation) };
    }

    private float[] Normalize(float[] obs)
    {
        if (UpdateRunningStats)
            _stats.Update(obs);
        var normalized = new float[obs.Length];
        for (int i = 0; i < obs.Length; i++)
            normalized[i] = (float)((obs[i] - _stats.Mean[i]) / Math.Sqrt(_stats.Var[i] + Epsilon));
        return normalized;
    }
}
