namespace Mis.Gym.Tests;

public sealed class InfoTests
{
    [Fact]
    public void With_adds_without_changing_the_original_and_a_later_key_wins()
    {
        var a = Info.Of(("x", 1), ("y", "two"));
        var b = a.With("x", 3).With("z", 4.5);
        Assert.Equal(1, a.Get<int>("x"));
        Assert.Equal(3, b.Get<int>("x"));
        Assert.Equal(["x", "y", "z"], b.Keys);
        Assert.Equal(3, b.Count);
        Assert.False(a.ContainsKey("z"));
        Assert.Contains("is a Int32, not a String", Assert.Throws<InvalidCastException>(() => b.Get<string>("x")).Message);
        Assert.Contains("keys: x, y", Assert.Throws<KeyNotFoundException>(() => a.Get<int>("nope")).Message);
        Assert.Empty(Info.Empty);
    }
}
