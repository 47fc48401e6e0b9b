using System.Text.Json;
using System.Text.Json.Nodes;
using Mis.Torch;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mis.Anomaly.Models;

/// <summary>Hyperparameters of <see cref="LstmModel"/>.</summary>
public sealed record LstmOptions
{
    /// <summary>Size of a syscall's embedding. Default 32.</summary>
    public int EmbeddingSize { get; init; } = 32;

    /// <summary>LSTM hidden units. Default 64.</summary>
    public int HiddenSize { get; init; } = 64;

    /// <summary>Stacked LSTM layers. Default 1.</summary>
    public int Layers { get; init; } = 1;

    /// <summary>Syscalls per scored window (and per training sequence). Default 64.</summary>
    public int WindowSize { get; init; } = 64;

    /// <summary>Syscalls between scored windows. Default 32 (every syscall is read twice).</summary>
    public int Stride { get; init; } = 32;

    /// <summary>Most passes over the training windows; training stops earlier once the validation loss stops improving (<see cref="Patience"/>). Default 40.</summary>
    public int Epochs { get; init; } = 40;

    /// <summary>Share of the training windows held out (seeded) to measure the validation loss on, never trained on. Default 0.1.</summary>
    public double ValidationFraction { get; init; } = 0.1;

    /// <summary>Epochs without a better validation loss before training stops; the best epoch's weights are kept. Default 3.</summary>
    public int Patience { get; init; } = 3;

    /// <summary>Windows per gradient step. Default 64.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Adam's learning rate. Default 0.003.</summary>
    public double LearningRate { get; init; } = 0.003;

    /// <summary>Gradient-norm clip, the usual guard against exploding LSTM gradients. Default 1.</summary>
    public double GradClip { get; init; } = 1.0;

    /// <summary>At most this many training windows (a seeded sample). Default 20,000.</summary>
    public int MaxTrainingWindows { get; init; } = 20_000;

    /// <summary>
    /// The window statistic: the mean negative log-likelihood of the window's <c>TopK</c> most
    /// surprising syscalls; 0 takes the mean over the whole window. Default 0.
    /// </summary>
    public int TopK { get; init; }

    /// <summary>CPU threads TorchSharp may use. Default 2.</summary>
    public int Threads { get; init; } = 2;

