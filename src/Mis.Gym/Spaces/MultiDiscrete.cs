namespace Mis.Gym.Spaces;

/// <summary>
/// Vectors whose element <c>i</c> is one of <c>0 .. Nvec[i] - 1</c> (Gymnasium's
/// <c>MultiDiscrete(nvec)</c>): several discrete choices made at once.
/// </summary>
public sealed class MultiDiscrete : Space<int[]>, IEquatable<MultiDiscrete>
{
    private readonly int[] _nvec;

    /// <summary>A space with one discrete dimension per element of <paramref name="nvec"/>.</summary>
    /// <param name="nvec">Number of choices per dimension, each at least 1; at least one dimension.</param>
    /// <exception cref="ArgumentException">An empty vector or a count below 1.</exception>
    public MultiDiscrete(params int[] nvec)
    {
        ArgumentNullException.ThrowIfNull(nvec);
        if (nvec.Length == 0)
            throw new ArgumentException("expected at least one dimension", nameof(nvec));
        for (int i = 0; i < nvec.Length; i++)
        {
            if (nvec[i] < 1)
                throw new ArgumentException($"nvec[{i}] = {nvec[i]}: every dimension needs at least 1 choice", nameof(nvec));
        }
        _nvec = (int[])nvec.Clone();
    }

    /// <summary>Number of choices per dimension.</summary>
    public IReadOnlyList<int> Nvec => _nvec;

    /// <inheritdoc />
    public override IReadOnlyList<int> Shape => [_nvec.Length];

    /// <inheritdoc />
    public override int[] Sample(Random rng) => Sample(rng, null);

    /// <summary>
    /// One masked <see cref="Discrete"/> sample per dimension: <c>mask[i]</c> (or null) masks
    /// dimension <c>i</c>; a dimension whose mask marks nothing valid gives 0, as in Gymnasium.
    /// </summary>
    /// <param name="rng">The random source.</param>
    /// <param name="mask">Per-dimension masks (each null or of length <c>Nvec[i]</c>), or null.</param>
    /// <returns>A new vector.</returns>
    /// <exception cref="ArgumentException">The mask has the wrong number of dimensions or elements.</exception>
    public int[] Sample(Random rng, bool[]?[]? mask)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (mask is not null)
            CheckMaskLength(mask.Length, _nvec.Length, ToString());
        var value = new int[_nvec.Length];
        for (int i = 0; i < value.Length; i++)
            value[i] = new Discrete(_nvec[i]).Sample(rng, mask?[i]);
        return value;
    }

    /// <inheritdoc />
    public override bool Contains(int[] value)
    {
        if (value is null || value.Length != _nvec.Length)
            return false;
        for (int i = 0; i < value.Length; i++)
        {
            if (value[i] < 0 || value[i] >= _nvec[i])
                return false;
        }
        return true;
    }

    /// <inheritdoc />
    public override bool ValuesEqual(int[] a, int[] b) => a.AsSpan().SequenceEqual(b);

    /// <inheritdoc />
    public override string Format(int[] value) => value is null ? "null" : $"[{string.Join(", ", value)}]";

    /// <inheritdoc />
    public bool Equals(MultiDiscrete? other) => other is not null && _nvec.AsSpan().SequenceEqual(other._nvec);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as MultiDiscrete);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (int n in _nvec)
            hash.Add(n);
        return hash.ToHashCode();
    }

    /// <inheritdoc />
    public override string ToString() => $"MultiDiscrete([{string.Join(", ", _nvec)}])";
}
