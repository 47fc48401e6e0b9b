using System.Buffers.Binary;
using System.Text;
using Google.Protobuf;
using Mis.Gym.Agents;
using Mis.Gym.Experiments;

namespace Mis.Gym.Tests.Experiments;

/// <summary>
/// The run directory's TensorBoard events files, read back record by record by a reader of the
/// format written here from TensorBoard's definitions (its own CRC-32C, field numbers spelled out),
/// not by the writer's code: the framing and both masked CRCs of every record, the version event,
/// one event per episode with the values of <c>episodes.csv</c>, and each episode exactly once after
/// a failed and resumed run.
/// </summary>
public sealed class TensorBoardEventsTests
{
    // TensorBoard's tags, in the order the writer lists them, and each one's value in an episode row.
    private static readonly string[] Tags =
    [
        "episode/return", "reward/task", "reward/slowdown", "reward/denial", "reward/kill", "episode/violations",
        "episode/min_defcon", "episode/success", "episode/killed", "episode/steps", "episode/slowdown_ms",
        "reward/anomaly", "episode/anomaly_killed", // and episode/anomaly_score, for an episode the anomaly scorer scored
    ];

    private static float[] Expected(EpisodeRecord e) =>
    [
        (float)e.Return, (float)e.Task, (float)e.Slowdown, (float)e.Denial, (float)e.Kill, e.Violations,
        e.MinDefcon, e.Success ? 1 : 0, e.Killed ? 1 : 0, e.Steps, (float)e.SlowdownMs,
        (float)e.Anomaly, e.AnomalyKilled ? 1 : 0,
    ];

    [Fact]
    public void Crc32C_matches_the_Castagnoli_check_value_and_a_bitwise_reference()
    {
        Assert.Equal(0xE3069283u, TensorBoardEvents.Crc32C("123456789"u8));
        Assert.Equal(0xE3069283u, BitwiseCrc32C("123456789"u8));
        Assert.Equal(0u, TensorBoardEvents.Crc32C([]));
        // Every length up to a few words: the writer takes 8 bytes at a time, then the tail byte by byte.
        var random = new Random(17);
        for (int length = 1; length < 40; length++)
        {
            var data = new byte[length];
            random.NextBytes(data);
            Assert.Equal(BitwiseCrc32C(data), TensorBoardEvents.Crc32C(data));
            uint crc = BitwiseCrc32C(data);
            Assert.Equal(unchecked(((crc >> 15) | (crc << 17)) + 0xa282ead8u), TensorBoardEvents.MaskedCrc32C(data));
        }
    }

    [Fact]
    public void Every_config_and_seed_gets_one_events_file_with_one_event_per_episode_of_episodes_csv()
    {
        using var dir = new TempDir();
        var experiment = ExperimentSupport.Parse(ExperimentSupport.Text(episodes: 12, seeds: "2", checkpointEvery: 5,
            extra: "[sweep]\nfeedback = [\"none\", \"deny+slowdown+kill\"]"));
        double before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0 - 1;
        new ExperimentRunner(experiment, dir.Path, ExperimentSupport.Maker).Run(null, TestContext.Current.CancellationToken);
        double after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0 + 1;

        bool sawViolation = false;
        foreach (string config in new[] { "none", "deny+slowdown+kill" })
        {
            foreach (int seed in new[] { 0, 1 })
            {
                string file = EventsFile(dir.Path, config, seed);
                var name = Path.GetFileName(file).Split('.');
                Assert.Equal(["events", "out", "tfevents"], name[..3]);
                Assert.InRange(long.Parse(name[3], System.Globalization.CultureInfo.InvariantCulture), (long)before, (long)after);
                Assert.Equal(Environment.MachineName, string.Join('.', name[4..]));

                var events = ReadEvents(file);
                var rows = RunFiles.ReadEpisodes(Path.Combine(dir.Path, config, $"seed-{seed}", RunFiles.Episodes));
                AssertMatches(rows, events);
                Assert.All(events, e => Assert.InRange(e.WallTime, before, after));
                sawViolation |= rows.Any(r => r.Violations > 0);
            }
        }
        Assert.True(sawViolation, "the random agent never violated: the violation charts were checked on zeros only");
    }

    [Fact]
    public void A_corrupted_byte_fails_the_record_crc()
    {
        using var dir = new TempDir();
        new ExperimentRunner(ExperimentSupport.Parse(ExperimentSupport.Text(episodes: 3, seeds: "1")), dir.Path, ExperimentSupport.Maker)
            .Run(null, TestContext.Current.CancellationToken);
        byte[] good = File.ReadAllBytes(EventsFile(dir.Path, "default", 0));
        Assert.Equal(4, ReadEvents(good).Count);

        // The second record starts after the first's 12-byte header, its data and its 4-byte CRC.
        int second = 12 + (int)BinaryPrimitives.ReadUInt64LittleEndian(good) + 4;
        var data = (byte[])good.Clone();
        data[second + 12 + 5] ^= 0x01;
        Assert.Contains("data CRC", Assert.Throws<InvalidDataException>(() => ReadEvents(data)).Message);
        var length = (byte[])good.Clone();
        length[second] ^= 0x01;
        Assert.Contains("length CRC", Assert.Throws<InvalidDataException>(() => ReadEvents(length)).Message);
        Assert.Contains("torn", Assert.Throws<InvalidDataException>(() => ReadEvents(good[..^3])).Message);
    }

