using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mis.Gym.Envs;
using Mis.Native;

namespace Mis.Gym.Experiments;

/// <summary>One recorded environment step (a row of <c>trajectory.csv</c> and a line of <c>trajectory.jsonl</c>).</summary>
/// <remarks><c>AnomalyScore</c>: the episode's anomaly score after the step (its highest window so far), when the scorer watched it.</remarks>
public readonly record struct StepRecord(
    int Episode, int Step, int Action, string ActionName, ActionResult Result, double Reward, RewardTerms Terms,
    int Defcon, long Violations, bool Violation, double SlowdownMs, double TimeMs, bool Terminated, bool Truncated, int? AnomalyScore = null);

/// <summary>One finished episode (a row of <c>episodes.csv</c>).</summary>
/// <remarks>
/// <c>Anomaly</c>: the anomaly-kill penalty paid; <c>AnomalyKilled</c>: the anomaly scorer killed the
/// workload (a kill by the scorer is also <c>Killed</c>); <c>AnomalyScore</c>: the episode's score, its
/// highest window's, when the scorer watched it.
/// </remarks>
public readonly record struct EpisodeRecord(
    int Episode, double Return, double Task, double Slowdown, double Denial, double Kill,
    long Violations, int MinDefcon, bool Killed, bool Success, int Steps, double SlowdownMs,
    double Anomaly = 0, bool AnomalyKilled = false, int? AnomalyScore = null);

/// <summary>
/// The names and formats of a run directory's files: <c>trajectory.csv</c>, <c>trajectory.jsonl</c>,
/// <c>episodes.csv</c> (plain RFC 4180 CSV with a header row; numbers invariant; booleans 0/1, so
/// pandas reads them as integers; an anomaly score is empty where no scorer watched, NaN to pandas),
/// <c>checkpoint.json</c> and <c>status.json</c>; the seed directory's <c>traces/</c> when an
/// experiment records traces (<see cref="TracesDirectory"/>); and the run directory's
/// <c>tensorboard/</c> event files (<see cref="TensorBoardEvents"/>).
/// </summary>
public static class RunFiles
{
    internal const string Trajectory = "trajectory.csv";
    internal const string TrajectoryJson = "trajectory.jsonl";
    internal const string Episodes = "episodes.csv";
    internal const string Checkpoint = "checkpoint.json";
    internal const string Status = "status.json";
    internal const string Config = "config.json";
    internal const string ExperimentCopy = "experiment.toml";
    /// <summary>The run directory's folder of TensorBoard event files (<see cref="TensorBoardEvents"/>).</summary>
    internal const string TensorBoard = "tensorboard";
    /// <summary>The run directory's experiment description (configs, seeds, report settings).</summary>
    public const string ExperimentJson = "experiment.json";

    internal const string TrajectoryHeader =
        "episode,step,action,action_name,result,reward,task,slowdown,denial,kill,defcon,violations,violation,slowdown_ms,time_ms,terminated,truncated,anomaly,anomaly_score";

    internal const string EpisodesHeader =
        "episode,return,task,slowdown,denial,kill,violations,min_defcon,killed,success,steps,slowdown_ms,anomaly,anomaly_killed,anomaly_score";

    /// <summary>
    /// A seed directory's recorded syscall traces: <c>traces/normal/episode-NNNNNN/TID-COMM.trace</c>
    /// for an episode without a policy violation, <c>traces/violating/...</c> for one with; one file
    /// per thread, whitespace-separated syscall numbers (<c>mis anomaly train --run</c> reads them).
    /// </summary>
    public const string TracesDirectory = "traces";

    /// <summary>The trace directory of one episode (see <see cref="TracesDirectory"/>).</summary>
    internal static string EpisodeTraces(string seedDirectory, int episode, bool violating) =>
        Path.Combine(seedDirectory, TracesDirectory, violating ? "violating" : "normal", $"episode-{episode:D6}");

    internal static readonly string[] ResultWords = ["ok", "denied", "error", "killed"];

    /// <summary>The directory of seed <paramref name="seed"/> inside a config's directory.</summary>
    internal static string SeedDirectory(string configDirectory, int seed) => Path.Combine(configDirectory, $"seed-{seed}");

    /// <summary>The directory of the TensorBoard events of seed <paramref name="seed"/> of a config: <c>tensorboard/CONFIG/seed-N</c>.</summary>
    internal static string TensorBoardDirectory(string runDirectory, string configDirectoryName, int seed) =>
        SeedDirectory(Path.Combine(runDirectory, TensorBoard, configDirectoryName), seed);

