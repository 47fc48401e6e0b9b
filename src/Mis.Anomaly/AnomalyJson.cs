using System.Text.Json.Serialization;
using Mis.Anomaly.Calibration;
using Mis.Anomaly.Models;

namespace Mis.Anomaly;

/// <summary>JSON of the model file (snake_case, indented: it is meant to be read).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(ModelHeader))]
[JsonSerializable(typeof(NgramOptions))]
[JsonSerializable(typeof(LanguageModelOptions))]
[JsonSerializable(typeof(EnsembleOptions))]
[JsonSerializable(typeof(PcaOptions))]
[JsonSerializable(typeof(LstmOptions))]
[JsonSerializable(typeof(ScoreCalibration))]
public sealed partial class AnomalyJson : JsonSerializerContext;
