using Tomlyn;
using Tomlyn.Parsing;
using Tomlyn.Syntax;

namespace Mis.Enforcer.Configuration;

/// <summary>
/// Turns TOML text into a <see cref="MisConfig"/> by walking Tomlyn's syntax tree, which keeps the
/// position of every key and value, so each error names the exact line, column and key.
/// Dotted keys (<c>grpc.port = 1</c>) and inline tables (<c>grpc = { port = 1 }</c>) are accepted
/// wherever they spell a known section and key.
/// </summary>
internal sealed class ConfigBinder
{
    private readonly string _file;
    private readonly Dictionary<string, ValueSyntax> _bound = new(StringComparer.Ordinal);
    private MisConfig _config = MisConfig.Default;

    private ConfigBinder(string file) => _file = file;

    /// <summary>One part of a (possibly dotted) key, with the node that spelled it.</summary>
    private readonly record struct Segment(string Name, SyntaxNodeBase Node);

    /// <summary>Parses, binds and validates; throws <see cref="ConfigException"/> on the first problem.</summary>
    internal static MisConfig Bind(string text, string file) => BindDocument(text, file)._config;

    /// <summary>
    /// An error about a value that bound fine but proved unusable when put to use (a model file that
    /// does not load): placed at the value of <paramref name="dottedKey"/> when the file
    /// <paramref name="file"/> sets it, else naming the file and key only.
    /// </summary>
    internal static ConfigException ErrorAtKey(string file, string dottedKey, string detail, Exception? innerException = null)
    {
        ValueSyntax? at = null;
        try
        {
            BindDocument(System.IO.File.ReadAllText(file), file)._bound.TryGetValue(dottedKey, out at);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ConfigException)
        {
            // The file changed or vanished since it was loaded: the key and file still say what to fix.
        }
        var start = at?.Span.Start;
        return start is { } s
            ? new ConfigException(file, s.Line + 1, s.Column + 1, dottedKey, detail, innerException)
            : new ConfigException(file, 0, 0, dottedKey, detail, innerException);
    }

    private static ConfigBinder BindDocument(string text, string file)
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