    /// <summary>Seed of the weights, the window sample and the batch order.</summary>
    public int Seed { get; init; } = 1;

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(EmbeddingSize, 1, nameof(EmbeddingSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(HiddenSize, 1, nameof(HiddenSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(Layers, 1, nameof(Layers));
        ArgumentOutOfRangeException.ThrowIfLessThan(Epochs, 0, nameof(Epochs));
        ArgumentOutOfRangeException.ThrowIfLessThan(BatchSize, 1, nameof(BatchSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxTrainingWindows, 1, nameof(MaxTrainingWindows));
        ArgumentOutOfRangeException.ThrowIfLessThan(Threads, 1, nameof(Threads));
        ArgumentOutOfRangeException.ThrowIfLessThan(Patience, 1, nameof(Patience));
        if (!(ValidationFraction >= 0 && ValidationFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(ValidationFraction), ValidationFraction, "must be in [0, 1)");
        if (!(LearningRate > 0))
            throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "must be positive");
        new WindowSpec(WindowSize, Stride).Validate();
    }
}

/// <summary>
/// A next-syscall language model (embedding → LSTM → linear over the syscall vocabulary), trained on
/// normal windows. A window's raw score is the mean negative log-likelihood, in nats, of its
/// syscalls, each predicted from the ones before it in the window (the first from a start token).
/// Syscalls never seen in training share one "unknown" token the model never learns to predict, so
/// they cost many nats. The vocabulary maps syscall numbers to tokens 2..; 0 is start, 1 is unknown.
/// </summary>
public sealed class LstmModel : AnomalyModel, IDisposable
{
    private const int Start = 0, Unknown = 1;

    private readonly Net _net;
    private readonly Dictionary<int, long> _tokens;
    private readonly Lock _gate = new();

    private LstmModel(LstmOptions options, Dictionary<int, long> tokens, Net net)
    {
        Options = options;
        _tokens = tokens;
        _net = net;
    }

    /// <summary>The hyperparameters.</summary>
    public LstmOptions Options { get; }

    /// <summary>Tokens: start, unknown and one per syscall seen in training.</summary>
    internal int Vocabulary => _tokens.Count + 2;

    /// <summary>The syscall numbers in the vocabulary, in token order.</summary>
    internal int[] Syscalls => [.. _tokens.OrderBy(kv => kv.Value).Select(kv => kv.Key)];

    /// <summary>How training went: epochs run, the epoch whose weights were kept, and its validation loss (nats per syscall; NaN without validation).</summary>
    internal (int EpochsRun, int BestEpoch, double ValidationNll) Training { get; private set; }

    internal override string Algo => Algorithms.Lstm;

    /// <inheritdoc />
    public override WindowSpec Windows => new(Options.WindowSize, Options.Stride);

    internal override JsonObject Hyperparameters
    {
        get
        {
            var h = (JsonObject)JsonSerializer.SerializeToNode(Options, AnomalyJson.Default.LstmOptions)!;
            h["vocabulary"] = new JsonArray([.. Syscalls.Select(s => JsonValue.Create(s))]);
            h["epochs_run"] = Training.EpochsRun;
            h["best_epoch"] = Training.BestEpoch;
            if (double.IsFinite(Training.ValidationNll))
                h["validation_nll"] = Math.Round(Training.ValidationNll, 6);
            return h;
        }
    }

    /// <summary>The parameters, for the same-seed test.</summary>
    internal IEnumerable<(string Name, Tensor Value)> Parameters() => _net.named_parameters().Select(p => (p.name, (Tensor)p.parameter));

    private sealed class Net : nn.Module<Tensor, Tensor>
    {
        private readonly Embedding embed;
        private readonly LSTM lstm;
        private readonly Linear head;

        internal Net(int vocabulary, LstmOptions o) : base("mis_lstm")
        {
            embed = nn.Embedding(vocabulary, o.EmbeddingSize);
            lstm = nn.LSTM(o.EmbeddingSize, o.HiddenSize, numLayers: o.Layers, batchFirst: true);
            head = nn.Linear(o.HiddenSize, vocabulary);
            RegisterComponents();
        }

        /// <summary>[batch, length] tokens → [batch, length, vocabulary] logits of the next token.</summary>
        public override Tensor forward(Tensor tokens)
        {
            var (output, _, _) = lstm.call(embed.call(tokens), null);
            return head.call(output);
        }
    }

    // ---- the algorithm ---------------------------------------------------------------------

    /// <summary>Trains on the windows of <paramref name="traces"/>.</summary>
    internal static LstmModel Fit(IReadOnlyList<int[]> traces, LstmOptions o, IProgress<double>? progress = null)
    {
        o.Validate();
        TorchRuntime.EnsureLoaded();
        torch.set_num_threads(o.Threads);
        torch.manual_seed(o.Seed);
        var rng = new Random(o.Seed);

        var tokens = traces.SelectMany(t => t).Distinct().Order()
            .Select((s, i) => (s, i)).ToDictionary(x => x.s, x => (long)x.i + 2);
        var model = new LstmModel(o, tokens, new Net(tokens.Count + 2, o));

        var spec = model.Windows;
        var windows = traces.SelectMany(t => spec.Ends(t.Length).Select(end => model.Encode(spec.Window(t, end)))).ToList();
        rng.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(windows));
        if (windows.Count > o.MaxTrainingWindows)
            windows.RemoveRange(o.MaxTrainingWindows, windows.Count - o.MaxTrainingWindows);
        // Validation windows (a seeded share, at least one batch's worth when there is enough) are
        // never trained on: training runs until their loss has not improved for Patience epochs.
        int validationCount = o.ValidationFraction > 0 && windows.Count >= 20 ? Math.Max(1, (int)(windows.Count * o.ValidationFraction)) : 0;
        var validation = Batches(windows[..validationCount], 256);
        var batches = Batches(windows[validationCount..], o.BatchSize);

        using var optimizer = new Mis.Torch.Adam(model._net.parameters(), o.LearningRate);
        double best = double.PositiveInfinity;
        int bestEpoch = 0, epochsRun = 0;
        byte[]? bestWeights = null;
        for (int epoch = 0; epoch < o.Epochs; epoch++)
        {
            model._net.train();
            rng.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(batches));
            for (int b = 0; b < batches.Count; b++)
            {
                using var scope = NewDisposeScope();
                optimizer.zero_grad();
                var nll = model.Nll(batches[b]);          // [batch, length]
                var loss = nll.mean();
                loss.backward();
                nn.utils.clip_grad_norm_(model._net.parameters(), o.GradClip);
                optimizer.step();
                progress?.Report((epoch + (b + 1.0) / batches.Count) / o.Epochs);
            }
            epochsRun = epoch + 1;
            if (validation.Count == 0)
                continue;
            double validationNll = model.MeanNll(validation);
            if (validationNll < best - 1e-4)
            {
                (best, bestEpoch) = (validationNll, epochsRun);
                // TorchSharp closes the stream it saves to: keep the bytes.
                var saved = new MemoryStream();
                model._net.save(saved);
                bestWeights = saved.ToArray();
            }
            else if (epochsRun - bestEpoch >= o.Patience)
            {
                break;
            }
        }
        if (bestWeights is not null && bestEpoch < epochsRun)
        {
            using var weights = new MemoryStream(bestWeights);
            model._net.load(weights);
        }
        model._net.eval();
        model.Training = (epochsRun, validation.Count == 0 ? epochsRun : bestEpoch, validation.Count == 0 ? double.NaN : best);
        return model;
    }

    /// <summary>The mean per-syscall NLL over <paramref name="batches"/>, without gradients.</summary>
    private double MeanNll(List<long[][]> batches)
    {
        _net.eval();
        using var noGrad = no_grad();
        double sum = 0;
        long count = 0;
        foreach (var batch in batches)
        {
            using var scope = NewDisposeScope();
            sum += Nll(batch).sum().item<float>();
            count += batch.Length * (long)batch[0].Length;
        }
        return sum / count;
    }

    /// <summary>Per-syscall negative log-likelihood of a batch of equal-length token windows: [batch, length].</summary>
    private Tensor Nll(long[][] batch)
    {
        int n = batch.Length, length = batch[0].Length;
        var flat = new long[n * length];
        var input = new long[n * length];
        for (int i = 0; i < n; i++)
        {
            batch[i].CopyTo(flat, i * length);
            input[i * length] = Start;                        // each syscall is predicted from the ones before it
            Array.Copy(batch[i], 0, input, i * length + 1, length - 1);
        }
        var logits = _net.call(tensor(input, [n, length]));  // [n, length, vocabulary]
        var target = tensor(flat, [n * length]);
        return nn.functional.cross_entropy(logits.reshape(n * length, Vocabulary), target, reduction: nn.Reduction.None)
            .reshape(n, length);
    }

    /// <summary>[batch, length] per-syscall NLL → [batch] window statistic (mean, or mean of the top K).</summary>
    private Tensor WindowStatistic(Tensor nll)
    {
        if (Options.TopK <= 0 || Options.TopK >= nll.shape[1])
            return nll.mean([1]);
        var (top, _) = nll.topk(Options.TopK, dim: 1);
        return top.mean([1]);
    }

    private long[] Encode(ReadOnlySpan<int> window)
    {
        var t = new long[window.Length];
        for (int i = 0; i < window.Length; i++)
            t[i] = _tokens.GetValueOrDefault(window[i], Unknown);
        return t;
    }

    // Equal lengths batch without padding: full windows, plus the few short traces grouped by length.
    private static List<long[][]> Batches(List<long[]> windows, int size) =>
        [.. windows.GroupBy(w => w.Length).SelectMany(g => g.Chunk(size))];

    internal override double ScoreWindow(ReadOnlySpan<int> window)
    {
        if (window.IsEmpty)
            return 0;
        var encoded = Encode(window);
        lock (_gate)
        {
            using var scope = NewDisposeScope();
            using var inference = inference_mode();
            return WindowStatistic(Nll([encoded])).item<float>();
        }
    }

    internal override double ScoreTrace(ReadOnlySpan<int> trace) => ScoreTraces([trace.ToArray()])[0];

    /// <summary>Every window of every trace, in batches of equal-length windows; each trace keeps its maximum.</summary>
    public override double[] ScoreTraces(IReadOnlyList<int[]> traces, IProgress<long>? syscallsDone = null)
    {
        var scores = Enumerable.Repeat(double.NegativeInfinity, traces.Count).ToArray();
        var spec = Windows;
        var windows = traces.SelectMany((t, i) => spec.Ends(t.Length).Select(end => (Trace: i, Tokens: Encode(spec.Window(t, end)))));
        lock (_gate)
        {
            UseThreads(Options.Threads);
            using var inference = inference_mode();
            foreach (var group in windows.GroupBy(w => w.Tokens.Length))
            {
                foreach (var chunk in group.Chunk(256))
                {
                    using var scope = NewDisposeScope();
                    var mean = WindowStatistic(Nll([.. chunk.Select(c => c.Tokens)])).data<float>().ToArray();
                    for (int k = 0; k < chunk.Length; k++)
                        scores[chunk[k].Trace] = Math.Max(scores[chunk[k].Trace], mean[k]);
                    syscallsDone?.Report((long)chunk.Length * Math.Min(spec.Stride, group.Key));
                }
            }
        }
        return scores;
    }

    // torch's thread count is the calling thread's OpenMP setting (a new thread starts from the last
    // value set anywhere), and setting it is not free (it also resets MKL's and the thread pool's and
    // clears oneDNN's cache): set it only when this thread's differs.
    private static void UseThreads(int threads)
    {
        if (torch.get_num_threads() != threads)
            torch.set_num_threads(threads);
    }

    // ---- persistence ------------------------------------------------------------------------

    internal override void SavePayload(Stream stream)
    {
        lock (_gate)
            _net.save(stream);
    }

    internal static LstmModel Load(JsonObject hyperparameters, Stream payload)
    {
        var options = hyperparameters.Deserialize(AnomalyJson.Default.LstmOptions)
            ?? throw new InvalidDataException("lstm hyperparameters missing");
        options.Validate();
        var syscalls = hyperparameters["vocabulary"]?.AsArray().Select(v => v!.GetValue<int>()).ToArray()
            ?? throw new InvalidDataException("lstm vocabulary missing");
        TorchRuntime.EnsureLoaded();
        var tokens = syscalls.Select((s, i) => (s, i)).ToDictionary(x => x.s, x => (long)x.i + 2);
        var net = new Net(tokens.Count + 2, options);
        // TorchSharp reads the stream at offsets: give it a seekable copy (a zip entry is not).
        using var copy = new MemoryStream();
        payload.CopyTo(copy);
        copy.Position = 0;
        net.load(copy);
        net.eval();
        return new LstmModel(options, tokens, net);
    }

    /// <inheritdoc />
    public void Dispose() => _net.Dispose();
}
