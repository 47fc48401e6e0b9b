namespace Mis.Server.Tests;

/// <summary>The running test's cancellation token, short enough to pass to every call (imported statically in every file).</summary>
internal static class TestToken
{
    internal static CancellationToken Ct => TestContext.Current.CancellationToken;
}
