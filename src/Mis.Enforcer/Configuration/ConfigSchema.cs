namespace Mis.Enforcer.Configuration;

/// <summary>
/// Every section and key <c>config.toml</c> may hold, with how each value is checked and stored.
/// Keys absent from a file keep the defaults of the section records.
/// </summary>
public static class ConfigSchema
{
    internal static readonly string[] DefaultActions = ["allow", "deny"];
    internal static readonly string[] LogLevels = ["trace", "debug", "info", "warning", "error", "critical", "none"];
    internal static readonly string[] LogFormats = ["text", "json"];
    // Octal modes spelled as strings: TOML has octal integers (0o660) but people write "0660".
    // Only these three: a socket needs read and write to connect, and no one but root may own it.
    internal static readonly string[] UnixSocketModes = ["0600", "0660", "0666"];

    /// <summary>The sections, in the order <c>config/config.toml</c> documents them.</summary>
    internal static IReadOnlyList<SectionSpec> Sections { get; } =
    [
        new("paths",
        [
            new("state_dir", (v, c) => c with { Paths = c.Paths with { StateDir = v.NonEmptyString() } }),
            new("cgroup_root", (v, c) => c with { Paths = c.Paths with { CgroupRoot = v.String() } }),
            new("bpf_pin_dir", (v, c) => c with { Paths = c.Paths with { BpfPinDir = v.NonEmptyString() } }),
            new("runs_dir", (v, c) => c with { Paths = c.Paths with { RunsDir = v.NonEmptyString() } }),
            new("policy_files", (v, c) => c with { Paths = c.Paths with { PolicyFiles = v.StringArray() } }),
        ]),
        new("policy",
        [
            new("default_action", (v, c) => c with { Policy = c.Policy with { DefaultAction = v.OneOf(DefaultActions) } }),
            new("learning_mode", (v, c) => c with { Policy = c.Policy with { LearningMode = v.Bool() } }),
            new("kill_on_anomaly", (v, c) => c with { Policy = c.Policy with { KillOnAnomaly = v.Bool() } }),
            new("anomaly_threshold", (v, c) => c with { Policy = c.Policy with { AnomalyThreshold = v.Int(0, 1000) } }),
            new("anomaly_model", (v, c) => c with { Policy = c.Policy with { AnomalyModel = v.String() } }),
            new("anomaly_monitor_by_default", (v, c) => c with { Policy = c.Policy with { AnomalyMonitorByDefault = v.Bool() } }),
            new("max_rule_ttl_secs", (v, c) => c with { Policy = c.Policy with { MaxRuleTtlSecs = v.Long(1) } }),
            new("decision_cache_size", (v, c) => c with { Policy = c.Policy with { DecisionCacheSize = v.Int(0) } }),
        ]),
        new("watchdog",
        [
            new("enabled", (v, c) => c with { Watchdog = c.Watchdog with { Enabled = v.Bool() } }),
            new("interval_ms", (v, c) => c with { Watchdog = c.Watchdog with { IntervalMs = v.Int(10) } }),
            new("kill_grace_ms", (v, c) => c with { Watchdog = c.Watchdog with { KillGraceMs = v.Int(0) } }),
            new("kill_on_enforcer_exit", (v, c) => c with { Watchdog = c.Watchdog with { KillOnEnforcerExit = v.Bool() } }),
        ]),
        new("logging",
        [
            new("level", (v, c) => c with { Logging = c.Logging with { Level = v.OneOf(LogLevels) } }),
            new("format", (v, c) => c with { Logging = c.Logging with { Format = v.OneOf(LogFormats) } }),
            new("events_path", (v, c) => c with { Logging = c.Logging with { EventsPath = v.String() } }),
            new("audit_log_path", (v, c) => c with { Logging = c.Logging with { AuditLogPath = v.String() } }),
            new("max_file_size_mb", (v, c) => c with { Logging = c.Logging with { MaxFileSizeMb = v.Int(1) } }),
            new("max_files", (v, c) => c with { Logging = c.Logging with { MaxFiles = v.Int(1) } }),
        ]),
        new("grpc",
        [
            new("enabled", (v, c) => c with { Grpc = c.Grpc with { Enabled = v.Bool() } }),
            new("bind_address", (v, c) => c with { Grpc = c.Grpc with { BindAddress = v.NonEmptyString() } }),
            new("port", (v, c) => c with { Grpc = c.Grpc with { Port = v.Int(1, 65535) } }),
            new("unix_socket_path", (v, c) => c with { Grpc = c.Grpc with { UnixSocketPath = v.String() } }),
            new("unix_socket_mode", (v, c) => c with { Grpc = c.Grpc with { UnixSocketMode = v.OneOf(UnixSocketModes) } }),
            new("unix_socket_group", (v, c) => c with { Grpc = c.Grpc with { UnixSocketGroup = v.String() } }),
            new("tls_enabled", (v, c) => c with { Grpc = c.Grpc with { TlsEnabled = v.Bool() } }),
            new("tls_cert_path", (v, c) => c with { Grpc = c.Grpc with { TlsCertPath = v.String() } }),
            new("tls_key_path", (v, c) => c with { Grpc = c.Grpc with { TlsKeyPath = v.String() } }),
            new("tls_client_ca_path", (v, c) => c with { Grpc = c.Grpc with { TlsClientCaPath = v.String() } }),
            new("max_message_bytes", (v, c) => c with { Grpc = c.Grpc with { MaxMessageBytes = v.Int(1024) } }),
        ]),
        new("access",
        [
            new("admin_group", (v, c) => c with { Access = c.Access with { AdminGroup = v.String() } }),
            new("user_policy_files", (v, c) => c with { Access = c.Access with { UserPolicyFiles = v.StringArray() } }),
            new("tcp_callers", (v, c) => c with { Access = c.Access with { TcpCallers = v.OneOf(AccessConfig.TcpCallerModes) } }),
        ]),
        new("metrics",
        [
            new("enabled", (v, c) => c with { Metrics = c.Metrics with { Enabled = v.Bool() } }),
            new("bind_address", (v, c) => c with { Metrics = c.Metrics with { BindAddress = v.NonEmptyString() } }),
            new("port", (v, c) => c with { Metrics = c.Metrics with { Port = v.Int(1, 65535) } }),
            new("endpoint", (v, c) => c with { Metrics = c.Metrics with { Endpoint = v.UrlPath() } }),
        ]),
        new("defcon",
        [
            new("thresholds", (v, c) => c with { Defcon = c.Defcon with { Thresholds = v.LongArray(4, 1, long.MaxValue, strictlyIncreasing: true) } }),
            new("slowdown_us", (v, c) => c with { Defcon = c.Defcon with { SlowdownUs = v.IntArray(3, 0, 1_000_000) } }),
            new("decay_interval_ms", (v, c) => c with { Defcon = c.Defcon with { DecayIntervalMs = v.Int(0) } }),
            new("decay_amount", (v, c) => c with { Defcon = c.Defcon with { DecayAmount = v.Int(1) } }),
            new("kill_at_level_1", (v, c) => c with { Defcon = c.Defcon with { KillAtLevel1 = v.Bool() } }),
            new("net_lockdown_level", (v, c) => c with { Defcon = c.Defcon with { NetLockdownLevel = v.Int(0, 5) } }),
        ]),
    ];

