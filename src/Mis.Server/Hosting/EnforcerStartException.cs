namespace Mis.Server.Hosting;

/// <summary>
/// <c>mis enforcer</c> cannot start; the message says why and what to change. <see cref="IsConfiguration"/>
/// separates a wrong configuration (exit 2, nothing was set up) from a host problem (exit 1).
/// </summary>
public sealed class EnforcerStartException(string message, bool isConfiguration, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The configuration (or a file it names) is wrong, as opposed to the host refusing.</summary>
    public bool IsConfiguration { get; } = isConfiguration;
}
