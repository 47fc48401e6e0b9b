namespace Mis.Enforcer.Configuration;

/// <summary>The <c>[logging]</c> section of <c>config.toml</c>: diagnostics, events and audit trail.</summary>
public sealed record LoggingConfig
{
    /// <summary>
    /// <c>level</c>: minimum level logged, one of <c>trace</c>, <c>debug</c>, <c>info</c>,
    /// <c>warning</c>, <c>error</c>, <c>critical</c>, <c>none</c>. Default <c>"info"</c>.
    /// </summary>
    public string Level { get; init; } = "info";

    /// <summary><c>format</c>: log line format, <c>"text"</c> or <c>"json"</c>. Default <c>"text"</c>.</summary>
    public string Format { get; init; } = "text";

    /// <summary>
    /// <c>events_path</c>: JSON-lines file receiving enforcement events; empty means none.
    /// Default <c>""</c>.
    /// </summary>
    public string EventsPath { get; init; } = "";

    /// <summary><c>audit_log_path</c>: audit log file; empty means none. Default <c>""</c>.</summary>
    public string AuditLogPath { get; init; } = "";

    /// <summary>
    /// <c>max_file_size_mb</c>: size in MiB at which a log file is rotated (at least 1). Default <c>100</c>.
    /// </summary>
    public int MaxFileSizeMb { get; init; } = 100;

    /// <summary><c>max_files</c>: rotated files kept per log (at least 1). Default <c>5</c>.</summary>
    public int MaxFiles { get; init; } = 5;

    /// <summary><see cref="MaxFileSizeMb"/> in bytes.</summary>
    public long MaxFileSizeBytes => MaxFileSizeMb * 1024L * 1024L;
}
