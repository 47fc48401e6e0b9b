using Mis.Testing;

namespace Mis.Server.Tests;

/// <summary>
/// One enforcer shared by the tests of a class (starting one loads the BPF object and binds two
/// listeners). Started on first use, so a test still skips (or, in CI, fails) by itself when the
/// host lacks root.
/// </summary>
public sealed class EnforcerFixture : IAsyncDisposable
{
    private readonly Lock _gate = new();
    private Task<TestEnforcer>? _enforcer;

    internal Task<TestEnforcer> GetAsync()
    {
        HostRequirements.Root();
        lock (_gate)
            return _enforcer ??= TestEnforcer.StartAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (_enforcer is { IsCompletedSuccessfully: true })
            await (await _enforcer).DisposeAsync();
    }
}