    internal static string Csv(in StepRecord r)
    {
        var b = new StringBuilder(160);
        b.Append(r.Episode).Append(',').Append(r.Step).Append(',').Append(r.Action).Append(',').Append(CsvText(r.ActionName)).Append(',')
         .Append(ResultWords[(int)r.Result]).Append(',').Append(Num(r.Reward)).Append(',')
         .Append(Num(r.Terms.Task)).Append(',').Append(Num(r.Terms.Slowdown)).Append(',').Append(Num(r.Terms.Denial)).Append(',').Append(Num(r.Terms.Kill)).Append(',')
         .Append(r.Defcon).Append(',').Append(r.Violations).Append(',').Append(r.Violation ? '1' : '0').Append(',')
         .Append(Num(r.SlowdownMs)).Append(',').Append(Num(r.TimeMs)).Append(',')
         .Append(r.Terminated ? '1' : '0').Append(',').Append(r.Truncated ? '1' : '0').Append(',')
         .Append(Num(r.Terms.Anomaly)).Append(',').Append(r.AnomalyScore?.ToString(CultureInfo.InvariantCulture));
        return b.ToString();
    }

    internal static string Json(in StepRecord r)
    {
        var b = new StringBuilder(256);
        b.Append("{\"episode\":").Append(r.Episode).Append(",\"step\":").Append(r.Step).Append(",\"action\":").Append(r.Action)
         .Append(",\"action_name\":").Append(JsonSerializer.Serialize(r.ActionName))
         .Append(",\"result\":\"").Append(ResultWords[(int)r.Result]).Append("\",\"reward\":").Append(Num(r.Reward))
         .Append(",\"reward_terms\":{\"task\":").Append(Num(r.Terms.Task)).Append(",\"slowdown\":").Append(Num(r.Terms.Slowdown))
         .Append(",\"denial\":").Append(Num(r.Terms.Denial)).Append(",\"kill\":").Append(Num(r.Terms.Kill)).Append(",\"anomaly\":").Append(Num(r.Terms.Anomaly))
         .Append("},\"defcon\":").Append(r.Defcon).Append(",\"violations\":").Append(r.Violations)
         .Append(",\"violation\":").Append(r.Violation ? "true" : "false")
         .Append(",\"slowdown_ms\":").Append(Num(r.SlowdownMs)).Append(",\"time_ms\":").Append(Num(r.TimeMs))
         .Append(",\"terminated\":").Append(r.Terminated ? "true" : "false").Append(",\"truncated\":").Append(r.Truncated ? "true" : "false");
        if (r.AnomalyScore is { } score)
            b.Append(",\"anomaly_score\":").Append(score);
        b.Append('}');
        return b.ToString();
    }

    internal static string Csv(in EpisodeRecord e) => string.Join(',',
        e.Episode.ToString(CultureInfo.InvariantCulture), Num(e.Return), Num(e.Task), Num(e.Slowdown), Num(e.Denial), Num(e.Kill),
        e.Violations.ToString(CultureInfo.InvariantCulture), e.MinDefcon.ToString(CultureInfo.InvariantCulture),
        e.Killed ? "1" : "0", e.Success ? "1" : "0", e.Steps.ToString(CultureInfo.InvariantCulture), Num(e.SlowdownMs),
        Num(e.Anomaly), e.AnomalyKilled ? "1" : "0", e.AnomalyScore?.ToString(CultureInfo.InvariantCulture) ?? "");

    /// <summary>Reads <c>episodes.csv</c> back (the report's input).</summary>
    /// <exception cref="InvalidDataException">The file's header or a row is not what this writer writes; the message names file and line.</exception>
    internal static List<EpisodeRecord> ReadEpisodes(string path) => ReadRows(path, EpisodesHeader, f =>
        new EpisodeRecord(Int(f[0]), Dbl(f[1]), Dbl(f[2]), Dbl(f[3]), Dbl(f[4]), Dbl(f[5]), long.Parse(f[6], CultureInfo.InvariantCulture),
            Int(f[7]), f[8] == "1", f[9] == "1", Int(f[10]), Dbl(f[11]), f[12].Length == 0 ? 0 : Dbl(f[12]), f[13] == "1",
            f[14].Length == 0 ? null : Int(f[14])));

    /// <summary>Reads the (episode, step, DEFCON) columns of <c>trajectory.csv</c>: the heat map's input.</summary>
    /// <exception cref="InvalidDataException">The file's header or a row is not what this writer writes; the message names file and line.</exception>
    internal static List<(int Episode, int Step, int Defcon)> ReadDefcon(string path) =>
        ReadRows(path, TrajectoryHeader, f => (Int(f[0]), Int(f[1]), Int(f[10])));

    /// <summary>Reads the (episode, step, anomaly score) columns of <c>trajectory.csv</c>: the score-over-steps figure's input.</summary>
    /// <exception cref="InvalidDataException">The file's header or a row is not what this writer writes; the message names file and line.</exception>
    internal static List<(int Episode, int Step, int? Score)> ReadAnomalyScores(string path) =>
        ReadRows(path, TrajectoryHeader, f => (Int(f[0]), Int(f[1]), f[18].Length == 0 ? (int?)null : Int(f[18])));

