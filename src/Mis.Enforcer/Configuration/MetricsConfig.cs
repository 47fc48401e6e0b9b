namespace Mis.Enforcer.Configuration;

/// <summary>The <c>[metrics]</c> section of <c>config.toml</c>: the Prometheus metrics endpoint.</summary>
public sealed record MetricsConfig
{
    /// <summary><c>enabled</c>: whether metrics are served over HTTP. Default <c>false</c>.</summary>
    public bool Enabled { get; init; }

    /// <summary>
    /// <c>bind_address</c>: IP address the HTTP listener binds to. Must not be empty.
    /// Default <c>"127.0.0.1"</c>.
    /// </summary>
    public string BindAddress { get; init; } = "127.0.0.1";

    /// <summary><c>port</c>: HTTP port (1..65535). Default <c>9090</c>.</summary>
    public int Port { get; init; } = 9090;

    /// <summary><c>endpoint</c>: URL path of the metrics page; starts with '/'. Default <c>"/metrics"</c>.</summary>
    public string Endpoint { get; init; } = "/metrics";

    /// <summary>The URL the metrics are served at, e.g. <c>http://127.0.0.1:9090/metrics</c>.</summary>
    public string Url =>
        BindAddress.Contains(':', StringComparison.Ordinal) && !BindAddress.StartsWith('[')
            ? $"http://[{BindAddress}]:{Port}{Endpoint}"
            : $"http://{BindAddress}:{Port}{Endpoint}";
}
