using Mis.Enforcer.Configuration;
using Mis.Enforcer.Defcon;

namespace Mis.Enforcer.Tests;

/// <summary>The one C# copy of the level arithmetic (mis_level_for, mis_slowdown_ns, mis_set_level's target) and the level type.</summary>
public sealed class DefconLadderTests
{
    [Theory]
    [InlineData(0, 5)]
    [InlineData(2, 5)]
    [InlineData(3, 4)]
    [InlineData(5, 4)]
    [InlineData(6, 3)]
    [InlineData(9, 3)]
    [InlineData(10, 2)]
    [InlineData(14, 2)]
    [InlineData(15, 1)]
    [InlineData(100, 1)]
    public void LevelFor_uses_the_default_thresholds(long violations, int level)
    {
        Assert.Equal(level, MisConfig.Default.Defcon.Ladder.LevelFor((ulong)violations));
    }

    [Theory]
    [InlineData(0, 5)]
    [InlineData(1, 4)]
    [InlineData(2, 3)]
    [InlineData(99, 3)]
    [InlineData(100, 2)]
    [InlineData(999, 2)]
    [InlineData(1000, 1)]
    [InlineData(long.MaxValue, 1)]
    public void LevelFor_uses_configured_thresholds(long violations, int level)
    {
        var defcon = MisConfig.Parse("[defcon]\nthresholds = [1, 2, 100, 1000]\n", "config.toml").Defcon;
        Assert.Equal(level, defcon.Ladder.LevelFor((ulong)violations));
    }

    [Fact]
    public void LevelFor_changes_exactly_at_each_threshold_and_nowhere_else()
    {
        var ladder = new DefconConfig { Thresholds = [2, 7, 8, 40] }.Ladder;
        var changes = Enumerable.Range(1, 60)
            .Where(v => ladder.LevelFor((ulong)v) != ladder.LevelFor((ulong)v - 1))
            .Select(v => (v, ladder.LevelFor((ulong)v).Value));
        Assert.Equal([(2, 4), (7, 3), (8, 2), (40, 1)], changes);
        Assert.Equal(DefconLevel.Severest, ladder.LevelFor(ulong.MaxValue));
    }

    [Theory]
    [InlineData(5, 0)]
    [InlineData(4, 100_000)]
    [InlineData(3, 1_000_000)]
    [InlineData(2, 10_000_000)]
    [InlineData(1, 10_000_000)]
    public void Slowdown_for_each_level(int level, ulong nanoseconds)
    {
        Assert.Equal(nanoseconds, MisConfig.Default.Defcon.Ladder.SlowdownNsFor(DefconLevel.From(level)));
    }

    [Theory]
    [InlineData(5, 0)]
    [InlineData(4, 3)]
    [InlineData(3, 6)]
    [InlineData(2, 10)]
    [InlineData(1, 15)]
    public void Each_level_is_entered_at_its_threshold(int level, ulong violations)
    {
        var ladder = MisConfig.Default.Defcon.Ladder;
        Assert.Equal(violations, ladder.EntryViolations(DefconLevel.From(level)));
        Assert.Equal(level, ladder.LevelFor(violations));
    }

    [Fact]
    public void A_ladder_needs_the_kernels_shape()
    {
        Assert.Throws<ArgumentException>(() => new DefconConfig { Thresholds = [1, 2, 3] }.Ladder);
        Assert.Throws<ArgumentException>(() => new DefconConfig { SlowdownUs = [1, 2, 3, 4] }.Ladder);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(6)]
    [InlineData(-5)]
    public void A_number_outside_1_to_5_is_no_level(int number)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => DefconLevel.From(number));
    }

    [Fact]
    public void A_level_reads_and_compares_as_its_number()
    {
        var three = DefconLevel.From(3);
        Assert.Equal("DEFCON 3", $"DEFCON {three}");
        Assert.True(DefconLevel.Severest < three && three < DefconLevel.Normal); // lower is more severe, as in the kernel
        Assert.Equal(3, (int)three);
        Assert.NotEqual(DefconLevel.NotKnown, DefconLevel.Severest.Value);
        Assert.NotEqual(DefconLevel.NotKnown, DefconLevel.Normal.Value);
    }
}
