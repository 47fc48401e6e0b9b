using Mis.Enforcer.Configuration;

namespace Mis.Enforcer.Defcon;

/// <summary>
/// The DEFCON arithmetic of one <c>[defcon]</c> configuration, in the kernel's integer form: the
/// C# side of <c>mis_level_for</c>, <c>mis_slowdown_ns</c> and the entry count
/// <c>mis_set_level</c> jumps to (<c>bpf/include/mis_defcon.h</c>). Every C# reader of a level
/// (the twin, the quickstart ladder, the gym's step accounting, the benchmarks) asks this, so
/// there is one copy to hold to the kernel.
/// </summary>
public sealed class DefconLadder
{
    private const int Thresholds = 4; // MIS_DEFCON_THRESHOLDS: entering DEFCON 4, 3, 2, 1
    private const int Slowdowns = 3;  // MIS_DEFCON_SLOWDOWNS: at DEFCON 4, 3, 2

    private readonly ulong[] _thresholds;
    private readonly ulong[] _slowdownNs;

    /// <summary>The ladder of <paramref name="config"/>.</summary>
    /// <exception cref="ArgumentException">Not 4 thresholds and 3 slowdowns, the kernel's shape.</exception>
    public DefconLadder(DefconConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Thresholds.Count != Thresholds || config.SlowdownUs.Count != Slowdowns)
            throw new ArgumentException($"expected {Thresholds} thresholds and {Slowdowns} slowdowns, got {config.Thresholds.Count} and {config.SlowdownUs.Count}", nameof(config));
        // Negative values cannot reach the kernel (the binder refuses them); clamping keeps the
        // twin total on hand-built configs without inventing another meaning for them.
        _thresholds = config.Thresholds.Select(t => (ulong)Math.Max(0, t)).ToArray();
        _slowdownNs = config.SlowdownUs.Select(us => (ulong)Math.Max(0, us) * 1000).ToArray();
    }

    /// <summary>
    /// The level for a violation count: 5 minus the number of thresholds reached (with the default
    /// thresholds: 0..2 → 5, 3..5 → 4, 6..9 → 3, 10..14 → 2, 15+ → 1). <c>mis_level_for</c>.
    /// </summary>
    /// <param name="violations">Counted violations (decay already applied).</param>
    public DefconLevel LevelFor(ulong violations)
    {
        int level = DefconLevel.Normal.Value;
        foreach (ulong threshold in _thresholds)
        {
            if (violations >= threshold)
                level--;
        }
        return DefconLevel.From(Math.Max(level, DefconLevel.Severest.Value));
    }

    /// <summary>
    /// Per-syscall busy-wait at <paramref name="level"/>, in nanoseconds: none at 5, the configured
    /// one at 4, 3 and 2, and level 2's at 1 (which lasts until the kill, or for good without
    /// <c>kill_at_level_1</c>). <c>mis_slowdown_ns</c>.
    /// </summary>
    public ulong SlowdownNsFor(DefconLevel level) => level.Value switch
    {
        5 => 0,
        4 => _slowdownNs[0],
        3 => _slowdownNs[1],
        _ => _slowdownNs[2],
    };

    /// <summary>
    /// The violation count at which <paramref name="level"/> is entered: 0 for DEFCON 5, the
    /// threshold that enters it otherwise. What the manual override (<c>mis_set_level</c>) sets the
    /// count to, whichever way the level moves.
    /// </summary>
    public ulong EntryViolations(DefconLevel level) =>
        level == DefconLevel.Normal ? 0 : _thresholds[DefconLevel.Normal.Value - 1 - level.Value];
}
