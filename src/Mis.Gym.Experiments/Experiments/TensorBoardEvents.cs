using System.Buffers.Binary;
using System.Numerics;
using Google.Protobuf;
using Mis.Gym.Experiments.TensorBoard;

namespace Mis.Gym.Experiments;

/// <summary>
/// A (config, seed) run's episodes as a TensorBoard events file, one scalar chart per
/// <see cref="EpisodeRecord"/> field: <c>RUN_DIR/tensorboard/CONFIG/seed-N/events.out.tfevents.SECONDS.HOST</c>,
/// so <c>tensorboard --logdir RUN_DIR</c> shows one run per config and seed.
/// <para>The file is TensorBoard's record format: per record <c>uint64 length | uint32 masked
/// CRC-32C of the length's 8 bytes | data | uint32 masked CRC-32C of data</c>, little-endian, each
/// record a serialized <see cref="Event"/>; the first carries the file version
/// (<see cref="FileVersion"/>), then one per episode with <c>step</c> = the episode number.</para>
/// <para>Resume: <see cref="Start"/> rewrites the file from the episodes kept in <c>episodes.csv</c>
/// (after the runner cut it back to its checkpoint), so a resumed run holds each episode once; the
/// episodes that follow are appended as they finish. The rewrite goes to a temporary file renamed
/// into place, and the previous file's wall times are kept for the episodes it held intact; a crash
/// at any point leaves at worst a torn last record, which the next start rewrites away.</para>
/// </summary>
internal sealed class TensorBoardEvents : IDisposable
{
    /// <summary>The version string TensorBoard expects in a file's first event.</summary>
    internal const string FileVersion = "brain.Event:2";

    /// <summary>What every events file's name starts with (TensorBoard reads files whose name contains <c>tfevents</c>).</summary>
    internal const string FilePrefix = "events.out.tfevents.";

    // Without "tfevents" in it, so TensorBoard never reads a half-written rewrite.
    private const string RewriteFile = "rewrite.tmp";

    // The masking TensorBoard (from LevelDB's log format) applies to stored CRCs: a CRC of data that
    // itself holds CRCs stays meaningful.
    private const uint MaskDelta = 0xa282ead8;

    /// <summary>The charts, in the order each episode's summary lists them: tag and value of a record (NaN: not charted for it, as an unscored episode's anomaly score).</summary>
    internal static readonly (string Tag, Func<EpisodeRecord, double> Value)[] Scalars =
    [
        ("episode/return", e => e.Return),
        ("reward/task", e => e.Task),
        ("reward/slowdown", e => e.Slowdown),
        ("reward/denial", e => e.Denial),
        ("reward/kill", e => e.Kill),
        ("episode/violations", e => e.Violations),
        ("episode/min_defcon", e => e.MinDefcon),
        ("episode/success", e => e.Success ? 1 : 0),
        ("episode/killed", e => e.Killed ? 1 : 0),
        ("episode/steps", e => e.Steps),
        ("episode/slowdown_ms", e => e.SlowdownMs),
        ("reward/anomaly", e => e.Anomaly),
        ("episode/anomaly_killed", e => e.AnomalyKilled ? 1 : 0),
        ("episode/anomaly_score", e => e.AnomalyScore ?? double.NaN),
    ];

    private readonly FileStream _file;
    private readonly Func<DateTimeOffset> _clock;

    private TensorBoardEvents(FileStream file, Func<DateTimeOffset> clock)
    {
        _file = file;
        _clock = clock;
    }

    /// <summary>The events file being written.</summary>
    internal string Path => _file.Name;

