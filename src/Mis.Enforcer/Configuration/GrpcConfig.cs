namespace Mis.Enforcer.Configuration;

/// <summary>The <c>[grpc]</c> section of <c>config.toml</c>: the enforcer's gRPC control API.</summary>
public sealed record GrpcConfig
{
    /// <summary><c>enabled</c>: whether the gRPC server runs. Default <c>false</c>.</summary>
    public bool Enabled { get; init; }

    /// <summary>
    /// <c>bind_address</c>: IP address the TCP listener binds to. Must not be empty.
    /// Default <c>"127.0.0.1"</c>.
    /// </summary>
    public string BindAddress { get; init; } = "127.0.0.1";

    /// <summary><c>port</c>: TCP port (1..65535). Default <c>50051</c>.</summary>
    public int Port { get; init; } = 50051;

    /// <summary>
    /// <c>unix_socket_path</c>: also listen on this Unix domain socket; empty means TCP only.
    /// Default <c>""</c>.
    /// </summary>
    public string UnixSocketPath { get; init; } = "";

    /// <summary>
    /// <c>unix_socket_mode</c>: who may connect to the Unix socket: <c>"0600"</c> root alone,
    /// <c>"0660"</c> root and <see cref="UnixSocketGroup"/>, <c>"0666"</c> every local user (what
    /// each caller may then do is <c>[access]</c>'s to say). Default <c>"0600"</c>.
    /// </summary>
    public string UnixSocketMode { get; init; } = "0600";

    /// <summary>
    /// <c>unix_socket_group</c>: the group owning the Unix socket; required by, and only meaningful
    /// with, <c>unix_socket_mode = "0660"</c>. Default <c>""</c>.
    /// </summary>
    public string UnixSocketGroup { get; init; } = "";

    /// <summary>
    /// <c>tls_enabled</c>: serve TLS on the TCP listener; requires <see cref="TlsCertPath"/> and
    /// <see cref="TlsKeyPath"/>. Default <c>false</c>.
    /// </summary>
    public bool TlsEnabled { get; init; }

    /// <summary><c>tls_cert_path</c>: PEM server certificate (chain). Default <c>""</c>.</summary>
    public string TlsCertPath { get; init; } = "";

    /// <summary><c>tls_key_path</c>: PEM private key of the server certificate. Default <c>""</c>.</summary>
    public string TlsKeyPath { get; init; } = "";

    /// <summary>
    /// <c>tls_client_ca_path</c>: PEM CA bundle that client certificates must chain to; non-empty
    /// means mutual TLS (and requires <see cref="TlsEnabled"/>). Default <c>""</c>.
    /// </summary>
    public string TlsClientCaPath { get; init; } = "";

    /// <summary>
    /// <c>max_message_bytes</c>: largest gRPC message accepted or sent, in bytes (at least 1024).
    /// Default <c>4194304</c> (4 MiB).
    /// </summary>
    public int MaxMessageBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>True when <see cref="UnixSocketPath"/> is set.</summary>
    public bool UsesUnixSocket => UnixSocketPath.Length > 0;

    /// <summary>The socket's permission bits, from <see cref="UnixSocketMode"/>.</summary>
    public UnixFileMode UnixSocketFileMode => (UnixFileMode)Convert.ToInt32(UnixSocketMode, 8);

    /// <summary>True when users other than root may connect to the Unix socket (<see cref="UnixSocketMode"/> is not "0600").</summary>
    public bool UnixSocketOpenToUsers => UsesUnixSocket && UnixSocketMode != "0600";

    /// <summary>True when TLS is on and client certificates are required (<see cref="TlsClientCaPath"/> set).</summary>
    public bool UsesMutualTls => TlsEnabled && TlsClientCaPath.Length > 0;
}
