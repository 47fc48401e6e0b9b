using System.Text.Json;
using System.Text.Json.Serialization;

namespace Mis.Enforcer.Events;

/// <summary>
/// One enforcement event, written as one JSON line (schema in README, "Events"). Every event has
/// the common fields; the optional ones appear only on the kinds that carry them. The schema is
/// flat so that <c>pandas.read_json(path, lines=True)</c> gives one column per field.
/// </summary>
public sealed record EnforcementEvent
{
    /// <summary>violation, defcon_transition, slowdown, kill, exit, ringbuf_drop, syscall (learning mode), trace or anomaly.</summary>
    public required string Event { get; init; }

    /// <summary>Wall-clock time, ISO 8601 UTC with microseconds.</summary>
    public required DateTimeOffset Timestamp { get; init; }

    /// <summary>The workload's cgroup id.</summary>
    public required ulong CgroupId { get; init; }

    /// <summary>Process id (tgid) concerned, 0 when none.</summary>
    public int Pid { get; init; }

    /// <summary>Thread id concerned, 0 when none.</summary>
    public int Tid { get; init; }

    /// <summary>The task's command name (up to 15 characters), "" when unknown.</summary>
    public string Comm { get; init; } = "";

    /// <summary>file_read, file_write, exec, connect, send, escape_syscall, syscall; "" for state events.</summary>
    public string Operation { get; init; } = "";

    /// <summary>Path, "address:port", or syscall name; "" when none.</summary>
    public string Target { get; init; } = "";

    /// <summary>deny, allow, trace or kill; "" for state events.</summary>
    public string Decision { get; init; } = "";

    /// <summary>DEFCON level after the event (5..1); <see cref="Mis.Enforcer.Defcon.DefconLevel.NotKnown"/> (0) when the kernel's state could not be read.</summary>
    public int Defcon { get; init; }

    /// <summary>The cgroup's violation count after the event.</summary>
    public ulong Violations { get; init; }

    /// <summary>defcon_transition: the level before.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? PrevDefcon { get; init; }

    /// <summary>slowdown and exit: total time the cgroup's syscalls were slowed, in nanoseconds.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ulong? SlowdownNs { get; init; }

    /// <summary>syscall (learning mode): the syscall number.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? SyscallNr { get; init; }

    /// <summary>exit: the exit status (128 + signal when killed by a signal, as a shell reports it).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? ExitStatus { get; init; }

    /// <summary>exit: the signal that ended the workload, when one did.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? Signal { get; init; }

    /// <summary>ringbuf_drop: events lost since the previous ringbuf_drop event.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ulong? Dropped { get; init; }

    /// <summary>anomaly: the calibrated anomaly score of the window, 0..1000.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? AnomalyScore { get; init; }

    /// <summary>anomaly: the model's raw statistic for the window, before calibration (higher is more anomalous).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? AnomalyRaw { get; init; }

    /// <summary>anomaly: syscalls in the scored window.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? WindowSize { get; init; }

    /// <summary>anomaly: the scored window's syscall numbers, oldest first.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<int>? Window { get; init; }

    /// <summary>
    /// violation and trace: the deny point that decided — <c>lsm</c> (the BPF LSM file hooks),
    /// <c>seccomp</c> (the seccomp supervisor) or <c>kernel</c> (MIS's other kernel hooks: the
    /// network and socket hooks, the exec backstop).
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? DecidedBy { get; init; }

    /// <summary>The rule or level that produced a decision, when known.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Reason { get; init; }

    /// <summary>The event as one line of JSON (no trailing newline).</summary>
    public string ToJsonLine() => JsonSerializer.Serialize(this, EnforcementEventJson.Default.EnforcementEvent);

    /// <summary>Reads one line written by <see cref="ToJsonLine"/>.</summary>
    public static EnforcementEvent FromJsonLine(string line) =>
        JsonSerializer.Deserialize(line, EnforcementEventJson.Default.EnforcementEvent) ?? throw new JsonException("null event");
}

/// <summary>The JSON writer of <see cref="EnforcementEvent"/> lines (source-generated, snake_case).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(EnforcementEvent))]
public sealed partial class EnforcementEventJson : JsonSerializerContext;

/// <summary>Appends events to a JSON-lines file, one flushed line per event, safe from several threads.</summary>
public sealed class EventLog : IDisposable
{
    private readonly StreamWriter? _writer;
    private readonly object _gate = new();

    /// <summary>Opens <paramref name="path"/> for writing (truncating it); null writes nowhere.</summary>
    public EventLog(string? path)
    {
        if (path is null)
            return;
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null)
            Directory.CreateDirectory(dir);
        _writer = new StreamWriter(path, append: false) { AutoFlush = true };
    }

    /// <summary>How many events were written.</summary>
    internal long Count { get; private set; }

    /// <summary>Appends one line, flushed (safe from several threads); a log opened without a path only counts it.</summary>
    public void Write(EnforcementEvent e)
    {
        string line = e.ToJsonLine();
        lock (_gate)
        {
            _writer?.WriteLine(line);
            Count++;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
            _writer?.Dispose();
    }
}
