using System.Globalization;
using Tomlyn.Syntax;

namespace Mis.Enforcer.Configuration;

/// <summary>
/// A value found in the file for a known key, with the conversions the schema needs. Each conversion
/// checks type and range and throws a <see cref="ConfigException"/> pointing at the offending value.
/// </summary>
public sealed class ConfigValue(string file, string key, ValueSyntax node)
{
    /// <summary>The file the value is in, as named to the loader.</summary>
    public string File { get; } = file;

    /// <summary>The dotted key, e.g. <c>grpc.port</c>.</summary>
    public string Key { get; } = key;

    /// <summary>The value's syntax node (carries its position).</summary>
    public ValueSyntax Node { get; } = node;

    /// <summary>A string (empty allowed).</summary>
    public string String() => AsString(Node, "");

    /// <summary>A string that is not empty.</summary>
    public string NonEmptyString()
    {
        var value = String();
        return value.Length > 0 ? value : throw Error(Node, "must not be empty");
    }

    /// <summary>A URL path: a string starting with <c>/</c>.</summary>
    public string UrlPath()
    {
        var value = String();
        return value.StartsWith('/') ? value : throw Error(Node, $"must start with '/', found {Quote(value)}");
    }

    /// <summary>One of <paramref name="allowed"/>, spelled exactly.</summary>
    public string OneOf(string[] allowed)
    {
        var value = String();
        return Array.IndexOf(allowed, value) >= 0
            ? value
            : throw Error(Node, $"invalid value {Quote(value)}; expected one of: {string.Join(", ", allowed)}");
    }

    /// <summary>A number (integer or float) within [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public double Number(double min = double.MinValue, double max = double.MaxValue)
    {
        double number = Node switch
        {
            FloatValueSyntax f => f.Value,
            IntegerValueSyntax i => i.Value,
            _ => throw Mismatch(Node, "a number", ""),
        };
        if (!double.IsFinite(number) || number < min || number > max)
        {
            string range = (min, max) switch
            {
                (double.MinValue, double.MaxValue) => "a finite number",
                (_, double.MaxValue) => $"a number >= {min}",
                _ => $"a number from {min} to {max}",
            };
            throw Error($"{number} is out of range; expected {range}");
        }
        return number;
    }

    /// <summary>An error about this value (a fact the conversions cannot check, e.g. an unknown program path), at its position.</summary>
    public ConfigException Error(string detail) => Error(Node, detail);

    /// <summary>A boolean.</summary>
    public bool Bool() =>
        Node is BooleanValueSyntax boolean ? boolean.Value : throw Mismatch(Node, "a boolean (true or false)", "");

    /// <summary>An integer within [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public int Int(int min, int max = int.MaxValue) => (int)AsInteger(Node, min, max, "");

    /// <summary>A 64-bit integer within [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public long Long(long min, long max = long.MaxValue) => AsInteger(Node, min, max, "");

    /// <summary>An array of non-empty strings.</summary>
    public IReadOnlyList<string> StringArray()
    {
        var items = Elements(null, "strings");
        var values = new string[items.Count];
        for (var i = 0; i < items.Count; i++)
        {
            values[i] = AsString(items[i], ElementPrefix(i));
            if (values[i].Length == 0)
            {
                throw Error(items[i], $"{ElementPrefix(i)}must not be empty");
            }
        }
        return Array.AsReadOnly(values);
    }

    /// <summary>An array of <paramref name="count"/> integers within [<paramref name="min"/>, <paramref name="max"/>], strictly increasing when asked.</summary>
    public IReadOnlyList<long> LongArray(int count, long min, long max, bool strictlyIncreasing)
    {
        var items = Elements(count, "integers");
        var values = new long[items.Count];
        for (var i = 0; i < items.Count; i++)
        {
            values[i] = AsInteger(items[i], min, max, ElementPrefix(i));
            if (strictlyIncreasing && i > 0 && values[i] <= values[i - 1])
            {
                throw Error(items[i],
                    $"{ElementPrefix(i)}{values[i]} is not greater than the previous element {values[i - 1]}; the values must be strictly increasing");
            }
        }
        return Array.AsReadOnly(values);
    }

    /// <summary>An array of <paramref name="count"/> integers within [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public IReadOnlyList<int> IntArray(int count, int min, int max)
    {
        var items = Elements(count, "integers");
        var values = new int[items.Count];
        for (var i = 0; i < items.Count; i++)
        {
            values[i] = (int)AsInteger(items[i], min, max, ElementPrefix(i));
        }
        return Array.AsReadOnly(values);
    }

    /// <summary>Describes a value for a message: its TOML type and, for scalars, its text.</summary>
    public static string Describe(ValueSyntax value) => value switch
    {
        StringValueSyntax s => $"a string ({Snippet(s.Token?.Text ?? Quote(s.Value ?? ""))})",
        IntegerValueSyntax i => $"an integer ({Snippet(i.Token?.Text ?? i.Value.ToString(CultureInfo.InvariantCulture))})",
        FloatValueSyntax f => $"a float ({Snippet(f.Token?.Text ?? f.Value.ToString(CultureInfo.InvariantCulture))})",
        BooleanValueSyntax b => $"a boolean ({(b.Value ? "true" : "false")})",
        DateTimeValueSyntax d => $"a date-time ({Snippet(d.Token?.Text ?? "")})",
        ArraySyntax => "an array",
        InlineTableSyntax => "an inline table",
        _ => "a value of another type",
    };

    internal static string Quote(string text) =>
        "\"" + Snippet(text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)) + "\"";

    private static string Snippet(string text)
    {
        text = text.Replace("\r", "\\r", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
        return text.Length <= 60 ? text : string.Concat(text.AsSpan(0, 57), "...");
    }

    private static string ElementPrefix(int index) => $"element {index + 1}: ";

    private string AsString(ValueSyntax value, string prefix) =>
        value is StringValueSyntax s ? s.Value ?? "" : throw Mismatch(value, "a string", prefix);

    private long AsInteger(ValueSyntax value, long min, long max, string prefix)
    {
        if (value is not IntegerValueSyntax integer)
        {
            throw Mismatch(value, "an integer", prefix);
        }
        if (integer.Value < min || integer.Value > max)
        {
            var range = max == long.MaxValue ? $">= {min}" : $"from {min} to {max}";
            throw Error(value, $"{prefix}{integer.Value} is out of range; expected an integer {range}");
        }
        return integer.Value;
    }

    private List<ValueSyntax> Elements(int? count, string noun)
    {
        if (Node is not ArraySyntax array)
        {
            var expected = count is null ? $"an array of {noun}" : $"an array of {count} {noun}";
            throw Mismatch(Node, expected, "");
        }
        var items = new List<ValueSyntax>();
        foreach (var item in array.Items)
        {
            if (item.Value is { } value)
            {
                items.Add(value);
            }
        }
        if (count is { } expectedCount && items.Count != expectedCount)
        {
            throw Error(Node, $"expected exactly {expectedCount} {noun}, found {items.Count}");
        }
        return items;
    }

    private ConfigException Mismatch(ValueSyntax found, string expected, string prefix) =>
        Error(found, $"{prefix}expected {expected}, found {Describe(found)}");

    private ConfigException Error(SyntaxNodeBase at, string detail) => ConfigException.At(File, at, Key, detail);
}
