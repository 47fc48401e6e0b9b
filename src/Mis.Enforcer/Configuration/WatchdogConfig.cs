namespace Mis.Enforcer.Configuration;

/// <summary>The <c>[watchdog]</c> section of <c>config.toml</c>: the liveness watchdog of the enforcer.</summary>
public sealed record WatchdogConfig
{
    /// <summary><c>enabled</c>: whether the watchdog runs. Default <c>true</c>.</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>
    /// <c>interval_ms</c>: milliseconds between two watchdog checks (at least 10). Default <c>1000</c>.
    /// </summary>
    public int IntervalMs { get; init; } = 1000;

    /// <summary>
    /// <c>kill_grace_ms</c>: milliseconds between SIGTERM and SIGKILL when the watchdog kills a
    /// process (at least 0). Default <c>2000</c>.
    /// </summary>
    public int KillGraceMs { get; init; } = 2000;

    /// <summary>
    /// <c>kill_on_enforcer_exit</c>: kill the confined processes when the enforcer exits, so nothing
    /// runs unconfined. Default <c>true</c>.
    /// </summary>
    public bool KillOnEnforcerExit { get; init; } = true;

    /// <summary><see cref="IntervalMs"/> as a <see cref="TimeSpan"/>.</summary>
    public TimeSpan Interval => TimeSpan.FromMilliseconds(IntervalMs);

    /// <summary><see cref="KillGraceMs"/> as a <see cref="TimeSpan"/>.</summary>
    public TimeSpan KillGrace => TimeSpan.FromMilliseconds(KillGraceMs);
}
