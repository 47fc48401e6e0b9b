using System.Diagnostics.CodeAnalysis;
using Tomlyn.Syntax;

namespace Mis.Enforcer.Configuration;

/// <summary>One <c>[table]</c> or <c>[[table]]</c> of a <see cref="TomlDocument"/>, with its position.</summary>
public sealed class TomlTable
{
    internal TomlTable(TomlDocument document, TableSyntaxBase node)
    {
        Document = document;
        Node = node;
        Name = node.Name?.ToString().Trim() ?? "";
    }

    /// <summary>The file it is in.</summary>
    public TomlDocument Document { get; }

    /// <summary>The syntax node (errors about the table as a whole point at its header).</summary>
    public TableSyntaxBase Node { get; }

    /// <summary>The name as written, e.g. <c>scenario</c> or <c>workload.files</c>.</summary>
    public string Name { get; }

    /// <summary>True for an array-of-tables entry (<c>[[action]]</c>).</summary>
    internal bool IsArray => Node is TableArraySyntax;

    /// <summary>1-based line of the header.</summary>
    public int Line => Node.Span.Start.Line + 1;

    /// <summary>Where the table is, for messages and rule sources: <c>file.toml:12</c>.</summary>
    public string Source => $"{Path.GetFileName(Document.File)}:{Line}";

    /// <summary>The key/values, as written.</summary>
    public SyntaxList<KeyValueSyntax> Items => Node.Items;

    /// <summary>An error at the table's header.</summary>
    public ConfigException Error(string? key, string detail) => Document.Error(Node, key, detail);

    /// <summary>Refuses the wrong bracket form: <c>[name]</c> where the kind wants <c>[[name]]</c>, or the other way round.</summary>
    /// <param name="array">Whether this kind is an array of tables.</param>
    /// <param name="what">For arrays, what one entry is (e.g. <c>one per action</c>), said in the message.</param>
    public void ExpectArray(bool array, string? what = null)
    {
        if (IsArray == array)
        {
            return;
        }
        var detail = array
            ? $"write [[{Name}]] ({what ?? "an array of tables"}), not [{Name}]"
            : $"write [{Name}], not [[{Name}]]";
        throw Error(Name, detail);
    }

    /// <summary>The table's key/values, checked against <paramref name="known"/>: an unknown key is an error with a suggestion.</summary>
    public TomlValues Read(params string[] known)
    {
        var values = new Dictionary<string, ConfigValue>(StringComparer.Ordinal);
        foreach (var kv in Node.Items)
        {
            var key = kv.Key?.ToString().Trim() ?? "";
            if (Array.IndexOf(known, key) < 0)
            {
                throw Document.Error(kv, $"{Name}.{key}",
                    $"unknown key; expected one of: {string.Join(", ", known)}{TomlDocument.Suggestion(key, known)}");
            }
            if (kv.Value is { } value)
            {
                values[key] = new ConfigValue(Document.File, $"{Name}.{key}", value);
            }
        }
        return new TomlValues(this, values);
    }
}

/// <summary>The checked key/values of one <see cref="TomlTable"/>.</summary>
public sealed class TomlValues
{
    private readonly Dictionary<string, ConfigValue> _values;

    internal TomlValues(TomlTable table, Dictionary<string, ConfigValue> values) => (Table, _values) = (table, values);

    /// <summary>The table the values are from.</summary>
    public TomlTable Table { get; }

    /// <summary>The value of a key the file sets.</summary>
    public ConfigValue this[string key] => _values[key];

    /// <summary>Whether the file sets <paramref name="key"/>.</summary>
    internal bool ContainsKey(string key) => _values.ContainsKey(key);

    /// <summary>The value of <paramref name="key"/>, when the file sets it.</summary>
    public bool TryGetValue(string key, [MaybeNullWhen(false)] out ConfigValue value) => _values.TryGetValue(key, out value);

    /// <summary>The value converted by <paramref name="read"/>, or <paramref name="fallback"/> (the declared default) when the key is absent.</summary>
    public T Get<T>(string key, Func<ConfigValue, T> read, T fallback) => _values.TryGetValue(key, out var value) ? read(value) : fallback;

    /// <summary>The value of a key the table must have; absent, an error at the table's header.</summary>
    /// <param name="key">The key.</param>
    /// <param name="why">What to say after <c>missing; </c>; default: <c>every [[kind]] needs key</c> or <c>[kind] needs key</c>.</param>
    public ConfigValue Required(string key, string? why = null) =>
        _values.TryGetValue(key, out var value) ? value
            : throw Table.Error($"{Table.Name}.{key}",
                $"missing; {why ?? (Table.IsArray ? $"every [[{Table.Name}]] needs {key}" : $"[{Table.Name}] needs {key}")}");
}
