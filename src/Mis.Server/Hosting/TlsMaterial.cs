using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Mis.Enforcer.Configuration;

namespace Mis.Server.Hosting;

/// <summary>
/// The server certificate and, for mutual TLS, the CA bundle client certificates must chain to,
/// loaded (and so validated) before anything else starts.
/// </summary>
public sealed class TlsMaterial : IDisposable
{
    private TlsMaterial(X509Certificate2 server, X509Certificate2Collection? clientCa)
    {
        Server = server;
        ClientCa = clientCa;
    }

    internal X509Certificate2 Server { get; }

    /// <summary>Non-null means mutual TLS.</summary>
    internal X509Certificate2Collection? ClientCa { get; }

    /// <summary>Loads what <c>[grpc]</c> names; null when TLS is off.</summary>
    /// <exception cref="EnforcerStartException">A file is missing or not PEM of the right kind (names the key).</exception>
    internal static TlsMaterial? Load(GrpcConfig grpc)
    {
        if (!grpc.TlsEnabled)
            return null;
        X509Certificate2 server;
        try
        {
            server = X509Certificate2.CreateFromPemFile(grpc.TlsCertPath, grpc.TlsKeyPath);
        }
        catch (Exception e) when (e is IOException or CryptographicException or ArgumentException or UnauthorizedAccessException)
        {
            throw new EnforcerStartException(
                $"grpc.tls_cert_path / grpc.tls_key_path: cannot load the certificate {grpc.TlsCertPath} with the key {grpc.TlsKeyPath}: {e.Message}", true, e);
        }
        if (!server.HasPrivateKey)
            throw new EnforcerStartException($"grpc.tls_key_path: {grpc.TlsKeyPath} holds no private key for {grpc.TlsCertPath}", true);
        if (!grpc.UsesMutualTls)
            return new TlsMaterial(server, null);

        var ca = new X509Certificate2Collection();
        try
        {
            ca.ImportFromPemFile(grpc.TlsClientCaPath);
        }
        catch (Exception e) when (e is IOException or CryptographicException or UnauthorizedAccessException)
        {
            server.Dispose();
            throw new EnforcerStartException($"grpc.tls_client_ca_path: cannot load {grpc.TlsClientCaPath}: {e.Message}", true, e);
        }
        if (ca.Count == 0)
        {
            server.Dispose();
            throw new EnforcerStartException($"grpc.tls_client_ca_path: {grpc.TlsClientCaPath} holds no PEM certificate", true);
        }
        return new TlsMaterial(server, ca);
    }

    /// <summary>Whether a client certificate chains to the configured CA (and only to it: the system store is not trusted here).</summary>
    internal bool IsTrustedClient(X509Certificate2 certificate)
    {
        if (ClientCa is null)
            return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(ClientCa);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid("1.3.6.1.5.5.7.3.2")); // clientAuth, when the certificate restricts its use
        return chain.Build(certificate);
    }

    /// <summary>The Kestrel client-certificate callback: accept exactly the chains <see cref="IsTrustedClient"/> accepts.</summary>
    internal bool Validate(X509Certificate2 certificate, X509Chain? chain, SslPolicyErrors errors) => IsTrustedClient(certificate);

    /// <inheritdoc />
    public void Dispose()
    {
        Server.Dispose();
        if (ClientCa is not null)
            foreach (var c in ClientCa)
                c.Dispose();
    }
}