    [Fact]
    public void A_failed_run_resumed_holds_each_episode_once_in_order()
    {
        using var dir = new TempDir();
        var experiment = ExperimentSupport.Parse(ExperimentSupport.Text(algorithm: "counting", episodes: 40, seeds: "1", checkpointEvery: 7));
        new ExperimentRunner(experiment, dir.File("whole"), ExperimentSupport.Maker).Run(null, TestContext.Current.CancellationToken);

        // The first attempt breaks in episode 25, after the checkpoint at 21: episodes 21-24 are in
        // the files but not in the checkpoint, and a crash tore the events file's last record.
        string resumed = dir.File("resumed");
        var failed = new ExperimentRunner(experiment, resumed, (algorithm, obs, actions, seed, hp) =>
            new BreakingAgent(ExperimentSupport.Maker(algorithm, obs, actions, seed, hp), breakInEpisode: 25)).Run(null, TestContext.Current.CancellationToken);
        Assert.Equal(RunStatus.Failed, Assert.Single(failed).Status);
        string stale = EventsFile(resumed, "default", 0);
        var before = ReadEvents(stale);
        Assert.Equal(Enumerable.Range(0, 25), before.Skip(1).Select(e => (int)e.Step));
        File.AppendAllBytes(stale, File.ReadAllBytes(stale)[..20]);

        var outcome = Assert.Single(new ExperimentRunner(experiment, resumed, ExperimentSupport.Maker).Run(null, TestContext.Current.CancellationToken));
        Assert.Equal((RunStatus.Completed, 21), (outcome.Status, outcome.ResumedFrom));
        string file = EventsFile(resumed, "default", 0);
        Assert.False(File.Exists(Path.Combine(Path.GetDirectoryName(file)!, "rewrite.tmp")));
        var events = ReadEvents(file);
        var rows = RunFiles.ReadEpisodes(Path.Combine(resumed, "default", "seed-0", RunFiles.Episodes));
        AssertMatches(rows, events);
        Assert.Equal(Enumerable.Range(0, 40), events.Skip(1).Select(e => (int)e.Step));
        // The same values as the uninterrupted run (the counting agent saves its whole state)...
        Assert.Equal(ReadEvents(EventsFile(dir.File("whole"), "default", 0)).Skip(1).Select(e => e.Values),
            events.Skip(1).Select(e => e.Values));
        // ...and the kept episodes keep the wall times they were first written with.
        Assert.Equal(before.Skip(1).Take(21).Select(e => e.WallTime), events.Skip(1).Take(21).Select(e => e.WallTime));
    }

    [Fact]
    public void A_complete_run_without_events_gets_them_from_episodes_csv()
    {
        using var dir = new TempDir();
        var experiment = ExperimentSupport.Parse(ExperimentSupport.Text(episodes: 6, seeds: "2"));
        new ExperimentRunner(experiment, dir.Path, ExperimentSupport.Maker).Run(null, TestContext.Current.CancellationToken);
        Directory.Delete(Path.Combine(dir.Path, RunFiles.TensorBoard), recursive: true);

        var outcomes = new ExperimentRunner(experiment, dir.Path, ExperimentSupport.Maker).Run(null, TestContext.Current.CancellationToken);
        Assert.All(outcomes, o => Assert.Equal(RunStatus.Skipped, o.Status));
        foreach (int seed in new[] { 0, 1 })
        {
            AssertMatches(RunFiles.ReadEpisodes(Path.Combine(dir.Path, "default", $"seed-{seed}", RunFiles.Episodes)),
                ReadEvents(EventsFile(dir.Path, "default", seed)));
        }
    }

    private static void AssertMatches(List<EpisodeRecord> rows, List<TensorBoardEvent> events)
    {
        Assert.NotEmpty(rows);
        Assert.Equal("brain.Event:2", events[0].FileVersion);
        Assert.Null(events[0].Values);
        Assert.Equal(rows.Count + 1, events.Count);
        for (int i = 0; i < rows.Count; i++)
        {
            var e = events[i + 1];
            Assert.Null(e.FileVersion);
            Assert.Equal(rows[i].Episode, e.Step);
            Assert.Equal(i, e.Step);
            Assert.NotNull(e.Values);
            Assert.Equal(Tags, e.Values.Select(v => v.Tag));
            Assert.Equal(Expected(rows[i]), e.Values.Select(v => v.Value));
        }
    }

