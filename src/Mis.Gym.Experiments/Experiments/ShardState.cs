using System.Globalization;
using System.Text.Json.Nodes;

namespace Mis.Gym.Experiments;

/// <summary>What a shard's state file (<c>shards/shard-I-of-N.json</c>) says.</summary>
/// <param name="Shard">The shard.</param>
/// <param name="Status"><c>running</c>, <c>finished</c> or <c>interrupted</c>.</param>
/// <param name="Host">The host it ran on.</param>
/// <param name="Updated">When it last wrote its state, ISO 8601 (a <c>running</c> shard that stopped updating was killed).</param>
public sealed record ShardRecord(Shard Shard, string Status, string Host, string Updated);

/// <summary>
/// A shard's state file in the shared run directory, <c>shards/shard-I-of-N.json</c>: which host
/// and process ran it, whether it is running, finished or was interrupted, and how many of its runs
/// ended how. One file per shard, so shards never write the same file; <c>mis report</c> reads
/// them to say which shard a missing run belongs to. A shard killed outright leaves
/// <c>running</c> with the time of its last update.
/// </summary>
internal sealed class ShardState(string runDirectory, Shard shard, int runs)
{
    /// <summary>The run directory's folder of shard state files.</summary>
    internal const string Folder = "shards";
    internal const string Running = "running";
    internal const string Finished = "finished";
    internal const string Interrupted = "interrupted";

    private readonly DateTimeOffset _started = DateTimeOffset.UtcNow;
    private int _complete;
    private int _failed;

    /// <summary>The state file of <paramref name="shard"/> in <paramref name="runDirectory"/>.</summary>
    internal static string PathOf(string runDirectory, Shard shard) =>
        Path.Combine(runDirectory, Folder, string.Create(CultureInfo.InvariantCulture, $"shard-{shard.Index}-of-{shard.Count}.json"));

    /// <summary>Counts a run's outcome (written with the next <see cref="Write"/>).</summary>
    internal void CountOutcome(RunStatus status)
    {
        if (status == RunStatus.Failed)
            _failed++;
        else
            _complete++;
        Write(Running);
    }

    /// <summary>Writes the state file (atomically).</summary>
    internal void Write(string status)
    {
        string path = PathOf(runDirectory, shard);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        RunFiles.WriteJsonAtomic(path, new JsonObject
        {
            ["shard"] = shard.ToString(),
            ["index"] = shard.Index,
            ["count"] = shard.Count,
            ["status"] = status,
            ["runs"] = runs,
            ["complete"] = _complete,
            ["failed"] = _failed,
            ["host"] = Environment.MachineName,
            ["pid"] = Environment.ProcessId,
            ["started"] = _started.ToString("O", CultureInfo.InvariantCulture),
            ["updated"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
        });
    }

    /// <summary>Every readable shard state file of <paramref name="runDirectory"/>, by count and index.</summary>
    internal static IReadOnlyList<ShardRecord> ReadAll(string runDirectory)
    {
        string folder = Path.Combine(runDirectory, Folder);
        if (!Directory.Exists(folder))
            return [];
        var records = new List<ShardRecord>();
        foreach (var file in Directory.GetFiles(folder, "shard-*.json"))
        {
            if (RunFiles.ReadJson(file) is not { } json)
                continue;
            try
            {
                if (json["index"]?.GetValue<int>() is not { } index || json["count"]?.GetValue<int>() is not { } count || count < 1 || index < 0 || index >= count)
                    continue; // not a shard's state: it says nothing about the runs
                records.Add(new ShardRecord(new Shard(index, count), json["status"]?.GetValue<string>() ?? "?", json["host"]?.GetValue<string>() ?? "?",
                    json["updated"]?.GetValue<string>() ?? "?"));
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                // A value of the wrong type: not a shard's state either.
            }
        }
        return records.OrderBy(r => r.Shard.Count).ThenBy(r => r.Shard.Index).ToList();
    }
}
