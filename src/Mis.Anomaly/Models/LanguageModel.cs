using System.Text.Json;
using System.Text.Json.Nodes;

namespace Mis.Anomaly.Models;

/// <summary>Hyperparameters of <see cref="LanguageModel"/>.</summary>
public sealed record LanguageModelOptions
{
    /// <summary>Order: each syscall is predicted from the N-1 before it. 2..5, default 4.</summary>
    public int N { get; init; } = 4;

    /// <summary>Kneser–Ney's absolute discount, 0..1 exclusive. Default 0.75.</summary>
    public double Discount { get; init; } = 0.75;

    /// <summary>Syscalls per scored window. Default 64.</summary>
    public int WindowSize { get; init; } = 64;

    /// <summary>Syscalls between scored windows. Default 16.</summary>
    public int Stride { get; init; } = 16;

    /// <summary>
    /// What a whole trace scores offline (<see cref="TraceScores"/>): <c>trace</c>, the mean
    /// surprisal over the whole trace (a sequence's likelihood, as language-model detectors score
    /// it), or <c>window</c>, the highest window mean (what the online monitor's running maximum
    /// reaches). Default <c>trace</c>.
    /// </summary>
    public string TraceScore { get; init; } = TraceScores.Trace;

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(N, 2, nameof(N));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(N, LanguageModel.MaxN, nameof(N));
        if (!(Discount > 0 && Discount < 1))
            throw new ArgumentOutOfRangeException(nameof(Discount), Discount, "the discount must be in (0, 1)");
        TraceScores.Validate(TraceScore);
        new WindowSpec(WindowSize, Stride).Validate();
    }
}

/// <summary>
/// An n-gram language model of normal syscall sequences with interpolated Kneser–Ney smoothing
/// (Chen and Goodman 1998): the probability of each syscall given the N-1 before it, every order
/// discounted and interpolated with the next lower one, the lower orders counting in how many
/// contexts a sequence was seen rather than how often, down to an add-one unigram over every
/// syscall code. Unlike STIDE's seen / unseen test, a rare but normal sequence costs little and a
/// common syscall in an unusual place costs much. A window's raw score is its mean surprisal,
/// −log2 P per syscall, in bits, over the syscalls it holds the N-1 before of (the window alone
/// decides, as the online monitor sees it); a whole trace's, by default, the mean over all its syscalls.
/// </summary>
public sealed class LanguageModel : AnomalyModel
{
    /// <summary>Longest N: four 12-bit contexts and the predicted code fill 60 bits, with an order tag above.</summary>
    internal const int MaxN = 5;

    private const int Bits = 12;
    private const int Other = (1 << Bits) - 3; // every syscall number above the codes
    private const int Start = (1 << Bits) - 2; // before a trace's first syscall
    private const int Symbols = 1 << Bits;

    // Per order k (1..N), keyed by (context of k-1 codes, next code): the count of the k-gram at
    // order N, its continuation count (distinct codes seen before it) below N.
    private readonly Dictionary<ulong, int> _counts;
    // Per order k, keyed by the context: (the sum of its k-grams' counts, how many distinct codes follow it).
    private readonly Dictionary<ulong, (int Total, int Distinct)> _contexts;
    private readonly double _unigramTotal;

    private LanguageModel(LanguageModelOptions options, Dictionary<ulong, int> counts)
    {
        Options = options;
        _counts = counts;
        // Derived from the counts (a model file holds only those).
        _contexts = [];
        foreach (var (key, count) in counts)
        {
            var (context, _) = Split(key);
            ulong at = ContextKey(Order(key), context);
            var c = _contexts.GetValueOrDefault(at);
            _contexts[at] = (c.Total + count, c.Distinct + 1);
        }
        _unigramTotal = _contexts.TryGetValue(ContextKey(1, 0), out var root) ? root.Total : 0;
    }

    /// <summary>The hyperparameters.</summary>
    internal LanguageModelOptions Options { get; }

    internal override string Algo => Algorithms.LanguageModel;

    /// <inheritdoc />
    public override WindowSpec Windows => new(Options.WindowSize, Options.Stride);

    internal override JsonObject Hyperparameters => (JsonObject)JsonSerializer.SerializeToNode(Options, AnomalyJson.Default.LanguageModelOptions)!;

    internal override bool ScoresWholeTraces => Options.TraceScore == TraceScores.Trace;

    // ---- the algorithm ---------------------------------------------------------------------

    /// <summary>Counts <paramref name="traces"/>' n-grams of every order.</summary>
    internal static LanguageModel Fit(IReadOnlyList<int[]> traces, LanguageModelOptions options)
    {
        options.Validate();
        int n = options.N;
        var top = new Dictionary<ulong, int>();
        foreach (var trace in traces)
        {
            ulong history = StartHistory(n);
            foreach (int s in trace)
            {
                int code = Code(s);
                Bump(top, GramKey(n, history, code, n), 1);
                history = Push(history, code, n);
            }
        }
        var counts = new Dictionary<ulong, int>(top);
        // Below N, a k-gram's count is its continuation count: the distinct codes seen before it.
        var higher = top.Keys.ToList();
        for (int k = n - 1; k >= 1; k--)
        {
            var lower = new Dictionary<ulong, int>();
            foreach (ulong key in higher)
            {
                var (context, code) = Split(key);
                Bump(lower, GramKey(k, context & Mask(k - 1), code, n), 1);
            }
            foreach (var (key, count) in lower)
                counts[key] = count;
            higher = [.. lower.Keys];
        }
        return new LanguageModel(options, counts);
    }

