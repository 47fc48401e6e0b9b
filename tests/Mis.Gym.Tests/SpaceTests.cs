using Mis.Gym.Spaces;

namespace Mis.Gym.Tests;

public sealed class SpaceTests
{
    [Fact]
    public void Discrete_samples_repeat_with_the_same_seed_and_stay_in_the_space()
    {
        var space = new Discrete(7, start: 3);
        var rngA = new Random(11);
        var rngB = new Random(11);
        var first = Enumerable.Range(0, 200).Select(_ => space.Sample(rngA)).ToArray();
        var second = Enumerable.Range(0, 200).Select(_ => space.Sample(rngB)).ToArray();
        Assert.Equal(first, second);
        Assert.All(first, x => Assert.True(space.Contains(x)));
        Assert.Equal(Enumerable.Range(3, 7), first.Distinct().Order());
        Assert.NotEqual(first, Enumerable.Range(0, 200).Select(_ => space.Sample(new Random(12))).ToArray());
    }

    [Fact]
    public void Discrete_mask_is_honoured_and_an_empty_mask_gives_start_as_in_Gymnasium()
    {
        var space = new Discrete(5, start: 10);
        bool[] mask = [false, true, false, true, false];
        var rng = new Random(1);
        var samples = Enumerable.Range(0, 500).Select(_ => space.Sample(rng, mask)).ToHashSet();
        Assert.Equal([11, 13], samples.Order());
        Assert.Equal(10, space.Sample(rng, new bool[5]));
        var error = Assert.Throws<ArgumentException>(() => space.Sample(rng, new bool[4]));
        Assert.Contains("expected a mask of 5 elements, got 4", error.Message);
    }

    [Fact]
    public void Discrete_contains_exactly_its_range()
    {
        var space = new Discrete(3, start: -1);
        Assert.Equal([false, true, true, true, false], new[] { -2, -1, 0, 1, 2 }.Select(space.Contains));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Discrete(0));
    }

    [Fact]
    public void MultiDiscrete_samples_repeat_honour_per_dimension_masks_and_are_contained()
    {
        var space = new MultiDiscrete(2, 3, 4);
        var a = Enumerable.Range(0, 100).Select(_ => space.Sample(new Random(5))).ToList();
        Assert.All(a, x => Assert.Equal(a[0], x));
        var rng = new Random(3);
        bool[]?[] mask = [null, [false, false, true], [true, false, false, false]];
        for (int i = 0; i < 100; i++)
        {
            var x = space.Sample(rng, mask);
            Assert.True(space.Contains(x));
            Assert.Equal(2, x[1]);
            Assert.Equal(0, x[2]);
        }
        Assert.False(space.Contains([0, 3, 0]));
        Assert.False(space.Contains([0, 0]));
        Assert.False(space.Contains([-1, 0, 0]));
        Assert.Throws<ArgumentException>(() => space.Sample(rng, [null, null]));
    }

    [Fact]
    public void Box_samples_repeat_and_respect_bounded_half_bounded_and_unbounded_elements()
    {
        var box = new Box([-1f, 0f, float.NegativeInfinity, float.NegativeInfinity], [1f, float.PositiveInfinity, 5f, float.PositiveInfinity]);
        var rngA = new Random(9);
        var rngB = new Random(9);
        for (int i = 0; i < 1000; i++)
        {
            var x = box.Sample(rngA);
            Assert.Equal(x, box.Sample(rngB));
            Assert.True(box.Contains(x), box.Format(x));
        }
    }

    [Fact]
    public void Box_contains_rejects_NaN_wrong_length_and_out_of_bounds()
    {
        var box = Box.Uniform(0f, 1f, 3);
        Assert.True(box.Contains([0f, 0.5f, 1f]));
        Assert.False(box.Contains([0f, float.NaN, 1f]));
        Assert.False(box.Contains([0f, 1f]));
        Assert.False(box.Contains([0f, 1.0001f, 1f]));
        Assert.False(box.Contains(null!));
    }

    [Fact]
    public void Box_refuses_bounds_that_make_no_set()
    {
        Assert.Contains("expected low <= high", Assert.Throws<ArgumentException>(() => new Box([2f], [1f])).Message);
        Assert.Throws<ArgumentException>(() => new Box([float.NaN], [1f]));
        Assert.Throws<ArgumentException>(() => new Box([0f, 0f], [1f]));
        Assert.Throws<ArgumentException>(() => new Box([0f, 0f], [1f, 1f], [3]));
    }

    [Fact]
    public void Spaces_are_immutable_values()
    {
        float[] low = [0f, 0f];
        var box = new Box(low, [1f, 1f]);
        low[0] = 5f;
        Assert.Equal(0f, box.Low[0]);
        Assert.Equal(box, Box.Uniform(0f, 1f, 2));
        Assert.Equal(new Discrete(4, 1), new Discrete(4, 1));
        Assert.NotEqual(new Discrete(4), new Discrete(4, 1));
        Assert.Equal(new MultiDiscrete(2, 3), new MultiDiscrete(2, 3));
        Assert.Equal([2], box.Shape);
        Assert.Empty(new Discrete(2).Shape);
    }
}
