using System.Globalization;
using System.IO.Compression;
using System.Text.Json;

namespace Mis.Anomaly.Traces;

/// <summary>
/// Reads syscall traces from a file or, recursively, a directory. Two forms:
/// <list type="bullet">
/// <item>Plain (any name): one trace per file, whitespace-separated decimal syscall numbers, on one
/// line or many; what <c>mis run --learn --traces DIR</c> writes and what ADFA-LD ships.</item>
/// <item><c>*.jsonl</c>: one trace per line, <c>{"syscalls": [..], "label": "..", "command": "..", "tid": N}</c>;
/// only <c>syscalls</c> is required.</item>
/// </list>
/// Either may be gzip-compressed, named <c>*.gz</c> (<c>run.jsonl.gz</c>: a whole run in one small file,
/// as the committed corpus sample is). Hidden files and <c>*.md</c> (a corpus's README) are skipped. Files are read in ordinal path
/// order, so the same directory always gives the same list. Bad input throws a
/// <see cref="TraceFormatException"/> naming the file and line.
/// </summary>
public static class TraceReader
{
    /// <summary>Largest syscall number accepted (Linux uses a few hundred; x32 sets bit 30).</summary>
    internal const int MaxSyscall = 1 << 30 | 1023;

    /// <summary>Every trace under <paramref name="path"/> (a file or a directory).</summary>
    /// <exception cref="DirectoryNotFoundException">Nothing exists at <paramref name="path"/>.</exception>
    /// <exception cref="TraceFormatException">A file is not a valid trace.</exception>
    public static List<Trace> Read(string path)
    {
        if (File.Exists(path))
            return ReadFile(path);
        if (!Directory.Exists(path))
            throw new DirectoryNotFoundException($"{path}: no such trace file or directory");
        var traces = new List<Trace>();
        foreach (var file in Files(path))
            traces.AddRange(ReadFile(file));
        return traces;
    }

    /// <summary>The trace files under <paramref name="directory"/>, in ordinal order.</summary>
    internal static IEnumerable<string> Files(string directory) =>
        Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
            .Where(f => !Path.GetRelativePath(directory, f).Split('/').Any(part => part.StartsWith('.')))
            .Where(f => !f.EndsWith(".md", StringComparison.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal);

    /// <summary>The traces in one file.</summary>
    internal static List<Trace> ReadFile(string file)
    {
        string inner = file.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? file[..^3] : file;
        return inner.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) ? ReadJsonLines(file) : [ReadPlain(file)];
    }

    private static IEnumerable<string> Lines(string file)
    {
        if (!file.EndsWith(".gz", StringComparison.OrdinalIgnoreCase))
        {
            foreach (var line in File.ReadLines(file))
                yield return line;
            yield break;
        }
        using var gz = new GZipStream(File.OpenRead(file), CompressionMode.Decompress);
        using var reader = new StreamReader(gz);
        string? next;
        while (true)
        {
            try
            {
                next = reader.ReadLine();
            }
            catch (InvalidDataException e)
            {
                throw new TraceFormatException(file, 1, $"not valid gzip: {e.Message}");
            }
            if (next is null)
                yield break;
            yield return next;
        }
    }

    private static Trace ReadPlain(string file)
    {
        var syscalls = new List<int>();
        int lineNumber = 0;
        foreach (var line in Lines(file))
        {
            lineNumber++;
            int column = 0;
            foreach (var token in line.Split([' ', '\t', '\r', '\f', '\v'], StringSplitOptions.RemoveEmptyEntries))
            {
                column++;
                syscalls.Add(ParseSyscall(token, file, lineNumber, $"token {column}"));
            }
        }
        if (syscalls.Count == 0)
            throw new TraceFormatException(file, Math.Max(lineNumber, 1), "empty trace: expected whitespace-separated syscall numbers");
        return new Trace(file, 0, [.. syscalls]);
    }

    private static int ParseSyscall(string token, string file, int line, string where)
    {
        if (!int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out int nr) || nr > MaxSyscall)
            throw new TraceFormatException(file, line, $"{where}: '{Shorten(token)}' is not a syscall number (expected a decimal integer 0..{MaxSyscall})");
        return nr;
    }

    private static List<Trace> ReadJsonLines(string file)
    {
        var traces = new List<Trace>();
        int lineNumber = 0;
        foreach (var line in Lines(file))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
                continue;
            traces.Add(ParseJsonLine(line, file, lineNumber));
        }
        if (traces.Count == 0)
            throw new TraceFormatException(file, Math.Max(lineNumber, 1), "no trace: expected one JSON object per line with a \"syscalls\" array");
        return traces;
    }

    private static Trace ParseJsonLine(string line, string file, int lineNumber)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw new TraceFormatException(file, lineNumber, $"invalid JSON: {e.Message}");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new TraceFormatException(file, lineNumber, $"expected a JSON object, found {root.ValueKind}");
            if (!root.TryGetProperty("syscalls", out var array) || array.ValueKind != JsonValueKind.Array)
                throw new TraceFormatException(file, lineNumber, "missing \"syscalls\": expected an array of syscall numbers");
            var syscalls = new int[array.GetArrayLength()];
            if (syscalls.Length == 0)
                throw new TraceFormatException(file, lineNumber, "\"syscalls\" is empty");
            int i = 0;
            foreach (var item in array.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out int nr) || nr < 0 || nr > MaxSyscall)
                    throw new TraceFormatException(file, lineNumber, $"\"syscalls\"[{i}]: {Shorten(item.GetRawText())} is not a syscall number (0..{MaxSyscall})");
                syscalls[i++] = nr;
            }
            return new Trace(file, lineNumber, syscalls)
            {
                Label = OptionalString(root, "label", file, lineNumber),
                Command = OptionalString(root, "command", file, lineNumber),
                Tid = root.TryGetProperty("tid", out var tid) && tid.ValueKind != JsonValueKind.Null
                    ? tid.ValueKind == JsonValueKind.Number && tid.TryGetInt32(out int t) ? t : throw new TraceFormatException(file, lineNumber, "\"tid\" must be an integer")
                    : null,
            };
        }
    }

    private static string? OptionalString(JsonElement root, string name, string file, int line) =>
        !root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind == JsonValueKind.String ? value.GetString()
        : throw new TraceFormatException(file, line, $"\"{name}\" must be a string");

    private static string Shorten(string s) => s.Length <= 24 ? s : s[..24] + "...";
}
