using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Mis.Server.Observability;

/// <summary>One audited RPC.</summary>
/// <param name="Time">When the call ended (UTC).</param>
/// <param name="Method">The RPC, e.g. <c>KillProcess</c>.</param>
/// <param name="Peer">Who called: <c>ipv4:127.0.0.1:PORT</c>, <c>unix:PATH</c>, with the client certificate's subject under mutual TLS.</param>
/// <param name="Arguments">The request, summarised (long values cut, environment values redacted).</param>
/// <param name="Status">The gRPC status code, e.g. <c>OK</c>, <c>NOT_FOUND</c>.</param>
/// <param name="Detail">The status message when not OK.</param>
/// <param name="DurationMs">Time spent in the call.</param>
public sealed record AuditRecord(DateTimeOffset Time, string Method, string Peer, string Arguments, string Status, string? Detail, double DurationMs)
{
    /// <summary>The caller's uid (SO_PEERCRED) on the Unix socket; null on TCP.</summary>
    public uint? Uid { get; init; }

    /// <summary>The caller's process id at connect time (Unix socket only).</summary>
    public int? Pid { get; init; }

    /// <summary>"admin" or "user", as the control plane authorized the caller; null when it was refused before that was known.</summary>
    public string? Role { get; init; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AuditRecord))]
internal sealed partial class AuditJson : JsonSerializerContext;

/// <summary>
/// The audit trail: one JSON line per RPC, in a file only root can read (0600: the arguments name
/// files and cgroups). Each line reaches the file (one <c>write(2)</c>, no user-space buffer)
/// before <see cref="Write"/> returns, so an RPC's line is in the file before its response leaves,
/// and lines are in the order of the calls to <see cref="Write"/>. Rotation by size: a line that
/// would take the file past <c>max_file_size_mb</c> first moves it to <c>PATH.1</c> (older ones
/// to <c>.2</c>, ...), keeping <c>max_files</c> rotated files.
/// </summary>
public sealed class AuditLog : IDisposable
{
    // The file is read by people and log tools, not embedded in HTML: quotes and angle brackets
    // inside the arguments stay as they are instead of becoming \u0022 and \u003c.
    private static readonly AuditJson Json = new(new JsonSerializerOptions(AuditJson.Default.Options) { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    private readonly Lock _gate = new();
    private readonly long _maxBytes;
    private readonly int _maxFiles;
    // The line being written, reused under _gate: no string and no array per line.
    private readonly ArrayBufferWriter<byte> _line = new(512);
    private readonly Utf8JsonWriter _json;
    private FileStream? _stream;
    private long _size; // of the live file, kept here: no fstat per line

    /// <summary>Opens (appends to) <paramref name="path"/>, creating its directory.</summary>
    /// <param name="path">The live file.</param>
    /// <param name="maxBytes">Rotate before a line would take the file past this size.</param>
    /// <param name="maxFiles">Rotated files kept (<c>PATH.1</c> .. <c>PATH.N</c>).</param>
    public AuditLog(string path, long maxBytes, int maxFiles)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxFiles, 1);
        Path = System.IO.Path.GetFullPath(path);
        _maxBytes = maxBytes;
        _maxFiles = maxFiles;
        if (System.IO.Path.GetDirectoryName(Path) is { } dir)
            Directory.CreateDirectory(dir);
        _json = new Utf8JsonWriter(_line, new JsonWriterOptions { Encoder = Json.Options.Encoder, SkipValidation = true });
        _stream = Open();
        _size = _stream.Length;
    }

    /// <summary>The live file.</summary>
    internal string Path { get; }

    /// <summary>Appends one line, rotating first when it would not fit; the line is in the file when this returns.</summary>
    /// <exception cref="IOException">The file cannot be written (the caller reports it).</exception>
    public void Write(AuditRecord record)
    {
        lock (_gate)
        {
            if (_stream is null)
                return;
            _line.ResetWrittenCount();
            _json.Reset(_line);
            JsonSerializer.Serialize(_json, record, Json.AuditRecord);
            _line.Write("\n"u8);
            var line = _line.WrittenSpan;
            if (_size > 0 && _size + line.Length > _maxBytes)
                Rotate();
            _stream.Write(line); // unbuffered: one write(2), nothing left to flush
            _size += line.Length;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            _stream?.Dispose();
            _stream = null;
            _json.Dispose();
        }
    }

    private void Rotate()
    {
        _stream!.Dispose();
        File.Delete($"{Path}.{_maxFiles}");
        for (int i = _maxFiles - 1; i >= 1; i--)
            if (File.Exists($"{Path}.{i}"))
                File.Move($"{Path}.{i}", $"{Path}.{i + 1}", overwrite: true);
        File.Move(Path, $"{Path}.1", overwrite: true);
        _stream = Open();
        _size = _stream.Length;
    }

    private FileStream Open() => new(Path, new FileStreamOptions
    {
        Mode = FileMode.Append,
        Access = FileAccess.Write,
        Share = FileShare.Read,
        UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        BufferSize = 0,
    });
}
