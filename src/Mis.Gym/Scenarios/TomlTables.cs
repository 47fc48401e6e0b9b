using Mis.Enforcer.Configuration;
using Tomlyn.Syntax;

namespace Mis.Gym.Scenarios;

/// <summary>
/// Helpers for reading a scenario's own tables from Tomlyn's syntax tree (which keeps every
/// position, so errors name file, line, column and key, like config.toml's), and for handing the
/// tables that belong to other formats to their own parsers.
/// </summary>
internal static class TomlTables
{
    /// <summary>
    /// The text with every line outside <paramref name="tables"/> blanked. Line and column numbers
    /// are unchanged, so a parser given the slice (PolicyFile for the rules, the config binder for
    /// <c>[defcon]</c>) reports its errors at the right place in the scenario file. That way the
    /// scenario reuses those parsers as they are, instead of a second copy of their rules.
    /// </summary>
    internal static string Slice(string text, IEnumerable<TableSyntaxBase> tables)
    {
        var lines = text.Split('\n');
        var keep = new bool[lines.Length];
        foreach (var table in tables)
        {
            for (int line = table.Span.Start.Line; line <= Math.Min(table.Span.End.Line, lines.Length - 1); line++)
                keep[line] = true;
        }
        for (int i = 0; i < lines.Length; i++)
        {
            if (!keep[i])
                lines[i] = lines[i].EndsWith('\r') ? "\r" : "";
        }
        return string.Join('\n', lines);
    }

    /// <summary>The table's name as written (<c>scenario</c>, <c>action</c>).</summary>
    internal static string NameOf(TableSyntaxBase table) => table.Name?.ToString().Trim() ?? "";

    /// <summary>The table's key/values, checked against <paramref name="known"/> (unknown keys are errors with a suggestion).</summary>
    internal static Dictionary<string, ConfigValue> Read(string file, string kind, TableSyntaxBase table, string[] known)
    {
        var values = new Dictionary<string, ConfigValue>();
        foreach (var kv in table.Items)
        {
            string key = kv.Key?.ToString().Trim() ?? "";
            if (Array.IndexOf(known, key) < 0)
            {
                string hint = ConfigBinder.Closest(key, known) is { } close ? $" (did you mean '{close}'?)" : "";
                throw ConfigBinder.Error(file, kv, $"{kind}.{key}", $"unknown key; expected one of: {string.Join(", ", known)}{hint}");
            }
            if (kv.Value is { } value)
                values[key] = new ConfigValue(file, $"{kind}.{key}", value);
        }
        return values;
    }

    /// <summary>A number (integer or float) within [<paramref name="min"/>, <paramref name="max"/>].</summary>
    internal static double Number(this ConfigValue value, string file, double min = double.MinValue, double max = double.MaxValue)
    {
        double number = value.Node switch
        {
            FloatValueSyntax f => f.Value,
            IntegerValueSyntax i => i.Value,
            _ => throw ConfigBinder.Error(file, value.Node, value.Key, $"expected a number, found {ConfigValue.Describe(value.Node)}"),
        };
        if (!double.IsFinite(number) || number < min || number > max)
        {
            string range = (min, max) switch
            {
                (double.MinValue, double.MaxValue) => "a finite number",
                (_, double.MaxValue) => $"a number >= {min}",
                _ => $"a number from {min} to {max}",
            };
            throw ConfigBinder.Error(file, value.Node, value.Key, $"{number} is out of range; expected {range}");
        }
        return number;
    }
}
