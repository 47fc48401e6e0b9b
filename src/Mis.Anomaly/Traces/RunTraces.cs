using System.Text.Json.Nodes;

namespace Mis.Anomaly.Traces;

/// <summary>
/// The syscall traces an experiment recorded (<c>mis anomaly train --run RUN_DIR</c>): under a
/// run directory, at any depth, <c>traces/normal/episode-N/TID-COMM.trace</c> for the episodes
/// without a policy violation and <c>traces/violating/...</c> for those with one (learning mode
/// records violations without denying them). Each thread is a trace; an episode is a group, so
/// calibration holds whole episodes out.
/// </summary>
public static class RunTraces
{
    /// <summary>Episodes without a policy violation: the normal behaviour.</summary>
    public const string Normal = "normal";

    /// <summary>Episodes with a policy violation.</summary>
    public const string Violating = "violating";

    /// <summary>Every trace of <paramref name="kind"/> (<see cref="Normal"/> or <see cref="Violating"/>) under <paramref name="runDirectory"/>, in path order.</summary>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    public static List<Trace> Read(string runDirectory, string kind)
    {
        if (!Directory.Exists(runDirectory))
            throw new DirectoryNotFoundException($"{runDirectory}: no such run directory");
        return [.. Directory.EnumerateDirectories(runDirectory, "traces", SearchOption.AllDirectories)
            .Select(d => Path.Combine(d, kind))
            .Where(Directory.Exists)
            .Order(StringComparer.Ordinal)
            .SelectMany(TraceReader.Read)];
    }

    /// <summary>The normal traces under <paramref name="runDirectory"/>, at least one.</summary>
    /// <exception cref="ArgumentException">None recorded there (the message says how to record them).</exception>
    public static List<Trace> ReadNormal(string runDirectory)
    {
        var normal = Read(runDirectory, Normal);
        return normal.Count > 0 ? normal
            : throw new ArgumentException($"{runDirectory}: no recorded normal traces (traces/normal/episode-N/ at any depth); an experiment records them with [anomaly] model = \"train\" or record_traces = true");
    }

    /// <summary>
    /// Trains a model on the normal traces under <paramref name="runDirectory"/>, writes it to
    /// <paramref name="modelPath"/>, and, when the run also recorded violating episodes, scores
    /// those threads against the held-out normal ones.
    /// </summary>
    /// <returns>What it was trained on and how it scores, for the run directory.</returns>
    /// <exception cref="ArgumentException">No normal traces recorded there (the message says how to record them), or too few to hold some out.</exception>
    public static JsonObject Train(string runDirectory, string modelPath, TrainOptions options)
    {
        var normal = ReadNormal(runDirectory);
        using var detector = AnomalyTrainer.Train(normal, options, runDirectory);
        ModelFile.Save(detector, modelPath);
        var t = detector.Training;
        var json = new JsonObject
        {
            ["model"] = modelPath,
            ["algo"] = detector.Name,
            ["window"] = detector.WindowSize,
            ["stride"] = detector.Stride,
            ["normal_episodes"] = normal.Select(x => x.Group).Distinct().Count(),
            ["train_traces"] = t.TrainTraces,
            ["train_syscalls"] = t.TrainSyscalls,
            ["held_out_traces"] = t.HeldOutTraces,
            ["folds"] = t.Folds,
            ["alarm_raw"] = detector.Calibration.AlarmRaw,
            ["false_alarm_rate"] = detector.Calibration.FalseAlarmRate,
            // What the traces promise without a tail assumption: the rate, or 1/(n+1) with too few of them.
            ["false_alarm_bound"] = detector.Calibration.FalseAlarmBound,
            ["seconds"] = t.Seconds,
        };
        var violating = Read(runDirectory, Violating);
        if (violating.Count > 0)
        {
            // Not a detection rate: a violating episode's other threads (the actuator's) may be ordinary.
            var scores = detector.ScoreTraces([.. violating.Select(x => x.Syscalls)]);
            json["violating_threads"] = violating.Count;
            json["violating_threads_above_threshold"] = scores.Count(s => s.Score > Calibration.ScoreCalibration.AlarmScore);
        }
        return json;
    }
}
