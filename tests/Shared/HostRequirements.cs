namespace Mis.Testing;

/// <summary>
/// Gates for tests that need the real kernel. On a developer machine without root or BPF a test
/// skips with the reason printed; under <c>CI=true</c> the same gap fails the test instead, because
/// CI runs as root on a kernel that has everything and a skip there would hide a broken path.
/// </summary>
internal static class HostRequirements
{
    internal static bool InCi =>
        string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Skips (or, in CI, fails) unless the test runs as root.</summary>
    internal static void Root()
    {
        if (Environment.IsPrivilegedProcess)
            return;
        SkipOrFail("needs root (run the tests as root, e.g. `sudo ./mis test`)");
    }

    /// <summary>Skips (or, in CI, fails) unless <paramref name="condition"/> holds.</summary>
    internal static void That(bool condition, string reason)
    {
        if (!condition)
            SkipOrFail(reason);
    }

    private static void SkipOrFail(string reason)
    {
        if (InCi)
            Assert.Fail($"CI=true and this test cannot run: {reason}");
        Assert.Skip(reason);
    }
}
