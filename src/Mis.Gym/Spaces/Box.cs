namespace Mis.Gym.Spaces;

/// <summary>
/// Float32 vectors with per-element bounds <c>Low[i] &lt;= x[i] &lt;= High[i]</c> (Gymnasium's
/// <c>Box(low, high, dtype=float32)</c>), stored flat in row-major order of <see cref="Shape"/>.
/// Bounds may be infinite; NaN is never an element.
/// </summary>
public sealed class Box : Space<float[]>, IEquatable<Box>
{
    private readonly float[] _low;
    private readonly float[] _high;
    private readonly int[] _shape;

    /// <summary>A box with the given per-element bounds, as a vector of their length.</summary>
    /// <param name="low">Lower bounds (may be <see cref="float.NegativeInfinity"/>).</param>
    /// <param name="high">Upper bounds (may be <see cref="float.PositiveInfinity"/>), as many as <paramref name="low"/>.</param>
    /// <exception cref="ArgumentException">Lengths differ, a bound is NaN, or a low bound exceeds its high bound.</exception>
    public Box(float[] low, float[] high)
        : this(low, high, [low?.Length ?? 0])
    {
    }

    /// <summary>A box of <paramref name="shape"/> with the given flat per-element bounds.</summary>
    /// <param name="low">Lower bounds, one per element of the shape.</param>
    /// <param name="high">Upper bounds, one per element of the shape.</param>
    /// <param name="shape">The element shape; its product is the number of bounds.</param>
    /// <exception cref="ArgumentException">Sizes do not agree, a bound is NaN, or a low bound exceeds its high bound.</exception>
    public Box(float[] low, float[] high, int[] shape)
    {
        ArgumentNullException.ThrowIfNull(low);
        ArgumentNullException.ThrowIfNull(high);
        ArgumentNullException.ThrowIfNull(shape);
        long size = 1;
        foreach (int d in shape)
        {
            if (d < 0)
                throw new ArgumentException($"shape [{string.Join(", ", shape)}] has a negative dimension", nameof(shape));
            size *= d;
        }
        if (low.Length != size || high.Length != size)
            throw new ArgumentException($"shape [{string.Join(", ", shape)}] needs {size} bounds, got {low.Length} low and {high.Length} high", nameof(low));
        for (int i = 0; i < low.Length; i++)
        {
            if (float.IsNaN(low[i]) || float.IsNaN(high[i]) || low[i] > high[i])
                throw new ArgumentException($"element {i}: expected low <= high, got low {low[i]} and high {high[i]}", nameof(low));
        }
        _low = (float[])low.Clone();
        _high = (float[])high.Clone();
        _shape = (int[])shape.Clone();
    }

    /// <summary>A box of <paramref name="size"/> elements, each within [<paramref name="low"/>, <paramref name="high"/>].</summary>
    /// <param name="low">The lower bound of every element.</param>
    /// <param name="high">The upper bound of every element.</param>
    /// <param name="size">Number of elements.</param>
    /// <returns>The box.</returns>
    public static Box Uniform(float low, float high, int size) =>
        new(Enumerable.Repeat(low, size).ToArray(), Enumerable.Repeat(high, size).ToArray());

    /// <summary>Lower bounds, flat.</summary>
    public IReadOnlyList<float> Low => _low;

    /// <summary>Upper bounds, flat.</summary>
    public IReadOnlyList<float> High => _high;

    /// <summary>Number of elements (the product of <see cref="Shape"/>).</summary>
    public int Size => _low.Length;

    /// <inheritdoc />
    public override IReadOnlyList<int> Shape => _shape;

    /// <summary>
    /// A sample drawn as Gymnasium's <c>Box.sample</c> does, element by element: uniform on a
    /// bounded interval, standard normal when unbounded both ways, shifted exponential when bounded
    /// on one side.
    /// </summary>
    /// <param name="rng">The random source.</param>
    /// <returns>A new vector.</returns>
    public override float[] Sample(Random rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        var value = new float[_low.Length];
        for (int i = 0; i < value.Length; i++)
        {
            double lo = _low[i], hi = _high[i];
            bool boundedBelow = !double.IsNegativeInfinity(lo), boundedAbove = !double.IsPositiveInfinity(hi);
            double x = (boundedBelow, boundedAbove) switch
            {
                (true, true) => lo + (hi - lo) * rng.NextDouble(),
                (false, false) => Normal(rng),
                (true, false) => lo + Exponential(rng),
                _ => hi - Exponential(rng),
            };
            value[i] = Math.Clamp((float)x, _low[i], _high[i]);
        }
        return value;
    }

    /// <inheritdoc />
    public override bool Contains(float[] value)
    {
        if (value is null || value.Length != _low.Length)
            return false;
        for (int i = 0; i < value.Length; i++)
        {
            // Written so that NaN fails both comparisons and is rejected.
            if (!(value[i] >= _low[i] && value[i] <= _high[i]))
                return false;
        }
        return true;
    }

    /// <inheritdoc />
    public override bool ValuesEqual(float[] a, float[] b)
    {
        if (a.Length != b.Length)
            return false;
        for (int i = 0; i < a.Length; i++)
        {
            if (!a[i].Equals(b[i]))
                return false;
        }
        return true;
    }

    /// <inheritdoc />
    public override string Format(float[] value) =>
        value is null ? "null" : $"[{string.Join(", ", value.Select(v => v.ToString("G6", System.Globalization.CultureInfo.InvariantCulture)))}]";

    /// <inheritdoc />
    public bool Equals(Box? other) =>
        other is not null && _shape.AsSpan().SequenceEqual(other._shape) && ValuesEqual(_low, other._low) && ValuesEqual(_high, other._high);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as Box);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (int d in _shape)
            hash.Add(d);
        foreach (float v in _low)
            hash.Add(v);
        foreach (float v in _high)
            hash.Add(v);
        return hash.ToHashCode();
    }

    /// <inheritdoc />
    public override string ToString() => $"Box(shape=[{string.Join(", ", _shape)}], low={Format(_low)}, high={Format(_high)})";

    private static double Exponential(Random rng) => -Math.Log(1.0 - rng.NextDouble());

    // Box-Muller; one of the pair is discarded so each element consumes a fixed number of draws.
    private static double Normal(Random rng) =>
        Math.Sqrt(-2.0 * Math.Log(1.0 - rng.NextDouble())) * Math.Cos(2.0 * Math.PI * rng.NextDouble());
}
