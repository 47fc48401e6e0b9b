using Tomlyn;
using Tomlyn.Parsing;
using Tomlyn.Syntax;

namespace Mis.Enforcer.Configuration;

/// <summary>
/// A TOML file parsed once into Tomlyn's syntax tree, which keeps the position of every key and
/// value: the one reading layer under <c>config.toml</c>, policy files, scenarios and experiments.
/// Each file kind names its tables and keys (<see cref="TomlTable.Read"/>); what is not named is
/// an error with a suggestion, and every error is a <see cref="ConfigException"/> naming file,
/// line, column and key. A file that embeds another kind's tables (a scenario's inline policy and
/// <c>[defcon]</c>) hands those <see cref="TomlTable"/>s to that kind's binder, so positions stay
/// the file's own and nothing is parsed twice.
/// </summary>
public sealed class TomlDocument
{
    private TomlDocument(string file, string text, DocumentSyntax syntax)
    {
        File = file;
        Text = text;
        Syntax = syntax;
        Tables = syntax.Tables.Select(t => new TomlTable(this, t)).ToList();
    }

    /// <summary>The file, as named to the loader (errors name it so).</summary>
    public string File { get; }

    /// <summary>The text as read.</summary>
    public string Text { get; }

    /// <summary>The syntax tree.</summary>
    internal DocumentSyntax Syntax { get; }

    /// <summary>The <c>[table]</c> and <c>[[table]]</c> headers with their key/values, in file order.</summary>
    public IReadOnlyList<TomlTable> Tables { get; }

    /// <summary>Reads and parses <paramref name="path"/>; <paramref name="what"/> (e.g. <c>policy file</c>) names it when it cannot be read.</summary>
    /// <exception cref="ConfigException">The file cannot be read, or is not valid TOML.</exception>
    public static TomlDocument Load(string path, string what)
    {
        string text;
        try
        {
            text = System.IO.File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException(path, 0, 0, null, $"cannot read the {what}: {e.Message}", e);
        }
        return Parse(text, path);
    }

    /// <summary>Parses <paramref name="text"/>; a syntax error names the line, column and the key it is in.</summary>
    /// <exception cref="ConfigException">The text is not valid TOML.</exception>
    public static TomlDocument Parse(string text, string file)
    {
        DocumentSyntax document;
        try
        {
            document = SyntaxParser.Parse(text, file, validate: true);
        }
        catch (TomlException e)
        {
            throw new ConfigException(file, 0, 0, null, $"syntax error: {e.Message}", e);
        }
        foreach (var diagnostic in document.Diagnostics)
        {
            if (diagnostic.Kind == DiagnosticMessageKind.Error)
            {
                var start = diagnostic.Span.Start;
                throw new ConfigException(file, start.Line + 1, start.Column + 1, KeyAt(document, start),
                    $"syntax error: {diagnostic.Message}");
            }
        }
        return new TomlDocument(file, text, document);
    }

    /// <summary>Refuses a key/value before the first table header: in these files every setting belongs to a table.</summary>
    /// <param name="where">Where such a setting goes, e.g. <c>put it under [policy]</c>.</param>
    public void RejectTopLevelKeys(string where)
    {
        if (Syntax.KeyValues.FirstOrDefault() is { } stray)
        {
            throw Error(stray, FormatKey(Segments(stray.Key)), $"a setting outside any table; {where}");
        }
    }

    /// <summary>The error for a table this file kind does not have.</summary>
    /// <param name="table">The table.</param>
    /// <param name="known">The table names the kind has (for the suggestion).</param>
    /// <param name="expected">The tables as a reader would write them, e.g. <c>[policy], [[file]]</c>.</param>
    public ConfigException UnknownTable(TomlTable table, IEnumerable<string> known, string expected) =>
        table.Error(table.Name, $"unknown table; expected {expected}{Suggestion(table.Name, known)}");

    /// <summary>An error at <paramref name="at"/>'s start (1-based line and column; 0 without a node).</summary>
    public ConfigException Error(SyntaxNodeBase? at, string? key, string detail) => ConfigException.At(File, at, key, detail);

    /// <summary><c> (did you mean 'x'?)</c> when a candidate is close to <paramref name="name"/>, else empty.</summary>
    public static string Suggestion(string name, IEnumerable<string> candidates) =>
        Closest(name, candidates) is { } close ? $" (did you mean '{close}'?)" : "";

