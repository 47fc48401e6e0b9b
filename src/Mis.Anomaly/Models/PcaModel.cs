using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;

namespace Mis.Anomaly.Models;

/// <summary>Hyperparameters of <see cref="PcaModel"/>.</summary>
public sealed record PcaOptions
{
    /// <summary>Principal components kept (ML.NET's <c>Rank</c>). Default 48: normal windows of many programs span many directions.</summary>
    public int Rank { get; init; } = 48;

    /// <summary>Extra random directions for the randomized SVD (ML.NET's <c>Oversampling</c>). Default 20.</summary>
    public int Oversampling { get; init; } = 20;

    /// <summary>Hash buckets for single syscalls. Default 512 (every x86-64 syscall has its own).</summary>
    public int UnigramBuckets { get; init; } = 512;

    /// <summary>Hash buckets for syscall n-grams. Default 2048.</summary>
    public int NgramBuckets { get; init; } = 2048;

    /// <summary>Length of the hashed n-grams, 2..6. Default 3.</summary>
    public int NgramLength { get; init; } = 3;

    /// <summary>Syscalls per scored window. Default 64.</summary>
    public int WindowSize { get; init; } = 64;

    /// <summary>Syscalls between scored windows. Default 16.</summary>
    public int Stride { get; init; } = 16;

    /// <summary>At most this many training windows (a seeded sample of all of them). Default 30,000.</summary>
    public int MaxTrainingWindows { get; init; } = 30_000;

    /// <summary>
    /// Divide the reconstruction error by ‖x−μ‖, as ML.NET's own score does. Default false: on
    /// syscall windows almost nothing is well explained by a few components, so the normalised error
    /// is near 1 for normal and attack windows alike; the absolute error ranks them.
    /// </summary>
    public bool Normalized { get; init; }

    /// <summary>
    /// Weight each feature by its inverse document frequency over the training windows,
    /// 1 + ln((1 + windows) / (1 + windows containing it)). Default true: an n-gram normal windows
    /// never contain then weighs about ln(windows) times a common one, so novelty is not drowned by
    /// the ordinary variance PCA leaves unexplained.
    /// </summary>
    public bool Idf { get; init; } = true;

    /// <summary>Seed of the window sample and of the randomized SVD.</summary>
    public int Seed { get; init; } = 1;

    internal NgramFeatures Features => new(UnigramBuckets, NgramBuckets, NgramLength);

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(Rank, 1, nameof(Rank));
        ArgumentOutOfRangeException.ThrowIfNegative(Oversampling, nameof(Oversampling));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxTrainingWindows, 1, nameof(MaxTrainingWindows));
        Features.Validate();
        new WindowSpec(WindowSize, Stride).Validate();
    }
}

/// <summary>
/// PCA anomaly detection on hashed n-gram frequencies of each window (<see cref="NgramFeatures"/>),
/// trained with ML.NET's randomized PCA. The raw score is ML.NET's: the normalised reconstruction
/// error ‖x−μ − P(x−μ)‖ / ‖x−μ‖, 0..1, where P projects on the top principal components of normal
/// windows. Scoring does not go through ML.NET: the eigenvectors and mean are taken out of the trained
/// model and applied to the window's sparse features directly (about 100 non-zero entries of a few
/// thousand), which is what makes millions of syscalls a second possible; a test checks that the
/// scores equal ML.NET's own.
/// </summary>
public sealed class PcaModel : AnomalyModel
{
    private readonly float[] _mean;       // [dimension]
    private readonly float[] _vectors;    // [dimension * rank], row j holds every component's weight of feature j
    private readonly float[] _meanProjected; // [rank]
    private readonly float _meanNorm2;
    private readonly float[] _weights;    // [dimension], IDF (or 1)

    [ThreadStatic] private static int[]? t_counts;
    [ThreadStatic] private static int[]? t_touched;

    private PcaModel(PcaOptions options, float[] mean, float[] vectors, int rank, float[] weights)
    {
        Options = options;
        Rank = rank;
        _weights = weights;
        _mean = mean;
        _vectors = vectors;
        _meanProjected = new float[rank];
        int d = options.Features.Dimension;
        for (int j = 0; j < d; j++)
        {
            _meanNorm2 += mean[j] * mean[j];
            for (int k = 0; k < rank; k++)
                _meanProjected[k] += vectors[j * rank + k] * mean[j];
        }
    }

    /// <summary>The hyperparameters.</summary>
    internal PcaOptions Options { get; }

    /// <summary>Components kept.</summary>
    internal int Rank { get; }

    internal override string Algo => Algorithms.Pca;

    /// <inheritdoc />
    public override WindowSpec Windows => new(Options.WindowSize, Options.Stride);

    internal override JsonObject Hyperparameters => (JsonObject)JsonSerializer.SerializeToNode(Options, AnomalyJson.Default.PcaOptions)!;

    private sealed class Row
    {
        public float[] Features { get; set; } = [];
    }

    // ---- the algorithm ---------------------------------------------------------------------

    /// <summary>Trains on the windows of <paramref name="traces"/>.</summary>
    internal static PcaModel Fit(IReadOnlyList<int[]> traces, PcaOptions options) => FitWithMlNet(traces, options).Model;

