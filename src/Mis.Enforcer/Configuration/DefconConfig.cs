using System.Text;
using Mis.Enforcer.Defcon;

namespace Mis.Enforcer.Configuration;

/// <summary>
/// The <c>[defcon]</c> section of <c>config.toml</c>: graduated response to repeated violations.
/// A space starts at DEFCON 5 (normal); each threshold crossed lowers the level by one, down to
/// DEFCON 1.
/// </summary>
public sealed record DefconConfig
{
    /// <summary>
    /// <c>thresholds</c>: violation counts at which DEFCON 4, 3, 2 and 1 are entered; exactly four,
    /// strictly increasing, the first at least 1. Default <c>[3, 6, 10, 15]</c>.
    /// </summary>
    public IReadOnlyList<long> Thresholds { get; init; } = [3, 6, 10, 15];

    /// <summary>
    /// <c>slowdown_us</c>: delay added to each syscall, in microseconds, at DEFCON 4, 3 and 2;
    /// exactly three, each 0..1000000. Default <c>[100, 1000, 10000]</c>.
    /// </summary>
    public IReadOnlyList<int> SlowdownUs { get; init; } = [100, 1000, 10000];

    /// <summary>
    /// <c>decay_interval_ms</c>: 0 disables decay; otherwise, every interval of this many milliseconds
    /// without a new violation forgives <see cref="DecayAmount"/> violations and the level is
    /// recomputed. Default <c>0</c>.
    /// </summary>
    public int DecayIntervalMs { get; init; }

    /// <summary><c>decay_amount</c>: violations forgiven per decay interval (at least 1). Default <c>1</c>.</summary>
    public int DecayAmount { get; init; } = 1;

    /// <summary><c>kill_at_level_1</c>: kill the whole cgroup on entering DEFCON 1 (false: level 1 only denies and slows, for experiments without kill). Default <c>true</c>.</summary>
    public bool KillAtLevel1 { get; init; } = true;

    /// <summary>
    /// <c>net_lockdown_level</c>: at or below this DEFCON level, network operations no rule allows
    /// are denied (0: never); the kernel holds it in <c>struct mis_defcon_config</c>, beside the
    /// ladder. Default <c>3</c>.
    /// </summary>
    public int NetLockdownLevel { get; init; } = 3;

    /// <summary>The level and slowdown arithmetic of these settings (a fresh one each time, so a <c>with</c> copy never reads a stale one).</summary>
    public DefconLadder Ladder => new(this);

    /// <summary>Value equality, comparing <see cref="Thresholds"/> and <see cref="SlowdownUs"/> element by element.</summary>
    /// <param name="other">The record to compare with.</param>
    /// <returns>Whether every setting is equal.</returns>
    public bool Equals(DefconConfig? other) =>
        ReferenceEquals(this, other) ||
        (other is not null
         && Thresholds.SequenceEqual(other.Thresholds)
         && SlowdownUs.SequenceEqual(other.SlowdownUs)
         && DecayIntervalMs == other.DecayIntervalMs
         && DecayAmount == other.DecayAmount
         && KillAtLevel1 == other.KillAtLevel1
         && NetLockdownLevel == other.NetLockdownLevel);

    /// <summary>Hash code consistent with <see cref="Equals(DefconConfig)"/>.</summary>
    /// <returns>The hash code.</returns>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var threshold in Thresholds)
        {
            hash.Add(threshold);
        }
        foreach (var slowdown in SlowdownUs)
        {
            hash.Add(slowdown);
        }
        hash.Add(DecayIntervalMs);
        hash.Add(DecayAmount);
        hash.Add(KillAtLevel1);
        hash.Add(NetLockdownLevel);
        return hash.ToHashCode();
    }

    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("Thresholds = [").AppendJoin(", ", Thresholds).Append(']')
            .Append(", SlowdownUs = [").AppendJoin(", ", SlowdownUs).Append(']')
            .Append(", DecayIntervalMs = ").Append(DecayIntervalMs)
            .Append(", DecayAmount = ").Append(DecayAmount)
            .Append(", KillAtLevel1 = ").Append(KillAtLevel1)
            .Append(", NetLockdownLevel = ").Append(NetLockdownLevel);
        return true;
    }
}
