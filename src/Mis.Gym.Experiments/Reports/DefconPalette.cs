using Mis.Gym.Scenarios;
using ScottPlot;

namespace Mis.Gym.Reports;

/// <summary>
/// The colours and names of the DEFCON levels in the report's figures. The colours run like a
/// traffic light from calm to alarm (5 green, 4 yellow, 3 orange, 2 red, 1 dark red), so a figure
/// reads right at a glance; a general-purpose colour map such as Turbo puts its hot dark red on
/// DEFCON 5, the calmest level. The names say what a level does to the workload under the run's
/// feedback mode, so a deny-only run's DEFCON 1 is not called a kill.
/// </summary>
internal static class DefconPalette
{
    /// <summary>The levels, calmest first: the order of every legend.</summary>
    internal static readonly IReadOnlyList<int> Levels = [5, 4, 3, 2, 1];

    /// <summary>The lower end of a colour scale over the levels: each level owns a band one unit wide centred on it.</summary>
    internal const double ScaleLow = 0.5;

    /// <summary>The upper end of a colour scale over the levels (see <see cref="ScaleLow"/>).</summary>
    internal const double ScaleHigh = 5.5;

    // Indexed by level - 1.
    private static readonly Color[] ByLevel =
    [
        Color.FromHex("#67001F"), // 1: dark red, the alarm
        Color.FromHex("#D62728"), // 2: red
        Color.FromHex("#F28E2B"), // 3: orange
        Color.FromHex("#EDC948"), // 4: yellow (deep enough to read on white)
        Color.FromHex("#2CA02C"), // 5: green, calm
    ];

    /// <summary>The colour of DEFCON <paramref name="level"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="level"/> is not 1..5.</exception>
    internal static Color ColorOf(int level)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(level, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(level, 5);
        return ByLevel[level - 1];
    }

    /// <summary>
    /// The legend's name for DEFCON <paramref name="level"/> under <paramref name="mode"/>, e.g.
    /// <c>DEFCON 5 (calm)</c>, <c>DEFCON 1 (kill)</c>. DEFCON 3 denies the execs no rule allows,
    /// DEFCON 2 everything no rule allows (lockdown); slowdown and kill are named only where the mode
    /// has them.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="level"/> is not 1..5.</exception>
    internal static string Label(int level, FeedbackMode mode)
    {
        bool slowdown = mode is FeedbackMode.DenySlowdown or FeedbackMode.DenySlowdownKill;
        bool kill = mode == FeedbackMode.DenySlowdownKill;
        string what = level switch
        {
            5 => "calm",
            4 => slowdown ? "slowdown" : "alert",
            3 => slowdown ? "execs denied, more slowdown" : "execs denied",
            2 => slowdown ? "lockdown, most slowdown" : "lockdown",
            1 => kill ? "kill" : "lockdown, no kill in this mode",
            _ => throw new ArgumentOutOfRangeException(nameof(level), level, "a DEFCON level is 1..5"),
        };
        return $"DEFCON {level} ({what})";
    }

    /// <summary>
    /// A colour map over <see cref="ScaleLow"/>..<see cref="ScaleHigh"/> in five flat bands, one per
    /// level: a heat map's cells take their level's colour exactly, and its colour bar shows five
    /// swatches rather than a gradient between levels that do not exist.
    /// </summary>
    internal static IColormap Colormap { get; } = new LevelColormap();

    private sealed class LevelColormap : IColormap
    {
        public string Name => "DEFCON levels";

        // position 0..1 over ScaleLow..ScaleHigh; the level is the nearest whole number.
        public Color GetColor(double position)
        {
            if (double.IsNaN(position))
                return Colors.Transparent;
            double value = ScaleLow + Math.Clamp(position, 0, 1) * (ScaleHigh - ScaleLow);
            return ColorOf(Math.Clamp((int)Math.Floor(value + 0.5), 1, 5));
        }
    }
}