    private static string EventsFile(string runDir, string config, int seed)
    {
        string dir = Path.Combine(runDir, "tensorboard", config, $"seed-{seed}");
        return Assert.Single(Directory.GetFiles(dir), f => Path.GetFileName(f).Contains("tfevents", StringComparison.Ordinal));
    }

    /// <summary>One decoded Event: its wall time, step, and either a file version or the summary's (tag, value) pairs.</summary>
    private sealed record TensorBoardEvent(double WallTime, long Step, string? FileVersion, List<(string Tag, float Value)>? Values);

    private static List<TensorBoardEvent> ReadEvents(string path) => ReadEvents(File.ReadAllBytes(path));

    // TensorBoard's record framing: uint64 length, masked CRC of the length, data, masked CRC of the
    // data; the file must end on a record boundary.
    private static List<TensorBoardEvent> ReadEvents(byte[] file)
    {
        var events = new List<TensorBoardEvent>();
        int at = 0;
        while (at < file.Length)
        {
            if (file.Length - at < 12)
                throw new InvalidDataException($"torn record header at byte {at}");
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(at));
            if (BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 8)) != Masked(BitwiseCrc32C(file.AsSpan(at, 8))))
                throw new InvalidDataException($"length CRC mismatch at byte {at}");
            if (length > (ulong)(file.Length - at - 16))
                throw new InvalidDataException($"torn record at byte {at}: {length} bytes of data announced");
            var data = file.AsSpan(at + 12, (int)length);
            if (BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 12 + (int)length)) != Masked(BitwiseCrc32C(data)))
                throw new InvalidDataException($"data CRC mismatch in the record at byte {at}");
            events.Add(DecodeEvent(data.ToArray()));
            at += 16 + (int)length;
        }
        return events;
    }

    // tensorflow.Event: wall_time = 1 (double), step = 2 (int64), file_version = 3 (string), summary = 5.
    private static TensorBoardEvent DecodeEvent(byte[] data)
    {
        var input = new CodedInputStream(data);
        double wallTime = 0;
        long step = 0;
        string? version = null;
        List<(string, float)>? values = null;
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (tag)
            {
                case (1 << 3) | 1: wallTime = input.ReadDouble(); break;
                case (2 << 3) | 0: step = input.ReadInt64(); break;
                case (3 << 3) | 2: version = input.ReadString(); break;
                case (5 << 3) | 2: values = DecodeSummary(input.ReadBytes()); break;
                default: throw new InvalidDataException($"unexpected Event field tag {tag}");
            }
        }
        return new TensorBoardEvent(wallTime, step, version, values);
    }

    // tensorflow.Summary: repeated Value value = 1; Value: tag = 1 (string), simple_value = 2 (float).
    private static List<(string, float)> DecodeSummary(ByteString bytes)
    {
        var values = new List<(string, float)>();
        var summary = bytes.CreateCodedInput();
        uint tag;
        while ((tag = summary.ReadTag()) != 0)
        {
            Assert.Equal((1u << 3) | 2, tag);
            var value = summary.ReadBytes().CreateCodedInput();
            string? name = null;
            float? number = null;
            uint field;
            while ((field = value.ReadTag()) != 0)
            {
                switch (field)
                {
                    case (1 << 3) | 2: name = value.ReadString(); break;
                    case (2 << 3) | 5: number = value.ReadFloat(); break;
                    default: throw new InvalidDataException($"unexpected Summary.Value field tag {field}");
                }
            }
            values.Add((name ?? throw new InvalidDataException("a value without a tag"), number ?? throw new InvalidDataException($"{name} without simple_value")));
        }
        return values;
    }

    private static uint Masked(uint crc) => unchecked(((crc >> 15) | (crc << 17)) + 0xa282ead8u);

    // CRC-32C one bit at a time (reflected polynomial 0x82F63B78): slow, and independent of the writer's.
    private static uint BitwiseCrc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int bit = 0; bit < 8; bit++)
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        return ~crc;
    }

    /// <summary>An agent that throws when episode <c>breakInEpisode</c> starts (a run failing after its last checkpoint).</summary>
    private sealed class BreakingAgent(IAgent inner, int breakInEpisode) : IAgent
    {
        private int _episode;

        public string Algorithm => inner.Algorithm;

        public int Act(float[] observation) =>
            _episode == breakInEpisode ? throw new InvalidOperationException("the agent broke") : inner.Act(observation);

        public int ActGreedy(float[] observation) => inner.ActGreedy(observation);

        public void Observe(in Transition t)
        {
            inner.Observe(t);
            if (t.Done)
                _episode++;
        }

        public void Save(string directory) => inner.Save(directory);

        public void Load(string directory) => inner.Load(directory);

        public void Dispose() => inner.Dispose();
    }
}