    // The rows of a CSV file this class wrote: the header must be <paramref name="header"/> and every
    // row have its number of fields (names are plain words, so commas only separate fields). Only
    // lines that end in a newline are read: a last line without one is still being written (a run
    // in progress, read by `mis report` while a shard runs) or was torn by a crash (a shard killed
    // outright), and its fields would be cut short. An empty file (killed before its header was
    // flushed) has no rows.
    private static List<T> ReadRows<T>(string path, string header, Func<string[], T> parse)
    {
        int fields = header.Split(',').Length;
        var rows = new List<T>();
        // Shared for writing: the runner reads episodes.csv back while it holds it open for appending.
        using var reader = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
        using var lines = TerminatedLines(reader).GetEnumerator();
        if (!lines.MoveNext())
            return rows;
        // A file written before the anomaly columns existed: its rows read as unscored.
        int missing = lines.Current == header ? 0
            : header.StartsWith(lines.Current + ",anomaly,", StringComparison.Ordinal) ? fields - lines.Current.Split(',').Length
            : throw new InvalidDataException($"{path}:1: unexpected header \"{lines.Current}\"; expected \"{header}\"");
        int line = 1;
        while (lines.MoveNext())
        {
            string text = lines.Current;
            line++;
            if (text.Length == 0)
                continue;
            var f = text.Split(',');
            if (missing > 0)
                f = [.. f, .. Enumerable.Repeat("", missing)];
            try
            {
                if (f.Length != fields)
                    throw new FormatException($"{f.Length} fields, expected {fields}");
                rows.Add(parse(f));
            }
            catch (FormatException e)
            {
                throw new InvalidDataException($"{path}:{line}: {e.Message}", e);
            }
        }
        return rows;
    }

    // The lines of <paramref name="reader"/> that end in '\n' (without it, nor a '\r' before it);
    // what follows the last newline is left out.
    private static IEnumerable<string> TerminatedLines(TextReader reader)
    {
        var line = new StringBuilder();
        var buffer = new char[1 << 16];
        int read;
        while ((read = reader.Read(buffer, 0, buffer.Length)) > 0)
        {
            int start = 0;
            int newline;
            while ((newline = Array.IndexOf(buffer, '\n', start, read - start)) >= 0)
            {
                line.Append(buffer, start, newline - start);
                if (line.Length > 0 && line[^1] == '\r')
                    line.Length--;
                yield return line.ToString();
                line.Clear();
                start = newline + 1;
            }
            line.Append(buffer, start, read - start);
        }
    }

    /// <summary>Writes JSON to <paramref name="path"/> atomically (a temporary file renamed over it).</summary>
    internal static void WriteJsonAtomic(string path, JsonNode node) => WriteTextAtomic(path, JsonText(node));

    /// <summary>
    /// Writes <paramref name="text"/> to <paramref name="path"/> atomically: a reader sees the old
    /// file or the new one, never a part. The temporary file's name is unique to this write, so two
    /// processes writing the same file (shards sharing a run directory) cannot rename each other's
    /// half-written temporary into place.
    /// </summary>
    internal static void WriteTextAtomic(string path, string text)
    {
        string temp = TempName(path);
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>
    /// Publishes a file that several shards of one sweep write with the same content: written
    /// when absent, left alone when present, never overwritten. The content goes to a temporary
    /// file first, which is then hard-linked to <paramref name="path"/>: a reader sees all of it or
    /// no file, and of two writers racing to create it one wins (link(2) fails on an existing name,
    /// atomically, also over NFS) and the other compares against the winner's file.
    /// </summary>
    /// <returns>Null when the file now holds <paramref name="text"/>; otherwise the text it holds (another writer's).</returns>
    internal static string? PublishOnce(string path, string text)
    {
        if (!File.Exists(path))
        {
            string temp = TempName(path);
            File.WriteAllText(temp, text);
            try
            {
                int errno = Libc.Link(temp, path);
                // A filesystem without hard links: check, then rename. Two steps, so two shards of
                // different experiments starting at the same moment could both think they won; the
                // same experiment's shards publish the same bytes either way.
                if (errno is not 0 and not Errno.EEXIST && !File.Exists(path))
                    File.Move(temp, path, overwrite: false);
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another writer's rename came first: compare against it below.
            }
            finally
            {
                File.Delete(temp);
            }
        }
        string existing = File.ReadAllText(path);
        return existing == text ? null : existing;
    }

    /// <summary>The text <see cref="WriteJsonAtomic"/> writes for <paramref name="node"/>: indented, one trailing newline.</summary>
    internal static string JsonText(JsonNode node) => node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";

    private static string TempName(string path) => $"{path}.{Guid.NewGuid():N}.tmp";

    /// <summary>Reads a JSON object file, or null when it is missing or unreadable (a run that never got that far).</summary>
    public static JsonObject? ReadJson(string path)
    {
        try
        {
            return File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) as JsonObject : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    internal static string Num(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static int Int(string s) => int.Parse(s, CultureInfo.InvariantCulture);

    private static double Dbl(string s) => double.Parse(s, CultureInfo.InvariantCulture);

    private static string CsvText(string text) =>
        text.AsSpan().IndexOfAny(",\"\n\r") < 0 ? text : "\"" + text.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
