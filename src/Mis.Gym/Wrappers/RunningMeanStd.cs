namespace Mis.Gym.Wrappers;

/// <summary>
/// Running per-element mean and variance, merged batch by batch with the parallel algorithm
/// (Chan et al.), exactly as Gymnasium's <c>RunningMeanStd</c>: it starts at mean 0, variance 1
/// and a pseudo-count of <c>1e-4</c>, so the first updates dominate quickly without dividing by zero.
/// </summary>
public sealed class RunningMeanStd
{
    private readonly double[] _mean;
    private readonly double[] _var;

    /// <summary>Statistics for vectors of <paramref name="size"/> elements.</summary>
    /// <param name="size">Number of elements.</param>
    /// <param name="epsilon">Initial pseudo-count.</param>
    public RunningMeanStd(int size, double epsilon = 1e-4)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        _mean = new double[size];
        _var = new double[size];
        Array.Fill(_var, 1.0);
        Count = epsilon;
    }

    /// <summary>Running mean per element.</summary>
    public IReadOnlyList<double> Mean => _mean;

    /// <summary>Running (population) variance per element.</summary>
    public IReadOnlyList<double> Var => _var;

    /// <summary>Samples seen, plus the initial pseudo-count.</summary>
    public double Count { get; private set; }

    /// <summary>Adds one sample.</summary>
    /// <param name="x">A vector of the tracked size.</param>
    public void Update(ReadOnlySpan<double> x)
    {
        if (x.Length != _mean.Length)
            throw new ArgumentException($"expected {_mean.Length} elements, got {x.Length}", nameof(x));
        // A batch of one: batch mean x, batch variance 0, batch count 1.
        double total = Count + 1;
        for (int i = 0; i < x.Length; i++)
        {
            double delta = x[i] - _mean[i];
            _mean[i] += delta / total;
            _var[i] = (_var[i] * Count + delta * delta * Count / total) / total;
        }
        Count = total;
    }

    /// <summary>Adds one float sample (an observation).</summary>
    /// <param name="x">A vector of the tracked size.</param>
    public void Update(ReadOnlySpan<float> x)
    {
        Span<double> wide = x.Length <= 256 ? stackalloc double[x.Length] : new double[x.Length];
        for (int i = 0; i < x.Length; i++)
            wide[i] = x[i];
        Update(wide);
    }
}
