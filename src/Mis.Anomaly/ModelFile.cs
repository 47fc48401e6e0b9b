using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mis.Anomaly.Calibration;
using Mis.Anomaly.Models;

namespace Mis.Anomaly;

/// <summary>The self-describing header of a model file (<c>model.json</c> inside it).</summary>
public sealed record ModelHeader
{
    /// <summary>Always <see cref="ModelFile.FormatName"/>.</summary>
    public string Format { get; init; } = ModelFile.FormatName;

    /// <summary>Format version; a reader refuses versions it does not know.</summary>
    public int Version { get; init; } = ModelFile.CurrentVersion;

    /// <summary>ngram, lm, pca, lstm or ensemble.</summary>
    public required string Algo { get; init; }

    /// <summary>When it was trained (UTC).</summary>
    public DateTimeOffset Created { get; init; }

    /// <summary>Syscalls per scored window.</summary>
    public required int WindowSize { get; init; }

    /// <summary>Syscalls between scored windows.</summary>
    public required int Stride { get; init; }

    /// <summary>The algorithm's resolved hyperparameters.</summary>
    public required JsonObject Hyperparameters { get; init; }

    /// <summary>The raw-score → 0..1000 map.</summary>
    public required ScoreCalibration Calibration { get; init; }

    /// <summary>What it was trained on, and how.</summary>
    public required TrainingSummary Training { get; init; }
}

/// <summary>What a model was trained on.</summary>
/// <param name="Seed">The seed of the folds and of the model.</param>
/// <param name="TrainTraces">Normal traces the model was fitted on.</param>
/// <param name="TrainSyscalls">Syscalls in them.</param>
/// <param name="HeldOutTraces">Normal traces the calibration scored unseen: with cross-fitting every
/// one (each by a model fitted without its fold); in files written before it, a held-out share.</param>
/// <param name="Seconds">Wall-clock training time.</param>
/// <param name="Source">Where the traces came from.</param>
/// <param name="Folds">Cross-fitting folds (<see cref="TrainOptions.Folds"/>); 1 in files written before
/// cross-fitting, whose model was fitted on the traces not held out.</param>
public sealed record TrainingSummary(int Seed, int TrainTraces, long TrainSyscalls, int HeldOutTraces, double Seconds, string Source, int Folds = 1)
{
    /// <summary>What an ensemble member's own summary says (the ensemble's holds the training).</summary>
    internal static TrainingSummary Member { get; } = new(0, 0, 0, 0, 0, "ensemble member");
}

/// <summary>
/// A model file: a zip archive holding <c>model.json</c> (<see cref="ModelHeader"/>: algorithm,
/// format version, window, hyperparameters, calibration, training summary — readable with
/// <c>unzip -p MODEL model.json</c>) and <c>payload.bin</c> (the learned parameters: the n-gram
/// database, the PCA mean and components, or the LSTM's TorchSharp state).
/// </summary>
public static class ModelFile
{
    internal const string FormatName = "mis-anomaly-model";
    internal const int CurrentVersion = 1;
    private const string HeaderEntry = "model.json", PayloadEntry = "payload.bin";

    /// <summary>Writes <paramref name="detector"/> to <paramref name="path"/> (replacing it).</summary>
    public static void Save(AnomalyDetector detector, string path)
    {
        if (Path.GetDirectoryName(Path.GetFullPath(path)) is { } dir)
            Directory.CreateDirectory(dir);
        string temp = path + ".tmp";
        using (var file = File.Create(temp))
            Write(detector, file);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Writes the model file of <paramref name="detector"/> to <paramref name="stream"/> (an ensemble's members are written this way inside its payload).</summary>
    internal static void Write(AnomalyDetector detector, Stream stream)
    {
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
        using (var header = zip.CreateEntry(HeaderEntry).Open())
            JsonSerializer.Serialize(header, detector.Header, AnomalyJson.Default.ModelHeader);
        using var payload = zip.CreateEntry(PayloadEntry, CompressionLevel.Optimal).Open();
        detector.Model.SavePayload(payload);
    }

    private static ZipArchive OpenZip(string path)
    {
        try
        {
            return ZipFile.OpenRead(path);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: not a MIS anomaly model (not a zip archive: {e.Message})", e);
        }
    }

    /// <summary>Reads a model file.</summary>
    /// <exception cref="InvalidDataException">Not a model file, an unknown version or algorithm, or a damaged payload (the message says which).</exception>
    public static AnomalyDetector Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path}: no such model file", path);
        using var zip = OpenZip(path);
        return Read(zip, path);
    }

    private static AnomalyDetector Read(ZipArchive zip, string path)
    {
        try
        {
            var headerEntry = zip.GetEntry(HeaderEntry) ?? throw new InvalidDataException($"{path}: not a MIS anomaly model ({HeaderEntry} missing)");
            ModelHeader header;
            using (var s = headerEntry.Open())
                header = JsonSerializer.Deserialize(s, AnomalyJson.Default.ModelHeader) ?? throw new InvalidDataException($"{path}: empty {HeaderEntry}");
            if (header.Format != FormatName)
                throw new InvalidDataException($"{path}: format '{header.Format}', expected '{FormatName}'");
            if (header.Version != CurrentVersion)
                throw new InvalidDataException($"{path}: model format version {header.Version}; this build reads version {CurrentVersion}");
            using var payload = (zip.GetEntry(PayloadEntry) ?? throw new InvalidDataException($"{path}: {PayloadEntry} missing")).Open();
            return new AnomalyDetector(LoadModel(header.Algo, header.Hyperparameters, payload, path), header.Calibration, header.Training) { Created = header.Created };
        }
        catch (Exception e) when (e is JsonException or EndOfStreamException or ArgumentException)
        {
            throw new InvalidDataException($"{path}: damaged model file: {e.Message}", e);
        }
    }

    /// <summary>The model of <paramref name="algo"/> from its hyperparameters and payload.</summary>
    /// <exception cref="InvalidDataException">An unknown algorithm.</exception>
    internal static AnomalyModel LoadModel(string algo, JsonObject hyperparameters, Stream payload, string path) => algo switch
    {
        Algorithms.Ngram => NgramModel.Load(hyperparameters, payload),
        Algorithms.LanguageModel => LanguageModel.Load(hyperparameters, payload),
        Algorithms.Pca => PcaModel.Load(hyperparameters, payload),
        Algorithms.Lstm => LstmModel.Load(hyperparameters, payload),
        Algorithms.Ensemble => EnsembleModel.Load(hyperparameters, payload, path),
        _ => throw new InvalidDataException($"{path}: unknown algorithm '{algo}' (known: {string.Join(", ", Algorithms.All)})"),
    };
}