    /// <summary>One part of a (possibly dotted) key, with the node that spelled it.</summary>
    public readonly record struct Segment(string Name, SyntaxNodeBase Node);

    /// <summary>The parts of a key: <c>a."b c".d</c> is <c>a</c>, <c>b c</c>, <c>d</c>.</summary>
    internal static List<Segment> Segments(KeySyntax? key)
    {
        var segments = new List<Segment>();
        if (key?.Key is not { } first)
        {
            return segments;
        }
        segments.Add(ToSegment(first));
        foreach (var dotted in key.DotKeys)
        {
            if (dotted.Key is { } part)
            {
                segments.Add(ToSegment(part));
            }
        }
        return segments;
    }

    private static Segment ToSegment(BareKeyOrStringValueSyntax part) => new(part switch
    {
        BareKeySyntax bare => bare.Key?.Text ?? "",
        StringValueSyntax quoted => quoted.Value ?? "",
        _ => "",
    }, part);

    /// <summary>A key part as TOML would spell it: bare when it can be, else quoted.</summary>
    internal static string FormatPart(string name) =>
        BareKeySyntax.IsBareKey(name) ? name : ConfigValue.Quote(name);

    /// <summary>A dotted key as TOML would spell it.</summary>
    internal static string FormatKey(IEnumerable<Segment> path) => string.Join(".", path.Select(s => FormatPart(s.Name)));

    /// <summary>
    /// Best guess at the dotted key a syntax error belongs to: the innermost key/value containing the
    /// position, else a table header on its line, else the last key/value starting before it on its line.
    /// </summary>
    private static string? KeyAt(DocumentSyntax document, TextPosition position)
    {
        var keyValues = new List<(TextPosition Start, TextPosition End, string Key)>();
        var headers = new List<(int Line, string Key)>();

        void Collect(List<Segment> prefix, KeyValueSyntax keyValue)
        {
            var path = new List<Segment>(prefix);
            path.AddRange(Segments(keyValue.Key));
            if (path.Count == 0)
            {
                return;
            }
            keyValues.Add((keyValue.Span.Start, keyValue.Span.End, FormatKey(path)));
            if (keyValue.Value is InlineTableSyntax inline)
            {
                foreach (var item in inline.Items)
                {
                    if (item.KeyValue is { } inner)
                    {
                        Collect(path, inner);
                    }
                }
            }
        }

        foreach (var keyValue in document.KeyValues)
        {
            Collect([], keyValue);
        }
        foreach (var table in document.Tables)
        {
            var path = Segments(table.Name);
            if (path.Count > 0)
            {
                headers.Add((table.Span.Start.Line, FormatKey(path)));
            }
            foreach (var keyValue in table.Items)
            {
                Collect(path, keyValue);
            }
        }

        static int Compare(TextPosition a, TextPosition b) =>
            a.Line != b.Line ? a.Line.CompareTo(b.Line) : a.Column.CompareTo(b.Column);

        string? best = null;
        TextPosition bestStart = default;
        foreach (var (start, end, key) in keyValues)
        {
            if (Compare(start, position) <= 0 && Compare(position, end) <= 0
                && (best is null || Compare(start, bestStart) >= 0))
            {
                (best, bestStart) = (key, start);
            }
        }
        if (best is not null)
        {
            return best;
        }
        foreach (var (line, key) in headers)
        {
            if (line == position.Line)
            {
                return key;
            }
        }
        foreach (var (start, _, key) in keyValues)
        {
            if (start.Line == position.Line && start.Column <= position.Column
                && (best is null || Compare(start, bestStart) >= 0))
            {
                (best, bestStart) = (key, start);
            }
        }
        return best;
    }

    /// <summary>The candidate closest to <paramref name="name"/> if the edit distance is small, else null.</summary>
    internal static string? Closest(string name, IEnumerable<string> candidates)
    {
        var lowered = name.ToLowerInvariant();
        var allowed = lowered.Length <= 3 ? 1 : lowered.Length <= 8 ? 2 : 3;
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            var distance = EditDistance(lowered, candidate);
            if (distance <= allowed && distance < bestDistance)
            {
                (best, bestDistance) = (candidate, distance);
            }
        }
        return best;
    }

    /// <summary>Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent swaps.</summary>
    internal static int EditDistance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }
        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }
        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }
        return d[a.Length, b.Length];
    }
}