    /// <summary>Trains, and also returns ML.NET's own transformer (the tests compare scores with it).</summary>
    internal static (PcaModel Model, MLContext Context, ITransformer Transformer) FitWithMlNet(IReadOnlyList<int[]> traces, PcaOptions options)
    {
        options.Validate();
        var spec = new WindowSpec(options.WindowSize, options.Stride);
        var windows = traces.SelectMany(t => spec.Ends(t.Length).Select(end => (Trace: t, End: end))).ToList();
        var rng = new Random(options.Seed);
        if (windows.Count > options.MaxTrainingWindows)
        {
            rng.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(windows));
            windows.RemoveRange(options.MaxTrainingWindows, windows.Count - options.MaxTrainingWindows);
        }
        var features = options.Features;
        var rows = windows.Select(w => new Row { Features = features.Dense(spec.Window(w.Trace, w.End)) }).ToList();
        if (rows.Count == 0)
            throw new ArgumentException("no training window: the traces are empty", nameof(traces));
        var weights = Enumerable.Repeat(1f, features.Dimension).ToArray();
        if (options.Idf)
        {
            var df = new int[features.Dimension];
            foreach (var row in rows)
                for (int j = 0; j < df.Length; j++)
                    df[j] += row.Features[j] != 0 ? 1 : 0;
            for (int j = 0; j < df.Length; j++)
                weights[j] = 1 + MathF.Log((1f + rows.Count) / (1f + df[j]));
            foreach (var row in rows)
                for (int j = 0; j < df.Length; j++)
                    row.Features[j] *= weights[j];
        }

        var ml = new MLContext(options.Seed);
        var schema = SchemaDefinition.Create(typeof(Row));
        schema[nameof(Row.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, features.Dimension);
        var data = ml.Data.LoadFromEnumerable(rows, schema);
        int rank = Math.Min(options.Rank, Math.Min(features.Dimension, rows.Count));
        var trainer = ml.AnomalyDetection.Trainers.RandomizedPca(new RandomizedPcaTrainer.Options
        {
            FeatureColumnName = nameof(Row.Features),
            Rank = rank,
            Oversampling = options.Oversampling,
            EnsureZeroMean = true,
            Seed = options.Seed,
        });
        var transformer = trainer.Fit(data);
        var parameters = transformer.Model;

        VBuffer<float>[] vectors = [];
        parameters.GetEigenVectors(ref vectors, out int k);
        VBuffer<float> meanBuffer = default;
        parameters.GetMean(ref meanBuffer);
        int d = features.Dimension;
        var mean = new float[d];
        meanBuffer.DenseValues().Take(d).ToArray().CopyTo(mean, 0);
        var packed = new float[d * k];
        for (int c = 0; c < k; c++)
        {
            int j = 0;
            foreach (float v in vectors[c].DenseValues())
                packed[j++ * k + c] = v;
        }
        return (new PcaModel(options, mean, packed, k, weights), ml, transformer);
    }

    /// <summary>The dense, weighted feature vector of a window: what ML.NET was trained on.</summary>
    internal float[] Featurize(ReadOnlySpan<int> window)
    {
        var x = Options.Features.Dense(window);
        for (int j = 0; j < x.Length; j++)
            x[j] *= _weights[j];
        return x;
    }

    internal override double ScoreWindow(ReadOnlySpan<int> window)
    {
        var f = Options.Features;
        var counts = t_counts ??= new int[f.Dimension];
        if (counts.Length != f.Dimension)
            counts = t_counts = new int[f.Dimension];
        if (t_touched is null || t_touched.Length < 2 * window.Length)
            t_touched = new int[Math.Max(2 * window.Length, 256)];
        var touched = t_touched;
        int n = f.Count(window, counts, touched);

        // ‖x−μ‖² = ‖x‖² − 2 μ·x + ‖μ‖², and each component (x−μ)·v = x·v − μ·v: sparse in x.
        Span<float> projection = stackalloc float[Rank];
        for (int k = 0; k < Rank; k++)
            projection[k] = -_meanProjected[k];
        float norm2 = _meanNorm2;
        for (int t = 0; t < n; t++)
        {
            int j = touched[t];
            float x = _weights[j] * f.Value(j, counts[j], window.Length);
            counts[j] = 0;
            norm2 += x * x - 2 * _mean[j] * x;
            var row = _vectors.AsSpan(j * Rank, Rank);
            for (int k = 0; k < Rank; k++)
                projection[k] += row[k] * x;
        }
        float explained = 0;
        foreach (float p in projection)
            explained += p * p;
        double residual = Math.Max(0, norm2 - explained);
        if (!Options.Normalized)
            return Math.Sqrt(residual);
        return norm2 <= 0 ? 0 : Math.Sqrt(residual / norm2);
    }

    // ---- persistence ------------------------------------------------------------------------

    internal override void SavePayload(Stream stream)
    {
        using var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        w.Write(Options.Features.Dimension);
        w.Write(Rank);
        foreach (float m in _mean)
            w.Write(m);
        foreach (float v in _vectors)
            w.Write(v);
        foreach (float v in _weights)
            w.Write(v);
    }

    internal static PcaModel Load(JsonObject hyperparameters, Stream payload)
    {
        var options = hyperparameters.Deserialize(AnomalyJson.Default.PcaOptions)
            ?? throw new InvalidDataException("pca hyperparameters missing");
        options.Validate();
        using var r = new BinaryReader(payload);
        int d = r.ReadInt32(), rank = r.ReadInt32();
        if (d != options.Features.Dimension || rank < 1 || rank > d)
            throw new InvalidDataException($"pca payload has dimension {d} and rank {rank}; the hyperparameters say dimension {options.Features.Dimension}");
        var mean = new float[d];
        for (int j = 0; j < d; j++)
            mean[j] = r.ReadSingle();
        var vectors = new float[d * rank];
        for (int i = 0; i < vectors.Length; i++)
            vectors[i] = r.ReadSingle();
        var weights = new float[d];
        for (int j = 0; j < d; j++)
            weights[j] = r.ReadSingle();
        return new PcaModel(options, mean, vectors, rank, weights);
    }
}
