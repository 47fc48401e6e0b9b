namespace Mis.Gym.Spaces;

/// <summary>
/// The integers <c>Start, Start + 1, ..., Start + N - 1</c> (Gymnasium's <c>Discrete(n, start)</c>).
/// The usual action space: one index per concrete action.
/// </summary>
public sealed class Discrete : Space<int>, IEquatable<Discrete>
{
    /// <summary>A space of <paramref name="n"/> integers from <paramref name="start"/>.</summary>
    /// <param name="n">Number of elements, at least 1.</param>
    /// <param name="start">The smallest element.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="n"/> is less than 1.</exception>
    public Discrete(int n, int start = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        N = n;
        Start = start;
    }

    /// <summary>Number of elements.</summary>
    public int N { get; }

    /// <summary>The smallest element.</summary>
    public int Start { get; }

    /// <inheritdoc />
    public override IReadOnlyList<int> Shape => [];

    /// <inheritdoc />
    public override int Sample(Random rng) => Sample(rng, null);

    /// <summary>
    /// A uniformly chosen element among those <paramref name="mask"/> marks valid. As Gymnasium
    /// does, when the mask marks none valid the result is <see cref="Start"/>.
    /// </summary>
    /// <param name="rng">The random source.</param>
    /// <param name="mask">One flag per element (true = may be chosen), or null for no mask.</param>
    /// <returns>An element.</returns>
    /// <exception cref="ArgumentException">The mask does not have <see cref="N"/> elements.</exception>
    public int Sample(Random rng, bool[]? mask)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (mask is null)
            return Start + rng.Next(N);
        CheckMaskLength(mask.Length, N, ToString());
        int valid = 0;
        foreach (bool ok in mask)
            valid += ok ? 1 : 0;
        if (valid == 0)
            return Start;
        int pick = rng.Next(valid);
        for (int i = 0; ; i++)
        {
            if (mask[i] && pick-- == 0)
                return Start + i;
        }
    }

    /// <inheritdoc />
    public override bool Contains(int value) => value >= Start && value - Start < N;

    /// <inheritdoc />
    public override bool ValuesEqual(int a, int b) => a == b;

    /// <inheritdoc />
    public bool Equals(Discrete? other) => other is not null && N == other.N && Start == other.Start;

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as Discrete);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(N, Start);

    /// <inheritdoc />
    public override string ToString() => Start == 0 ? $"Discrete({N})" : $"Discrete({N}, start={Start})";
}