        var binder = new ConfigBinder(file);
        foreach (var keyValue in document.KeyValues)
        {
            binder.BindKeyValue([], keyValue);
        }
        foreach (var table in document.Tables)
        {
            binder.BindTable(table);
        }
        binder.CheckAcrossKeys();
        return binder;
    }

    /// <summary>An error at <paramref name="at"/>'s start (1-based line and column).</summary>
    internal static ConfigException Error(string file, SyntaxNodeBase? at, string? key, string detail)
    {
        if (at is null)
        {
            return new ConfigException(file, 0, 0, key, detail);
        }
        var start = at.Span.Start;
        return new ConfigException(file, start.Line + 1, start.Column + 1, key, detail);
    }

    private ConfigException Error(SyntaxNodeBase? at, string? key, string detail) => Error(_file, at, key, detail);

    private void BindTable(TableSyntaxBase table)
    {
        var path = Segments(table.Name);
        if (path.Count == 0)
        {
            return; // Only possible in a tree with syntax errors, which were reported already.
        }
        var section = ResolveSection(path[0]);
        if (path.Count > 1)
        {
            var key = ResolveKey(section, path[1]);
            throw NotATable(section, key, path[1]);
        }
        if (table is TableArraySyntax)
        {
            throw Error(path[0].Node, section.Name,
                $"arrays of tables ([[{section.Name}]]) are not used here; write [{section.Name}]");
        }
        foreach (var keyValue in table.Items)
        {
            BindKeyValue(path, keyValue);
        }
    }

    private void BindKeyValue(List<Segment> prefix, KeyValueSyntax keyValue)
    {
        var path = new List<Segment>(prefix);
        path.AddRange(Segments(keyValue.Key));
        if (path.Count == 0 || keyValue.Value is not { } value)
        {
            return; // Only possible in a tree with syntax errors, which were reported already.
        }

        if (path.Count == 1)
        {
            if (value is not InlineTableSyntax inline)
            {
                throw TopLevelValue(path[0], value);
            }
            ResolveSection(path[0]);
            foreach (var item in inline.Items)
            {
                if (item.KeyValue is { } inner)
                {
                    BindKeyValue(path, inner);
                }
            }
            return;
        }

        var section = ResolveSection(path[0]);
        var spec = ResolveKey(section, path[1]);
        if (path.Count > 2)
        {
            throw NotATable(section, spec, path[1]);
        }
        var dotted = $"{section.Name}.{spec.Name}";
        if (!_bound.TryAdd(dotted, value))
        {
            throw Error(path[1].Node, dotted, "is set more than once");
        }
        _config = spec.Apply(new ConfigValue(_file, dotted, value), _config);
    }

    private SectionSpec ResolveSection(Segment segment)
    {
        if (ConfigSchema.FindSection(segment.Name) is { } section)
        {
            return section;
        }
        var names = ConfigSchema.Sections.Select(s => s.Name).ToList();
        var suggestion = Closest(segment.Name, names);
        var detail = suggestion is not null
            ? $"unknown section [{FormatPart(segment.Name)}]; did you mean [{suggestion}]?"
            : $"unknown section [{FormatPart(segment.Name)}]; known sections: {string.Join(", ", names.Select(n => $"[{n}]"))}";
        throw Error(segment.Node, FormatPart(segment.Name), detail);
    }

    private KeySpec ResolveKey(SectionSpec section, Segment segment)
    {
        if (section.Find(segment.Name) is { } key)
        {
            return key;
        }
        var dotted = $"{section.Name}.{FormatPart(segment.Name)}";
        var names = section.Keys.Select(k => k.Name).ToList();
        var suggestion = Closest(segment.Name, names);
        string detail;
        if (suggestion is not null)
        {
            detail = $"unknown key; did you mean '{suggestion}'?";
        }
        else if (SectionsWithKey(segment.Name) is { Count: > 0 } others)
        {
            detail = $"unknown key in [{section.Name}]; '{segment.Name}' belongs in {string.Join(" or ", others.Select(s => $"[{s}]"))}";
        }
        else
        {
            detail = $"unknown key in [{section.Name}]; known keys: {string.Join(", ", names)}";
        }
        throw Error(segment.Node, dotted, detail);
    }

    private ConfigException NotATable(SectionSpec section, KeySpec key, Segment at) =>
        Error(at.Node, $"{section.Name}.{key.Name}",
            $"is a setting, not a table; write '{key.Name} = ...' under [{section.Name}]");

    private ConfigException TopLevelValue(Segment segment, ValueSyntax value)
    {
        var name = segment.Name;
        if (ConfigSchema.FindSection(name) is not null)
        {
            return Error(value, name, $"expected a table (the [{name}] section), found {ConfigValue.Describe(value)}");
        }
        var owners = SectionsWithKey(name);
        var detail = owners.Count > 0
            ? $"settings must be inside a section; '{name}' belongs in {string.Join(" or ", owners.Select(s => $"[{s}]"))}"
            : $"unknown top-level key; settings must be inside a section: {string.Join(", ", ConfigSchema.Sections.Select(s => $"[{s.Name}]"))}";
        return Error(segment.Node, FormatPart(name), detail);
    }

    private static List<string> SectionsWithKey(string key) =>
        ConfigSchema.Sections.Where(s => s.Find(key) is not null).Select(s => s.Name).ToList();

    /// <summary>Checks that involve more than one key, once every key is bound.</summary>
    private void CheckAcrossKeys()
    {
        var grpc = _config.Grpc;
        if (grpc.TlsEnabled)
        {
            RequireForTls("tls_cert_path", grpc.TlsCertPath);
            RequireForTls("tls_key_path", grpc.TlsKeyPath);
        }
        else if (grpc.TlsClientCaPath.Length > 0)
        {
            throw Error(_bound.GetValueOrDefault("grpc.tls_client_ca_path"), "grpc.tls_client_ca_path",
                "mutual TLS requires grpc.tls_enabled = true");
        }

        var metrics = _config.Metrics;
        if (grpc.Enabled && metrics.Enabled && grpc.Port == metrics.Port && grpc.BindAddress == metrics.BindAddress)
        {
            var at = _bound.GetValueOrDefault("metrics.port") ?? _bound.GetValueOrDefault("grpc.port")
                ?? _bound.GetValueOrDefault("metrics.enabled");
            throw Error(at, "metrics.port",
                $"{metrics.BindAddress}:{metrics.Port} is also the gRPC address; the two servers need different ports");
        }
    }

    private void RequireForTls(string key, string value)
    {
        if (value.Length > 0)
        {
            return;
        }
        var dotted = $"grpc.{key}";
        if (_bound.TryGetValue(dotted, out var given))
        {
            throw Error(given, dotted, "must not be empty when grpc.tls_enabled = true");
        }
        throw Error(_bound.GetValueOrDefault("grpc.tls_enabled"), dotted, "required when grpc.tls_enabled = true");
    }

    private static List<Segment> Segments(KeySyntax? key)
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

    private static string FormatPart(string name) =>
        BareKeySyntax.IsBareKey(name) ? name : ConfigValue.Quote(name);

    private static string FormatKey(IEnumerable<Segment> path) => string.Join(".", path.Select(s => FormatPart(s.Name)));

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
