using System.Globalization;

namespace Mis.Gym.Agents;

/// <summary>
/// Binds an algorithm's hyperparameters from the experiment file's key/value pairs onto its config
/// record, and checks a record's values. Each hyperparameter is declared once, with its key, its
/// range and how to read and set it, so binding, validation and the resolved listing written at the
/// start of a run cannot disagree.
/// <list type="bullet">
/// <item>An unknown key is an error that lists the known ones.</item>
/// <item>An integer accepts <see cref="long"/> or <see cref="int"/> (TOML integers are longs);
/// a number accepts <see cref="double"/>, <see cref="float"/>, <see cref="long"/> or <see cref="int"/>
/// (<c>gamma = 1</c> is a fine TOML value); a flag accepts <see cref="bool"/>.</item>
/// <item>A value of the wrong type, or out of its range, is an error that names the key, what was
/// given and what is expected.</item>
/// </list>
/// </summary>
/// <typeparam name="TConfig">The algorithm's config record.</typeparam>
public sealed class Hyperparameters<TConfig> where TConfig : class
{
    private readonly string _algorithm;
    private readonly List<Entry> _entries = [];

    /// <summary>Starts the declaration for <paramref name="algorithm"/> (named in error messages).</summary>
    internal Hyperparameters(string algorithm) => _algorithm = algorithm;

    /// <summary>The keys, in declaration order.</summary>
    internal IEnumerable<string> Keys => _entries.Select(e => e.Key);

    /// <summary>Declares an integer in <c>[min, max]</c>.</summary>
    internal Hyperparameters<TConfig> Int(string key, Func<TConfig, int> get, Func<TConfig, int, TConfig> set, int min, int max = int.MaxValue)
    {
        string expected = max == int.MaxValue ? $"an integer ≥ {min}" : $"an integer in [{min}, {max}]";
        _entries.Add(new Entry(key, expected, c => get(c),
            (c, value) => value is long or int && Convert.ToInt64(value, CultureInfo.InvariantCulture) is long v && v >= min && v <= max
                ? set(c, (int)v)
                : null));
        return this;
    }

    /// <summary>Declares a number in <c>[min, max]</c>, or <c>(min, max]</c> when <paramref name="minExclusive"/>.</summary>
    internal Hyperparameters<TConfig> Number(string key, Func<TConfig, double> get, Func<TConfig, double, TConfig> set, double min, double max = double.PositiveInfinity, bool minExclusive = false)
    {
        string low = minExclusive ? $"({Format(min)}" : $"[{Format(min)}";
        string expected = double.IsPositiveInfinity(max) ? $"a number {(minExclusive ? ">" : "≥")} {Format(min)}" : $"a number in {low}, {Format(max)}]";
        _entries.Add(new Entry(key, expected, c => get(c),
            (c, value) => value is double or float or long or int && Convert.ToDouble(value, CultureInfo.InvariantCulture) is double v
                          && (minExclusive ? v > min : v >= min) && v <= max
                ? set(c, v)
                : null));
        return this;
    }

    /// <summary>Declares a flag.</summary>
    internal Hyperparameters<TConfig> Flag(string key, Func<TConfig, bool> get, Func<TConfig, bool, TConfig> set)
    {
        _entries.Add(new Entry(key, "true or false", c => get(c), (c, value) => value is bool b ? set(c, b) : null));
        return this;
    }

    /// <summary>
    /// <paramref name="defaults"/> with every value of <paramref name="values"/> applied.
    /// </summary>
    /// <exception cref="ArgumentException">An unknown key, or a value of the wrong type or out of range.</exception>
    internal TConfig Bind(TConfig defaults, IReadOnlyDictionary<string, object> values)
    {
        var config = defaults;
        // Ordinal order, so that the first error reported does not depend on the dictionary's order.
        foreach (var (key, value) in values.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var entry = _entries.Find(e => e.Key == key)
                ?? throw new ArgumentException($"unknown {_algorithm} hyperparameter \"{key}\"; known: {string.Join(", ", Keys)}", nameof(values));
            config = entry.Set(config, value)
                ?? throw new ArgumentException($"{_algorithm} hyperparameter \"{key}\": expected {entry.Expected}, got {Describe(value)}", nameof(values));
        }
        return Check(config);
    }

    /// <summary>Checks that every value of <paramref name="config"/> is in range (a record made in code skips <see cref="Bind"/>).</summary>
    /// <returns><paramref name="config"/>.</returns>
    /// <exception cref="ArgumentException">A value is out of range; the message names it and the range.</exception>
    internal TConfig Check(TConfig config)
    {
        foreach (var entry in _entries)
        {
            object value = entry.Get(config);
            if (entry.Set(config, value) is null)
                throw new ArgumentException($"{_algorithm} hyperparameter \"{entry.Key}\": expected {entry.Expected}, got {Describe(value)}", nameof(config));
        }
        return config;
    }

    /// <summary>Every hyperparameter of <paramref name="config"/>, by key, in declaration order (for the run log).</summary>
    internal IReadOnlyList<KeyValuePair<string, object>> Resolved(TConfig config) =>
        [.. _entries.Select(e => KeyValuePair.Create(e.Key, e.Get(config)))];

    private static string Describe(object? value) => value switch
    {
        null => "nothing (null)",
        string s => $"\"{s}\" (a string)",
        bool b => b ? "true (a flag)" : "false (a flag)",
        double or float => $"{Format(Convert.ToDouble(value, CultureInfo.InvariantCulture))} (a number)",
        long or int => $"{Convert.ToInt64(value, CultureInfo.InvariantCulture)} (an integer)",
        _ => $"a {value.GetType().Name}",
    };

    private static string Format(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    // Set returns null when the value has the wrong type or is out of range.
    private sealed record Entry(string Key, string Expected, Func<TConfig, object> Get, Func<TConfig, object, TConfig?> Set);
}
