using Mis.Gym.Reports;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Tests.Experiments;

/// <summary>The DEFCON figures' colours and names: calm reads calm, alarm reads alarm, every level is named.</summary>
public sealed class DefconPaletteTests
{
    [Fact]
    public void Defcon_5_is_green_and_defcon_1_a_dark_red()
    {
        var calm = DefconPalette.ColorOf(5);
        Assert.True(calm.G > calm.R && calm.G > calm.B, $"DEFCON 5 should be green, is {calm.ToHex()}");

        var alarm = DefconPalette.ColorOf(1);
        Assert.True(alarm.R > 2 * alarm.G && alarm.R > 2 * alarm.B, $"DEFCON 1 should be red, is {alarm.ToHex()}");
        // Darker than DEFCON 2's red, so the last level stands out from the one before it.
        var red = DefconPalette.ColorOf(2);
        Assert.True(Lightness(alarm) < Lightness(red), $"DEFCON 1 ({alarm.ToHex()}) should be darker than DEFCON 2 ({red.ToHex()})");
    }

    [Fact]
    public void The_levels_run_green_yellow_orange_red_dark_red()
    {
        // Hue falls from green (about 120°) through yellow and orange to red (about 0°) as the level falls.
        double[] hues = [.. DefconPalette.Levels.Select(l => Hue(DefconPalette.ColorOf(l)))];
        Assert.InRange(hues[0], 90, 150);   // 5: green
        Assert.InRange(hues[1], 40, 65);    // 4: yellow
        Assert.InRange(hues[2], 20, 40);    // 3: orange
        Assert.True(hues[3] < 10 || hues[3] > 350, $"DEFCON 2's hue {hues[3]:0} is not red");
        Assert.True(hues[4] < 10 || hues[4] > 330, $"DEFCON 1's hue {hues[4]:0} is not red");
        Assert.Equal(5, DefconPalette.Levels.Select(l => DefconPalette.ColorOf(l).ToHex()).Distinct().Count());
    }

    [Fact]
    public void The_heat_map_colour_scale_gives_each_level_its_colour_in_a_band_of_its_own()
    {
        foreach (int level in DefconPalette.Levels)
        {
            foreach (double value in new[] { level - 0.49, level, level + 0.49 })
            {
                double position = (value - DefconPalette.ScaleLow) / (DefconPalette.ScaleHigh - DefconPalette.ScaleLow);
                Assert.Equal(DefconPalette.ColorOf(level), DefconPalette.Colormap.GetColor(position));
            }
        }
    }

    [Theory]
    [InlineData(FeedbackMode.None)]
    [InlineData(FeedbackMode.Deny)]
    [InlineData(FeedbackMode.DenySlowdown)]
    [InlineData(FeedbackMode.DenySlowdownKill)]
    public void The_legend_names_every_level_calmest_first(FeedbackMode mode)
    {
        Assert.Equal([5, 4, 3, 2, 1], DefconPalette.Levels);
        var labels = DefconPalette.Levels.Select(l => DefconPalette.Label(l, mode)).ToList();
        for (int i = 0; i < labels.Count; i++)
            Assert.StartsWith($"DEFCON {DefconPalette.Levels[i]} (", labels[i]);
        Assert.Equal("DEFCON 5 (calm)", labels[0]);
        Assert.Equal(labels.Count, labels.Distinct().Count());
    }

    [Fact]
    public void Only_a_mode_that_kills_calls_defcon_1_a_kill_and_only_one_that_slows_names_slowdown()
    {
        Assert.Equal("DEFCON 1 (kill)", DefconPalette.Label(1, FeedbackMode.DenySlowdownKill));
        Assert.Contains("no kill", DefconPalette.Label(1, FeedbackMode.Deny));
        Assert.Contains("no kill", DefconPalette.Label(1, FeedbackMode.DenySlowdown));
        Assert.Equal("DEFCON 4 (slowdown)", DefconPalette.Label(4, FeedbackMode.DenySlowdown));
        Assert.DoesNotContain(DefconPalette.Levels, l => DefconPalette.Label(l, FeedbackMode.Deny).Contains("slowdown", StringComparison.Ordinal));
        Assert.Throws<ArgumentOutOfRangeException>(() => DefconPalette.Label(0, FeedbackMode.Deny));
        Assert.Throws<ArgumentOutOfRangeException>(() => DefconPalette.ColorOf(6));
    }

    private static double Lightness(ScottPlot.Color c) => (Math.Max(c.R, Math.Max(c.G, c.B)) + Math.Min(c.R, Math.Min(c.G, c.B))) / 2.0 / 255;

    private static double Hue(ScottPlot.Color c)
    {
        double r = c.R / 255.0, g = c.G / 255.0, b = c.B / 255.0;
        double max = Math.Max(r, Math.Max(g, b)), min = Math.Min(r, Math.Min(g, b)), d = max - min;
        if (d == 0)
            return 0;
        double h = max == r ? (g - b) / d % 6 : max == g ? (b - r) / d + 2 : (r - g) / d + 4;
        return (h * 60 + 360) % 360;
    }
}
