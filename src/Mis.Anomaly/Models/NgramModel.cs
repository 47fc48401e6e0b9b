using System.Text.Json;
using System.Text.Json.Nodes;

namespace Mis.Anomaly.Models;

/// <summary>Hyperparameters of <see cref="NgramModel"/>.</summary>
public sealed record NgramOptions
{
    /// <summary>Length of the sequences in the normal database; 6 is STIDE's classic choice. 1..6.</summary>
    public int N { get; init; } = 6;

    /// <summary>Syscalls per scored window (STIDE's locality frame). Default 64.</summary>
    public int WindowSize { get; init; } = 64;

    /// <summary>Syscalls between scored windows. Default 16.</summary>
    public int Stride { get; init; } = 16;

    /// <summary>An n-gram seen fewer times than this in training counts as unseen (t-STIDE); 1 is plain STIDE.</summary>
    public int MinCount { get; init; } = 1;

    /// <summary>
    /// What a whole trace scores offline (<see cref="TraceScores"/>): <c>trace</c>, the share of all
    /// its N-grams never seen, or <c>window</c>, the highest window's share (what the online
    /// monitor's running maximum reaches). Default <c>trace</c>. Model files without it score <c>window</c>.
    /// </summary>
    public string TraceScore { get; init; } = TraceScores.Trace;

    internal void Validate()
    {
        TraceScores.Validate(TraceScore);
        ArgumentOutOfRangeException.ThrowIfLessThan(N, 1, nameof(N));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(N, NgramModel.MaxN, nameof(N));
        ArgumentOutOfRangeException.ThrowIfLessThan(MinCount, 1, nameof(MinCount));
        new WindowSpec(WindowSize, Stride).Validate();
    }
}

/// <summary>
/// STIDE (Forrest, Hofmeyr, Somayaji, Longstaff 1996; Warrender et al. 1999): the database of every
/// length-N syscall sequence seen in normal traces; a window's raw score is the fraction of its
/// N-grams that are not in the database (the locality-frame mismatch rate), 0..1; a whole trace's,
/// by default, the share of all its N-grams not in it (<see cref="NgramOptions.TraceScore"/>).
/// </summary>
public sealed class NgramModel : AnomalyModel
{
    /// <summary>Longest N: six 10-bit syscall codes fill a 64-bit key with room for a length tag.</summary>
    internal const int MaxN = 6;

    private readonly HashSet<ulong> _known;

    private NgramModel(NgramOptions options, HashSet<ulong> known)
    {
        Options = options;
        _known = known;
    }

    /// <summary>The hyperparameters.</summary>
    internal NgramOptions Options { get; }

    /// <summary>Distinct n-grams in the normal database.</summary>
    internal int DatabaseSize => _known.Count;

    internal override string Algo => Algorithms.Ngram;

    /// <inheritdoc />
    public override WindowSpec Windows => new(Options.WindowSize, Options.Stride);

    internal override JsonObject Hyperparameters => (JsonObject)JsonSerializer.SerializeToNode(Options, AnomalyJson.Default.NgramOptions)!;

    internal override bool ScoresWholeTraces => Options.TraceScore == TraceScores.Trace;

    // ---- the algorithm ---------------------------------------------------------------------

    /// <summary>Builds the normal database from <paramref name="traces"/>.</summary>
    internal static NgramModel Fit(IReadOnlyList<int[]> traces, NgramOptions options)
    {
        options.Validate();
        var counts = new Dictionary<ulong, int>();
        foreach (var trace in traces)
        {
            if (trace.Length < options.N)
            {
                // A trace shorter than N is one short sequence (rare: every process makes dozens).
                Bump(counts, ShortKey(trace));
                continue;
            }
            for (int end = options.N; end <= trace.Length; end++)
                Bump(counts, Key(trace.AsSpan(end - options.N, options.N)));
        }
        var known = counts.Where(kv => kv.Value >= options.MinCount).Select(kv => kv.Key).ToHashSet();
        return new NgramModel(options, known);
    }

    internal override double ScoreWindow(ReadOnlySpan<int> window)
    {
        int n = Options.N;
        if (window.Length < n)
            return _known.Contains(ShortKey(window)) ? 0 : 1;
        int grams = window.Length - n + 1, misses = 0;
        for (int end = n; end <= window.Length; end++)
            misses += _known.Contains(Key(window.Slice(end - n, n))) ? 0 : 1;
        return (double)misses / grams;
    }

    /// <summary>
    /// The share of the trace's N-grams never seen, or (<c>trace_score = "window"</c>) the highest
    /// window's share; both in one pass, each N-gram looked up once.
    /// </summary>
    internal override double ScoreTrace(ReadOnlySpan<int> trace)
    {
        int n = Options.N;
        if (trace.Length < n || (trace.Length <= Options.WindowSize && !ScoresWholeTraces))
            return ScoreWindow(trace);
        // misses[i] = unseen n-grams among those ending before position i (prefix sums).
        var misses = new int[trace.Length + 1];
        ulong key = 0;
        for (int i = 0; i < trace.Length; i++)
        {
            key = Roll(key, trace[i], n);
            misses[i + 1] = misses[i] + (i >= n - 1 && !_known.Contains(key) ? 1 : 0);
        }
        if (ScoresWholeTraces)
            return (double)misses[trace.Length] / (trace.Length - n + 1);
        double max = 0;
        foreach (int end in Windows.Ends(trace.Length))
        {
            int start = Math.Max(0, end - Options.WindowSize);
            int grams = end - start - n + 1;
            max = Math.Max(max, (double)(misses[end] - misses[start + n - 1]) / grams);
        }
        return max;
    }

    // ---- keys: 10 bits per syscall, oldest in the highest bits --------------------------------

    private static ulong Code(int syscall) => (ulong)Math.Min(syscall, 1023);

    private static ulong Key(ReadOnlySpan<int> gram)
    {
        ulong key = 0;
        foreach (int s in gram)
            key = key << 10 | Code(s);
        return key;
    }

    private static ulong Roll(ulong key, int syscall, int n) =>
        (key << 10 | Code(syscall)) & (n == MaxN ? (1UL << 60) - 1 : (1UL << 10 * n) - 1);

    // Sequences shorter than N get their length in the top four bits, so they never equal a full key.
    private static ulong ShortKey(ReadOnlySpan<int> s) => (ulong)(s.Length + 1) << 60 | Key(s);

    private static void Bump(Dictionary<ulong, int> counts, ulong key) =>
        counts[key] = counts.GetValueOrDefault(key) + 1;

    // ---- persistence ------------------------------------------------------------------------

    internal override void SavePayload(Stream stream)
    {
        using var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        w.Write(_known.Count);
        foreach (ulong key in _known.Order())
            w.Write(key);
    }

    internal static NgramModel Load(JsonObject hyperparameters, Stream payload)
    {
        var options = TraceScores.WithSavedDefault(hyperparameters).Deserialize(AnomalyJson.Default.NgramOptions)
            ?? throw new InvalidDataException("ngram hyperparameters missing");
        options.Validate();
        using var r = new BinaryReader(payload);
        int count = r.ReadInt32();
        var known = new HashSet<ulong>(count);
        for (int i = 0; i < count; i++)
            known.Add(r.ReadUInt64());
        return new NgramModel(options, known);
    }
}
