namespace Mis.Anomaly.Models;

/// <summary>
/// Fixed-length features of a syscall window for the PCA model: hashed 1-gram and n-gram
/// frequencies, each block square-rooted (the Hellinger embedding: a frequency vector of unit norm,
/// so that common calls do not drown out rare ones and the Euclidean distance PCA uses is a
/// sensible distance between distributions).
/// </summary>
/// <param name="UnigramBuckets">Buckets for single syscalls (a power of two).</param>
/// <param name="NgramBuckets">Buckets for hashed syscall n-grams (a power of two).</param>
/// <param name="NgramLength">The n of those n-grams, 2..6.</param>
public readonly record struct NgramFeatures(int UnigramBuckets, int NgramBuckets, int NgramLength)
{
    /// <summary>Length of the feature vector.</summary>
    internal int Dimension => UnigramBuckets + NgramBuckets;

    internal void Validate()
    {
        if (UnigramBuckets < 1 || !int.IsPow2(UnigramBuckets))
            throw new ArgumentOutOfRangeException(nameof(UnigramBuckets), UnigramBuckets, "must be a power of two");
        if (NgramBuckets < 1 || !int.IsPow2(NgramBuckets))
            throw new ArgumentOutOfRangeException(nameof(NgramBuckets), NgramBuckets, "must be a power of two");
        if (NgramLength is < 2 or > 6)
            throw new ArgumentOutOfRangeException(nameof(NgramLength), NgramLength, "must be 2..6");
    }

    /// <summary>
    /// Counts the window's features into <paramref name="counts"/> (all zero on entry) and lists the
    /// indexes touched, each once, in <paramref name="touched"/>; returns how many. <paramref name="touched"/>
    /// needs room for 2 × the window length.
    /// </summary>
    internal int Count(ReadOnlySpan<int> window, Span<int> counts, Span<int> touched)
    {
        int n = 0;
        ulong key = 0;
        for (int i = 0; i < window.Length; i++)
        {
            int u = window[i] & (UnigramBuckets - 1);
            if (counts[u]++ == 0)
                touched[n++] = u;
            key = (key << 10 | (uint)Math.Min(window[i], 1023)) & KeyMask;
            if (i < NgramLength - 1)
                continue;
            int t = UnigramBuckets + Hash(key);
            if (counts[t]++ == 0)
                touched[n++] = t;
        }
        return n;
    }

    /// <summary>The feature value of index <paramref name="j"/> given its count in a window of <paramref name="length"/> syscalls.</summary>
    internal float Value(int j, int count, int length)
    {
        int total = j < UnigramBuckets ? length : length - NgramLength + 1;
        return total <= 0 ? 0 : MathF.Sqrt((float)count / total);
    }

    /// <summary>The dense feature vector of a window (for training).</summary>
    internal float[] Dense(ReadOnlySpan<int> window)
    {
        var counts = new int[Dimension];
        var touched = new int[2 * window.Length];
        int n = Count(window, counts, touched);
        var x = new float[Dimension];
        for (int k = 0; k < n; k++)
            x[touched[k]] = Value(touched[k], counts[touched[k]], window.Length);
        return x;
    }

    private ulong KeyMask => NgramLength == 6 ? (1UL << 60) - 1 : (1UL << 10 * NgramLength) - 1;

    // Fibonacci hashing of the packed n-gram (10 bits a syscall): cheap, and spreads nearby numbers apart.
    private int Hash(ulong key) => (int)((key * 0x9E3779B97F4A7C15UL) >> (64 - int.Log2(NgramBuckets)));
}
