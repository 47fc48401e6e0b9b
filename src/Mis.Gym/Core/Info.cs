using System.Collections;
using System.Diagnostics.CodeAnalysis;

namespace Mis.Gym;

/// <summary>
/// The <c>info</c> dictionary of a reset or step: string keys, arbitrary values, immutable.
/// <see cref="With"/> returns a new dictionary with one more key (a wrapper adding
/// <c>"episode"</c> does not copy the environment's entries, it links to them). Environments that
/// step millions of times a second subclass it to expose typed fields as entries lazily instead of
/// boxing them into a hash table on every step; callers see an ordinary read-only dictionary.
/// </summary>
public class Info : IReadOnlyDictionary<string, object>
{
    private readonly Info? _parent;
    private readonly string? _key;
    private readonly object? _value;

    /// <summary>A root without entries (subclasses supply theirs through the protected members).</summary>
    protected Info()
    {
    }

    private Info(Info parent, string key, object value)
    {
        _parent = parent;
        _key = key;
        _value = value;
    }

    /// <summary>The empty info dictionary.</summary>
    public static Info Empty { get; } = new();

    /// <summary>An info dictionary holding <paramref name="entries"/> (a later duplicate key wins).</summary>
    /// <param name="entries">Key/value pairs.</param>
    /// <returns>The dictionary.</returns>
    public static Info Of(params ReadOnlySpan<(string Key, object Value)> entries)
    {
        var info = Empty;
        foreach (var (key, value) in entries)
            info = info.With(key, value);
        return info;
    }

    /// <summary>This dictionary plus <paramref name="key"/> (replacing an existing entry of that key).</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value; not null.</param>
    /// <returns>A new dictionary; this one is unchanged.</returns>
    public Info With(string key, object value)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        return new Info(this, key, value);
    }

    /// <summary>The value of <paramref name="key"/> as <typeparamref name="T"/>.</summary>
    /// <typeparam name="T">The expected type.</typeparam>
    /// <param name="key">The key.</param>
    /// <returns>The value.</returns>
    /// <exception cref="KeyNotFoundException">No such key.</exception>
    /// <exception cref="InvalidCastException">The value is of another type.</exception>
    public T Get<T>(string key)
    {
        if (!TryGetValue(key, out var value))
            throw new KeyNotFoundException($"info has no key \"{key}\"; keys: {string.Join(", ", Keys)}");
        return value is T typed ? typed
            : throw new InvalidCastException($"info[\"{key}\"] is a {value.GetType().Name}, not a {typeof(T).Name}");
    }

    /// <inheritdoc />
    public bool TryGetValue(string key, [MaybeNullWhen(false)] out object value)
    {
        for (var node = this; node is not null; node = node._parent)
        {
            if (node._parent is null)
                return node.TryGetOwn(key, out value);
            if (node._key == key)
            {
                value = node._value!;
                return true;
            }
        }
        value = null;
        return false;
    }

    /// <inheritdoc />
    public object this[string key] => TryGetValue(key, out var value) ? value
        : throw new KeyNotFoundException($"info has no key \"{key}\"; keys: {string.Join(", ", Keys)}");

    /// <inheritdoc />
    public bool ContainsKey(string key) => TryGetValue(key, out _);

    /// <inheritdoc />
    public int Count => Entries().Count;

    /// <inheritdoc />
    public IEnumerable<string> Keys => Entries().Select(e => e.Key);

    /// <inheritdoc />
    public IEnumerable<object> Values => Entries().Select(e => e.Value);

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, object>> GetEnumerator() => Entries().GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>The root's own entry for <paramref name="key"/>; the base root has none.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value when found.</param>
    /// <returns>Whether the root has the key.</returns>
    protected virtual bool TryGetOwn(string key, [MaybeNullWhen(false)] out object value)
    {
        value = null;
        return false;
    }

    /// <summary>The root's own entries, in a stable order; the base root has none.</summary>
    /// <returns>The entries.</returns>
    protected virtual IEnumerable<KeyValuePair<string, object>> OwnEntries() => [];

    /// <inheritdoc />
    public override string ToString() => "{" + string.Join(", ", Entries().Select(e => $"{e.Key}: {e.Value}")) + "}";

    // Root entries first, then additions in the order they were made; a later addition replaces
    // the value of an earlier key in place.
    private List<KeyValuePair<string, object>> Entries()
    {
        var chain = new List<Info>();
        for (var node = this; node is not null; node = node._parent)
            chain.Add(node);
        var entries = new List<KeyValuePair<string, object>>(chain[^1].OwnEntries());
        for (int i = chain.Count - 2; i >= 0; i--)
        {
            var entry = new KeyValuePair<string, object>(chain[i]._key!, chain[i]._value!);
            int at = entries.FindIndex(e => e.Key == entry.Key);
            if (at >= 0)
                entries[at] = entry;
            else
                entries.Add(entry);
        }
        return entries;
    }
}