    /// <summary>
    /// Starts the events file of a run in <paramref name="directory"/>: any previous one is replaced
    /// by a file holding the version event and <paramref name="kept"/>; <see cref="Append"/> adds the
    /// episodes that follow.
    /// </summary>
    /// <param name="directory">The run's directory under <c>tensorboard/</c> (created if missing).</param>
    /// <param name="kept">The episodes already on disk (in <c>episodes.csv</c>), in order.</param>
    /// <param name="clock">The wall clock (default: now).</param>
    internal static TensorBoardEvents Start(string directory, IReadOnlyList<EpisodeRecord> kept, Func<DateTimeOffset>? clock = null)
    {
        clock ??= () => DateTimeOffset.UtcNow;
        Directory.CreateDirectory(directory);
        var previous = Directory.GetFiles(directory, FilePrefix + "*");
        var wallTimes = WallTimes(previous);
        var now = clock();
        string temp = System.IO.Path.Combine(directory, RewriteFile);
        using (var rewrite = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.Read))
        {
            WriteRecord(rewrite, new Event { WallTime = Seconds(now), FileVersion = FileVersion });
            foreach (var episode in kept)
                WriteRecord(rewrite, EpisodeEvent(episode, wallTimes.GetValueOrDefault(episode.Episode, Seconds(now))));
            rewrite.Flush(flushToDisk: true);
        }
        // One events file per directory: TensorBoard would read every one and show old steps twice.
        foreach (var old in previous)
            File.Delete(old);
        string path = System.IO.Path.Combine(directory, $"{FilePrefix}{now.ToUnixTimeSeconds()}.{Environment.MachineName}");
        File.Move(temp, path, overwrite: true);
        var file = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read, 1 << 16);
        return new TensorBoardEvents(file, clock);
    }

    /// <summary>
    /// Writes the events file of a run that has none (a run directory from before these files, or
    /// one whose <c>tensorboard/</c> was deleted) from its <c>episodes.csv</c>; does nothing when
    /// the file exists or there are no episodes.
    /// </summary>
    internal static void WriteIfMissing(string directory, string episodesCsv)
    {
        if ((Directory.Exists(directory) && Directory.GetFiles(directory, FilePrefix + "*").Length > 0) || !File.Exists(episodesCsv))
            return;
        using var events = Start(directory, RunFiles.ReadEpisodes(episodesCsv));
    }

    /// <summary>Appends an episode's event (buffered: <see cref="Flush"/> makes it visible).</summary>
    internal void Append(in EpisodeRecord episode) => WriteRecord(_file, EpisodeEvent(episode, Seconds(_clock())));

    /// <summary>Writes what is buffered to the file (the runner does at every checkpoint).</summary>
    internal void Flush() => _file.Flush();

    /// <inheritdoc/>
    public void Dispose() => _file.Dispose();

    /// <summary>CRC-32C (Castagnoli) of <paramref name="data"/>, as TensorBoard's records use it.</summary>
    internal static uint Crc32C(ReadOnlySpan<byte> data)
    {
        // BitOperations.Crc32C is the bare update step (the SSE4.2/ARMv8 instruction): the standard
        // CRC starts from all ones and inverts the result.
        uint crc = ~0u;
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }
        foreach (byte b in data)
            crc = BitOperations.Crc32C(crc, b);
        return ~crc;
    }

    /// <summary>The stored form of a CRC: rotated right by 15 bits plus a constant.</summary>
    internal static uint MaskedCrc32C(ReadOnlySpan<byte> data)
    {
        uint crc = Crc32C(data);
        return unchecked(((crc >> 15) | (crc << 17)) + MaskDelta);
    }

    private static Event EpisodeEvent(in EpisodeRecord episode, double wallTime)
    {
        var summary = new Summary();
        foreach (var (tag, value) in Scalars)
        {
            double v = value(episode);
            if (!double.IsNaN(v))
                summary.Value.Add(new Summary.Types.Value { Tag = tag, SimpleValue = (float)v });
        }
        return new Event { WallTime = wallTime, Step = episode.Episode, Summary = summary };
    }

    private static void WriteRecord(Stream stream, Event message)
    {
        byte[] data = message.ToByteArray();
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], MaskedCrc32C(header[..8]));
        Span<byte> footer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, MaskedCrc32C(data));
        stream.Write(header);
        stream.Write(data);
        stream.Write(footer);
    }

    // The wall time of each episode event in earlier files, read up to the first record that is
    // torn or fails its CRCs (what a crash left after it is rewritten anyway).
    private static Dictionary<long, double> WallTimes(IEnumerable<string> files)
    {
        var times = new Dictionary<long, double>();
        foreach (string file in files)
        {
            byte[] bytes = File.ReadAllBytes(file);
            var rest = bytes.AsSpan();
            while (rest.Length >= 16)
            {
                ulong length = BinaryPrimitives.ReadUInt64LittleEndian(rest);
                if (BinaryPrimitives.ReadUInt32LittleEndian(rest[8..]) != MaskedCrc32C(rest[..8]) || length > (ulong)(rest.Length - 16))
                    break;
                var data = rest.Slice(12, (int)length);
                if (BinaryPrimitives.ReadUInt32LittleEndian(rest[(12 + (int)length)..]) != MaskedCrc32C(data))
                    break;
                Event message;
                try
                {
                    message = Event.Parser.ParseFrom(data);
                }
                catch (InvalidProtocolBufferException)
                {
                    break;
                }
                if (message.WhatCase == Event.WhatOneofCase.Summary)
                    times[message.Step] = message.WallTime;
                rest = rest[(16 + (int)length)..];
            }
        }
        return times;
    }

    private static double Seconds(DateTimeOffset time) => time.ToUnixTimeMilliseconds() / 1000.0;
}
