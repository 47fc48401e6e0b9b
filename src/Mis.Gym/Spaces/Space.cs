namespace Mis.Gym.Spaces;

/// <summary>
/// The set an observation or action belongs to (Gymnasium's <c>gymnasium.spaces.Space</c>).
/// Spaces are immutable values: equal bounds make equal spaces. Sampling never touches a random
/// source of its own: the caller passes one, so a seeded caller gets reproducible samples.
/// </summary>
/// <typeparam name="T">The element type.</typeparam>
public abstract class Space<T>
{
    /// <summary>The shape of an element (empty for a scalar, as numpy's <c>()</c>).</summary>
    public abstract IReadOnlyList<int> Shape { get; }

    /// <summary>A uniformly chosen element (for unbounded boxes, see <see cref="Box.Sample(Random)"/>).</summary>
    /// <param name="rng">The random source to draw from.</param>
    /// <returns>An element of this space.</returns>
    public abstract T Sample(Random rng);

    /// <summary>Whether <paramref name="value"/> is an element of this space (right type, shape and bounds).</summary>
    /// <param name="value">The value to test.</param>
    /// <returns>True when it belongs to the space.</returns>
    public abstract bool Contains(T value);

    /// <summary>Element equality for this space's values (arrays compare element by element).</summary>
    /// <param name="a">One value.</param>
    /// <param name="b">The other value.</param>
    /// <returns>True when equal.</returns>
    public abstract bool ValuesEqual(T a, T b);

    /// <summary>What is wrong with the space itself, or null when it is well formed.</summary>
    /// <returns>A description of the problem, or null.</returns>
    public virtual string? Validate() => null;

    /// <summary>A short text form of a value, for messages.</summary>
    /// <param name="value">The value.</param>
    /// <returns>The text.</returns>
    public virtual string Format(T value) => value?.ToString() ?? "null";

    private protected static void CheckMaskLength(int length, int expected, string what)
    {
        if (length != expected)
            throw new ArgumentException($"{what}: expected a mask of {expected} elements, got {length}", "mask");
    }
}