    internal override double ScoreWindow(ReadOnlySpan<int> window)
    {
        if (window.IsEmpty)
            return 0;
        int n = Options.N;
        // Only the syscalls the window holds a full context for are predicted (all of a window
        // shorter than N, from what it has): its first ones would otherwise cost a unigram guess.
        int first = window.Length >= n ? n - 1 : 0;
        double bits = 0;
        ulong history = 0;
        for (int i = 0; i < window.Length; i++)
        {
            int code = Code(window[i]);
            if (i >= first)
                bits += Surprisal(history, Math.Min(i, n - 1), code);
            history = Push(history, code, n);
        }
        return bits / (window.Length - first);
    }

    /// <summary>
    /// The mean surprisal over the whole trace, its first syscalls predicted from a start marker;
    /// or, with <see cref="LanguageModelOptions.TraceScore"/> <c>window</c>, the highest window
    /// mean (each window scored as the online monitor scores it).
    /// </summary>
    internal override double ScoreTrace(ReadOnlySpan<int> trace)
    {
        if (!ScoresWholeTraces || trace.IsEmpty)
            return HighestWindow(trace);
        int n = Options.N;
        double bits = 0;
        ulong history = StartHistory(n);
        foreach (int s in trace)
        {
            int code = Code(s);
            bits += Surprisal(history, n - 1, code);
            history = Push(history, code, n);
        }
        return bits / trace.Length;
    }

    /// <summary>P(<paramref name="syscall"/> | the last N-1 of <paramref name="before"/>, or all of them when fewer).</summary>
    internal double Probability(ReadOnlySpan<int> before, int syscall)
    {
        int n = Options.N;
        ulong history = 0;
        foreach (int s in before)
            history = Push(history, Code(s), n);
        return Probability(history, Math.Min(before.Length, n - 1), Code(syscall));
    }

    /// <summary>−log2 P(code | the last <paramref name="known"/> codes of <paramref name="history"/>).</summary>
    private double Surprisal(ulong history, int known, int code) => -Math.Log2(Probability(history, known, code));

    // Interpolated Kneser–Ney, from the longest context down to the add-one unigram.
    private double Probability(ulong history, int known, int code)
    {
        double d = Options.Discount;
        int n = Options.N;
        double p = (_counts.GetValueOrDefault(GramKey(1, 0, code, n)) + 1.0) / (_unigramTotal + Symbols);
        for (int k = 2; k <= known + 1; k++)
        {
            ulong context = history & Mask(k - 1);
            if (!_contexts.TryGetValue(ContextKey(k, context), out var c))
                break; // an unseen context: its longer ones are unseen too
            int count = _counts.GetValueOrDefault(GramKey(k, context, code, n));
            p = (Math.Max(count - d, 0) + d * c.Distinct * p) / c.Total;
        }
        return p;
    }

    // ---- keys: 12 bits per code, the newest lowest; the order in the top four bits ------------

    private static int Code(int syscall) => syscall is >= 0 and < Other ? syscall : Other;

    private static ulong Mask(int codes) => codes == 0 ? 0 : (1UL << (Bits * codes)) - 1;

    private static ulong StartHistory(int n)
    {
        ulong history = 0;
        for (int i = 0; i < n - 1; i++)
            history = history << Bits | Start;
        return history;
    }

    private static ulong Push(ulong history, int code, int n) => (history << Bits | (uint)code) & Mask(n - 1);

    private static ulong GramKey(int order, ulong context, int code, int n) =>
        (ulong)order << 60 | (context & Mask(order - 1)) << Bits | (uint)code;

    private static ulong ContextKey(int order, ulong context) => (ulong)order << 60 | (context & Mask(order - 1)) | 1UL << 59;

    private static int Order(ulong key) => (int)(key >> 60);

    private static (ulong Context, int Code) Split(ulong key) => ((key & ((1UL << 60) - 1)) >> Bits, (int)(key & (Symbols - 1)));

    private static void Bump(Dictionary<ulong, int> counts, ulong key, int by) => counts[key] = counts.GetValueOrDefault(key) + by;

    // ---- persistence ------------------------------------------------------------------------

    internal override void SavePayload(Stream stream)
    {
        using var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        w.Write(_counts.Count);
        foreach (var (key, count) in _counts.OrderBy(kv => kv.Key))
        {
            w.Write(key);
            w.Write(count);
        }
    }

    internal static LanguageModel Load(JsonObject hyperparameters, Stream payload)
    {
        var options = TraceScores.WithSavedDefault(hyperparameters).Deserialize(AnomalyJson.Default.LanguageModelOptions)
            ?? throw new InvalidDataException("lm hyperparameters missing");
        options.Validate();
        using var r = new BinaryReader(payload);
        int count = r.ReadInt32();
        var counts = new Dictionary<ulong, int>(count);
        for (int i = 0; i < count; i++)
            counts[r.ReadUInt64()] = r.ReadInt32();
        return new LanguageModel(options, counts);
    }
}
