using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Net.Client;
using Mis.Policy.V1;

namespace Mis.Server.Tests;

/// <summary>Who can reach the control plane: a 0600 Unix socket, TLS, and mutual TLS with certificates made here.</summary>
public sealed class TransportTests
{
    [Fact]
    public async Task The_Unix_socket_is_0600_from_the_start_answers_and_is_removed_at_shutdown()
    {
        string socketDir = Directory.CreateTempSubdirectory("mis-sock-").FullName;
        string socket = Path.Combine(socketDir, "mis.sock");
        // A stale socket left by a dead enforcer is cleared, not an error.
        using (var stale = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            stale.Bind(new UnixDomainSocketEndPoint(socket));
        try
        {
            var mis = await TestEnforcer.StartAsync(c => c with { Grpc = c.Grpc with { UnixSocketPath = socket } });
            await using (mis)
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));
                using var channel = GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
                {
                    HttpHandler = new SocketsHttpHandler
                    {
                        ConnectCallback = async (_, cancel) =>
                        {
                            var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                            await s.ConnectAsync(new UnixDomainSocketEndPoint(socket), cancel);
                            return new NetworkStream(s, ownsSocket: true);
                        },
                    },
                });
                var stats = await new PolicyService.PolicyServiceClient(channel).GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct);
                Assert.Equal(0UL, stats.CacheHits);
                Assert.Contains(File.ReadAllLines(mis.AuditPath), l => l.Contains("\"peer\":\"unix:", StringComparison.Ordinal));
            }
            Assert.False(File.Exists(socket));
        }
        finally
        {
            Directory.Delete(socketDir, recursive: true);
        }
    }

    [Fact]
    public async Task TLS_serves_with_the_configured_certificate_and_an_untrusting_client_is_refused()
    {
        using var pki = new TestPki();
        await using var mis = await TestEnforcer.StartAsync(c => c with
        {
            Grpc = c.Grpc with { TlsEnabled = true, TlsCertPath = pki.ServerCertPath, TlsKeyPath = pki.ServerKeyPath },
        });
        Assert.Equal("https", mis.Host.GrpcTcpAddress!.Scheme);

        using var trusting = pki.Channel(mis.Host.GrpcTcpAddress, clientCertificate: null);
        Assert.Equal(0UL, (await new PolicyService.PolicyServiceClient(trusting).GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct)).CacheHits);

        using var untrusting = GrpcChannel.ForAddress(mis.Host.GrpcTcpAddress);
        await Assert.ThrowsAsync<RpcException>(() => new PolicyService.PolicyServiceClient(untrusting).GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct).ResponseAsync);
        using var plaintext = GrpcChannel.ForAddress($"http://127.0.0.1:{mis.Host.GrpcTcpAddress.Port}");
        await Assert.ThrowsAsync<RpcException>(() => new PolicyService.PolicyServiceClient(plaintext).GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct).ResponseAsync);
    }

    [Fact]
    public async Task Mutual_TLS_admits_only_clients_with_a_certificate_from_the_configured_CA()
    {
        using var pki = new TestPki();
        using var stranger = new TestPki();
        await using var mis = await TestEnforcer.StartAsync(c => c with
        {
            Grpc = c.Grpc with { TlsEnabled = true, TlsCertPath = pki.ServerCertPath, TlsKeyPath = pki.ServerKeyPath, TlsClientCaPath = pki.CaCertPath },
        });
        var address = mis.Host.GrpcTcpAddress!;

        using var admitted = pki.Channel(address, pki.ClientCertificate);
        Assert.Equal(0UL, (await new PolicyService.PolicyServiceClient(admitted).GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct)).CacheHits);
        Assert.Contains(File.ReadAllLines(mis.AuditPath), l => l.Contains("CN=mis-test-client", StringComparison.Ordinal));

        using var anonymous = pki.Channel(address, clientCertificate: null);
        await Assert.ThrowsAsync<RpcException>(() => new PolicyService.PolicyServiceClient(anonymous).GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct).ResponseAsync);
        using var foreign = pki.Channel(address, stranger.ClientCertificate);
        await Assert.ThrowsAsync<RpcException>(() => new PolicyService.PolicyServiceClient(foreign).GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct).ResponseAsync);
    }

    /// <summary>A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made with CertificateRequest and written as PEM.</summary>
    private sealed class TestPki : IDisposable
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("mis-pki-").FullName;
        private readonly X509Certificate2 _ca;

        internal TestPki()
        {
            using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var caRequest = new CertificateRequest("CN=mis-test-ca", caKey, HashAlgorithmName.SHA256);
            caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
            _ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));

            var san = new SubjectAlternativeNameBuilder();
            san.AddIpAddress(IPAddress.Loopback);
            san.AddDnsName("localhost");
            using var server = Issue("CN=mis-test-server", "1.3.6.1.5.5.7.3.1", san.Build());
            File.WriteAllText(ServerCertPath, server.ExportCertificatePem());
            File.WriteAllText(ServerKeyPath, server.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
            File.WriteAllText(CaCertPath, _ca.ExportCertificatePem());
            ClientCertificate = Issue("CN=mis-test-client", "1.3.6.1.5.5.7.3.2", null);
        }

        internal string ServerCertPath => Path.Combine(_dir, "server.pem");

        internal string ServerKeyPath => Path.Combine(_dir, "server.key");

        internal string CaCertPath => Path.Combine(_dir, "ca.pem");

        internal X509Certificate2 ClientCertificate { get; }

        /// <summary>A channel that trusts this CA only, presenting <paramref name="clientCertificate"/> when given.</summary>
        internal GrpcChannel Channel(Uri address, X509Certificate2? clientCertificate)
        {
            var ssl = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    using var chain = new X509Chain();
                    chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                    chain.ChainPolicy.CustomTrustStore.Add(_ca);
                    chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                    return certificate is X509Certificate2 c && chain.Build(c);
                },
            };
            if (clientCertificate is not null)
            {
                ssl.ClientCertificates = [clientCertificate];
                ssl.LocalCertificateSelectionCallback = (_, _, _, _, _) => clientCertificate; // whatever CA names the server lists
            }
            return GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = new SocketsHttpHandler { SslOptions = ssl } });
        }

        public void Dispose()
        {
            ClientCertificate.Dispose();
            _ca.Dispose();
            Directory.Delete(_dir, recursive: true);
        }

        private X509Certificate2 Issue(string subject, string usage, X509Extension? san)
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(usage)], false));
            if (san is not null)
                request.CertificateExtensions.Add(san);
            byte[] serial = RandomNumberGenerator.GetBytes(8);
            using var issued = request.Create(_ca, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(12), serial);
            return issued.CopyWithPrivateKey(key);
        }
    }
}
