using Tomlyn.Syntax;
using static Mis.Enforcer.Configuration.TomlDocument;

namespace Mis.Enforcer.Configuration;

/// <summary>
/// Binds <c>config.toml</c>, parsed by <see cref="TomlDocument"/>, to a <see cref="MisConfig"/> by
/// <see cref="ConfigSchema"/>; each error names the exact line, column and key.
/// Dotted keys (<c>grpc.port = 1</c>) and inline tables (<c>grpc = { port = 1 }</c>) are accepted
/// wherever they spell a known section and key.
/// </summary>
public sealed class ConfigBinder
{
    private readonly string _file;
    private readonly Dictionary<string, ValueSyntax> _bound = new(StringComparer.Ordinal);
    private MisConfig _config = MisConfig.Default;

    private ConfigBinder(string file) => _file = file;

    /// <summary>Parses, binds and validates; throws <see cref="ConfigException"/> on the first problem.</summary>
    internal static MisConfig Bind(string text, string file) => BindDocument(text, file)._config;

    /// <summary>
    /// An error about a value that bound fine but proved unusable when put to use (a model file that
    /// does not load): placed at the value of <paramref name="dottedKey"/> when the file
    /// <paramref name="file"/> sets it, else naming the file and key only.
    /// </summary>
    public static ConfigException ErrorAtKey(string file, string dottedKey, string detail, Exception? innerException = null)
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
        var document = TomlDocument.Parse(text, file).Syntax;
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

    /// <summary>
    /// Binds one table of another file kind that holds a <c>config.toml</c> section (a scenario's
    /// <c>[defcon]</c>) over the defaults, with the same keys, checks and messages as in config.toml.
    /// </summary>
    public static MisConfig BindSection(TomlTable table)
    {
        var binder = new ConfigBinder(table.Document.File);
        binder.BindTable(table.Node);
        return binder._config;
    }

    private ConfigException Error(SyntaxNodeBase? at, string? key, string detail) => ConfigException.At(_file, at, key, detail);

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

    private void BindKeyValue(List<TomlDocument.Segment> prefix, KeyValueSyntax keyValue)
    {
        var path = new List<TomlDocument.Segment>(prefix);
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

        CheckUnixSocket(grpc);

        var metrics = _config.Metrics;
        if (grpc.Enabled && metrics.Enabled && grpc.Port == metrics.Port && grpc.BindAddress == metrics.BindAddress)
        {
            var at = _bound.GetValueOrDefault("metrics.port") ?? _bound.GetValueOrDefault("grpc.port")
                ?? _bound.GetValueOrDefault("metrics.enabled");
            throw Error(at, "metrics.port",
                $"{metrics.BindAddress}:{metrics.Port} is also the gRPC address; the two servers need different ports");
        }
    }

    private void CheckUnixSocket(GrpcConfig grpc)
    {
        if (grpc.UnixSocketMode != "0600" && !grpc.UsesUnixSocket)
        {
            throw Error(_bound.GetValueOrDefault("grpc.unix_socket_mode"), "grpc.unix_socket_mode",
                $"\"{grpc.UnixSocketMode}\" needs a socket: set grpc.unix_socket_path");
        }
        if (grpc.UnixSocketMode == "0660" && grpc.UnixSocketGroup.Length == 0)
        {
            throw Error(_bound.GetValueOrDefault("grpc.unix_socket_mode"), "grpc.unix_socket_mode",
                "\"0660\" lets a group connect: name it with grpc.unix_socket_group");
        }
        if (grpc.UnixSocketGroup.Length > 0 && grpc.UnixSocketMode != "0660")
        {
            throw Error(_bound.GetValueOrDefault("grpc.unix_socket_group"), "grpc.unix_socket_group",
                $"has no effect with unix_socket_mode = \"{grpc.UnixSocketMode}\"; set grpc.unix_socket_mode = \"0660\" to let this group connect");
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
}
