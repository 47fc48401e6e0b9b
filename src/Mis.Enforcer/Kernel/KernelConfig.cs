using Mis.Enforcer.Configuration;

namespace Mis.Enforcer.Kernel;

/// <summary>The kernel is told DEFCON settings by value, per cgroup; this turns the config record into that value.</summary>
public static class KernelConfig
{
    /// <summary>The <c>struct mis_defcon_config</c> for <paramref name="config"/>.</summary>
    /// <exception cref="ArgumentException">The config is not one the kernel state machine can run.</exception>
    internal static unsafe MisDefconConfig ToKernel(DefconConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Thresholds.Count != 4)
            throw new ArgumentException($"defcon thresholds: expected 4 values, got {config.Thresholds.Count}", nameof(config));
        if (config.SlowdownUs.Count != 3)
            throw new ArgumentException($"defcon slowdown_us: expected 3 values, got {config.SlowdownUs.Count}", nameof(config));
        long previous = 0;
        foreach (long t in config.Thresholds)
        {
            if (t <= previous)
                throw new ArgumentException($"defcon thresholds must be strictly increasing and at least 1, got [{string.Join(", ", config.Thresholds)}]", nameof(config));
            previous = t;
        }
        if (config.SlowdownUs.Any(us => us is < 0 or > 1_000_000))
            throw new ArgumentException($"defcon slowdown_us must each be 0..1000000, got [{string.Join(", ", config.SlowdownUs)}]", nameof(config));
        if (config.DecayIntervalMs < 0 || config.DecayAmount < 1)
            throw new ArgumentException($"defcon decay: interval must be >= 0 and amount >= 1, got {config.DecayIntervalMs} ms and {config.DecayAmount}", nameof(config));
        if (config.NetLockdownLevel is < 0 or > 5)
            throw new ArgumentException($"defcon net_lockdown_level must be 0..5, got {config.NetLockdownLevel}", nameof(config));

        var k = new MisDefconConfig
        {
            DecayIntervalNs = (ulong)config.DecayIntervalMs * 1_000_000,
            DecayAmount = (ulong)config.DecayAmount,
            KillAtLevel1 = config.KillAtLevel1 ? 1u : 0u,
            NetLockdownLevel = (uint)config.NetLockdownLevel,
        };
        for (int i = 0; i < 4; i++)
            k.Thresholds[i] = (ulong)config.Thresholds[i];
        for (int i = 0; i < 3; i++)
            k.SlowdownNs[i] = (ulong)config.SlowdownUs[i] * 1000;
        return k;
    }
}
