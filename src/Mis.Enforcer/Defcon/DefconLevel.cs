using System.Globalization;

namespace Mis.Enforcer.Defcon;

/// <summary>
/// A DEFCON level: 5 (normal: no threshold reached) down to 1 (every threshold reached; the cgroup
/// is killed when <c>kill_at_level_1</c>). Lower is more severe, as in the kernel
/// (<c>MIS_DEFCON_NORMAL</c> 5, <c>MIS_DEFCON_MIN</c> 1), so escalating lowers the number and
/// comparisons read like the kernel's (<c>after &lt; before</c> is an escalation).
/// </summary>
/// <remarks>
/// A level converts to its number implicitly, for events, protobuf messages, observations and
/// comparisons; a number becomes a level only through <see cref="From"/>, which refuses anything
/// outside 1..5. <c>default(DefconLevel)</c> is not a level: nothing here defaults to DEFCON 5,
/// because a level nobody read must never pass for the calmest one.
/// </remarks>
public readonly record struct DefconLevel : IComparable<DefconLevel>
{
    /// <summary>
    /// What an event, a protobuf message or a report carries in place of a level when none could
    /// be read (the cgroup was no longer managed when it was asked). 0 is no level at all, so a
    /// reader cannot mistake it for DEFCON 5.
    /// </summary>
    public const int NotKnown = 0;

    private DefconLevel(int value) => Value = value;

    /// <summary>DEFCON 5: no threshold reached; no slowdown, nothing denied for being at a level.</summary>
    public static DefconLevel Normal => new(5);

    /// <summary>DEFCON 1: every threshold reached; final when it killed the cgroup.</summary>
    public static DefconLevel Severest => new(1);

    /// <summary>The level's number, 5 (normal) down to 1.</summary>
    public int Value { get; }

    /// <summary>The level numbered <paramref name="level"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="level"/> is not 1..5.</exception>
    public static DefconLevel From(int level)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(level, Severest.Value);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(level, Normal.Value);
        return new DefconLevel(level);
    }

    /// <summary>The level's number (see <see cref="Value"/>).</summary>
    public static implicit operator int(DefconLevel level) => level.Value;

    /// <inheritdoc />
    public int CompareTo(DefconLevel other) => Value.CompareTo(other.Value);

    /// <summary>The number alone, so "DEFCON {level}" reads as it always has.</summary>
    public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);
}
