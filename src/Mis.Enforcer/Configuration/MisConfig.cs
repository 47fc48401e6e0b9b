namespace Mis.Enforcer.Configuration;

/// <summary>
/// The MIS configuration, as read from <c>config.toml</c>. Every section and every key is optional;
/// whatever the file does not say keeps its default (see <see cref="Default"/> and
/// <c>config/config.toml</c>, which documents every key).
/// </summary>
public sealed record MisConfig
{
    /// <summary><c>[paths]</c>: where MIS keeps its files.</summary>
    public PathsConfig Paths { get; init; } = new();

    /// <summary><c>[policy]</c>: how the enforcer decides.</summary>
    public PolicyConfig Policy { get; init; } = new();

    /// <summary><c>[watchdog]</c>: the liveness watchdog.</summary>
    public WatchdogConfig Watchdog { get; init; } = new();

    /// <summary><c>[logging]</c>: diagnostics, events and audit trail.</summary>
    public LoggingConfig Logging { get; init; } = new();

    /// <summary><c>[grpc]</c>: the gRPC control API.</summary>
    public GrpcConfig Grpc { get; init; } = new();

    /// <summary><c>[access]</c>: who may do what over the gRPC control API.</summary>
    public AccessConfig Access { get; init; } = new();

    /// <summary><c>[metrics]</c>: the Prometheus metrics endpoint.</summary>
    public MetricsConfig Metrics { get; init; } = new();

    /// <summary><c>[defcon]</c>: graduated response to repeated violations.</summary>
    public DefconConfig Defcon { get; init; } = new();

    /// <summary>The configuration used when no file says otherwise: every key at its default.</summary>
    public static MisConfig Default { get; } = new();

    /// <summary>Reads and validates a configuration file.</summary>
    /// <param name="path">Path of the TOML file; it is named as given in error messages.</param>
    /// <returns>The configuration: the file's values over the defaults.</returns>
    /// <exception cref="ConfigException">
    /// The file is missing or unreadable, is not valid TOML, or holds an unknown section or key or an
    /// invalid value.
    /// </exception>
    public static MisConfig Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path))
        {
            throw new ConfigException(path, 0, 0, null, "is a directory, not a configuration file");
        }

        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ConfigException(path, 0, 0, null, "configuration file not found", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException(path, 0, 0, null, $"cannot read configuration file: {e.Message}", e);
        }
        return Parse(text, path);
    }

    /// <summary>Parses and validates configuration text.</summary>
    /// <param name="text">TOML text; empty text gives <see cref="Default"/>.</param>
    /// <param name="fileName">Name used for the file in error messages, e.g. <c>config.toml</c>.</param>
    /// <returns>The configuration: the text's values over the defaults.</returns>
    /// <exception cref="ConfigException">
    /// The text is not valid TOML, or holds an unknown section or key or an invalid value.
    /// </exception>
    public static MisConfig Parse(string text, string fileName)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(fileName);
        return ConfigBinder.Bind(text, fileName);
    }
}
