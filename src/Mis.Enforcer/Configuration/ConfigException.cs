using Tomlyn.Syntax;

namespace Mis.Enforcer.Configuration;

/// <summary>
/// A configuration file could not be used: it is missing or unreadable, is not valid TOML, or holds
/// an unknown section or key or an invalid value. The message says where, e.g.
/// <c>config.toml:12:8: grpc.port: expected an integer, found a string ("abc")</c>.
/// </summary>
public sealed class ConfigException : Exception
{
    /// <summary>Creates the exception; the message is built from the location and <paramref name="detail"/>.</summary>
    /// <param name="file">The file, as named to the loader.</param>
    /// <param name="line">1-based line, or 0 when the problem is not at a position in the file.</param>
    /// <param name="column">1-based column, or 0 when the problem is not at a position in the file.</param>
    /// <param name="key">Dotted key or section concerned (e.g. <c>grpc.port</c>), or null.</param>
    /// <param name="detail">What is wrong, without the location.</param>
    /// <param name="innerException">The underlying error, if any.</param>
    public ConfigException(string file, int line, int column, string? key, string detail, Exception? innerException = null)
        : base(FormatMessage(file, line, column, key, detail), innerException)
    {
        File = file;
        Line = line;
        Column = column;
        Key = key;
        Detail = detail;
    }

    /// <summary>The file, as named to the loader.</summary>
    public string File { get; }

    /// <summary>1-based line of the problem, or 0 when it is not at a position (e.g. a missing file).</summary>
    public int Line { get; }

    /// <summary>1-based column of the problem, or 0 when it is not at a position.</summary>
    public int Column { get; }

    /// <summary>Dotted key or section concerned, e.g. <c>grpc.port</c> or <c>grpc</c>; null when none applies.</summary>
    public string? Key { get; }

    /// <summary>What is wrong, without the file, position and key.</summary>
    public string Detail { get; }

    /// <summary>An error at <paramref name="at"/>'s start (1-based line and column), or naming only the file when there is no node.</summary>
    internal static ConfigException At(string file, SyntaxNodeBase? at, string? key, string detail)
    {
        if (at is null)
        {
            return new ConfigException(file, 0, 0, key, detail);
        }
        var start = at.Span.Start;
        return new ConfigException(file, start.Line + 1, start.Column + 1, key, detail);
    }

    private static string FormatMessage(string file, int line, int column, string? key, string detail)
    {
        var location = line > 0 ? $"{file}:{line}:{column}" : file;
        return key is null ? $"{location}: {detail}" : $"{location}: {key}: {detail}";
    }
}