    /// <summary>The section called <paramref name="name"/>, or null.</summary>
    internal static SectionSpec? FindSection(string name)
    {
        foreach (var section in Sections)
        {
            if (section.Name == name)
            {
                return section;
            }
        }
        return null;
    }
}

/// <summary>One <c>[section]</c> of <c>config.toml</c> and its keys.</summary>
public sealed class SectionSpec(string name, IReadOnlyList<KeySpec> keys)
{
    /// <summary>The section name as written in TOML, e.g. <c>grpc</c>.</summary>
    public string Name { get; } = name;

    /// <summary>The keys, in documentation order.</summary>
    public IReadOnlyList<KeySpec> Keys { get; } = keys;

    /// <summary>The key called <paramref name="key"/>, or null.</summary>
    public KeySpec? Find(string key)
    {
        foreach (var spec in Keys)
        {
            if (spec.Name == key)
            {
                return spec;
            }
        }
        return null;
    }
}

/// <summary>One key of a section: its TOML name and how a value is checked and stored.</summary>
public sealed class KeySpec(string name, Func<ConfigValue, MisConfig, MisConfig> apply)
{
    /// <summary>The key name as written in TOML, e.g. <c>bind_address</c>.</summary>
    public string Name { get; } = name;

    /// <summary>Checks the value (throwing <see cref="ConfigException"/>) and returns the updated configuration.</summary>
    public Func<ConfigValue, MisConfig, MisConfig> Apply { get; } = apply;
}
