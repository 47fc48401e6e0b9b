namespace Mis.Enforcer.Configuration;

/// <summary>The <c>[policy]</c> section of <c>config.toml</c>: how the enforcer decides.</summary>
public sealed record PolicyConfig
{
    /// <summary>
    /// <c>default_action</c>: what happens to a syscall no rule matches, <c>"allow"</c> or <c>"deny"</c>.
    /// Default <c>"allow"</c>.
    /// </summary>
    public string DefaultAction { get; init; } = "allow";

    /// <summary>
    /// <c>learning_mode</c>: when true, violations do not escalate DEFCON and the syscall stream is recorded for the anomaly scorer. Default <c>false</c>.
    /// </summary>
    public bool LearningMode { get; init; }

    /// <summary>
    /// <c>kill_on_anomaly</c>: in learning mode, kill a workload's whole cgroup when its anomaly score exceeds <see cref="AnomalyThreshold"/>.
    /// Default <c>true</c>.
    /// </summary>
    public bool KillOnAnomaly { get; init; } = true;

    /// <summary>
    /// <c>anomaly_threshold</c>: anomaly score (0..1000) above which a workload counts as anomalous.
    /// Default <c>800</c>.
    /// </summary>
    public int AnomalyThreshold { get; init; } = 800;

    /// <summary>
    /// <c>anomaly_model</c>: model file (<c>mis anomaly train</c>) with which <c>mis enforcer</c> scores
    /// its workloads' live syscall streams; a relative path is relative to the configuration file.
    /// Empty turns online scoring off. Default <c>""</c>.
    /// </summary>
    public string AnomalyModel { get; init; } = "";

    /// <summary>
    /// <c>anomaly_monitor_by_default</c>: with an <see cref="AnomalyModel"/>, score a workload whose
    /// RunWorkload request leaves <c>anomaly_monitoring</c> unset. Default <c>true</c>.
    /// </summary>
    public bool AnomalyMonitorByDefault { get; init; } = true;

    /// <summary>
    /// <c>max_rule_ttl_secs</c>: longest lifetime, in seconds, a temporary rule may have (at least 1).
    /// Default <c>86400</c> (one day).
    /// </summary>
    public long MaxRuleTtlSecs { get; init; } = 86400;

    /// <summary>
    /// <c>decision_cache_size</c>: number of cached policy decisions; 0 disables the cache.
    /// Default <c>65536</c>.
    /// </summary>
    public int DecisionCacheSize { get; init; } = 65536;

    /// <summary>True when <see cref="DefaultAction"/> is <c>"deny"</c>.</summary>
    public bool DefaultDeny => DefaultAction == "deny";
}
