using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging.Abstractions;
using Mis.Enforcer.Configuration;
using Mis.Native;
using Mis.Policy.V1;
using Mis.Server.Engine;
using Mis.Server.Hosting;
using Mis.Testing;

namespace Mis.Server.Tests;

/// <summary>
/// An enforcer in this test process on free loopback ports (port 0: Kestrel picks), with its own
/// temporary state directory, audit log and policy file, and a gRPC client connected to it.
/// </summary>
internal sealed class TestEnforcer : IAsyncDisposable
{
    private TestEnforcer(string dir, EnforcerHost host, GrpcChannel channel)
    {
        Dir = dir;
        Host = host;
        Channel = channel;
        Client = new PolicyService.PolicyServiceClient(channel);
    }

    internal string Dir { get; }

    internal EnforcerHost Host { get; }

    internal GrpcChannel Channel { get; }

    internal PolicyService.PolicyServiceClient Client { get; }

    internal string AuditPath => Path.Combine(Dir, "audit.jsonl");

    internal string PolicyPath => Path.Combine(Dir, "policy.toml");

    /// <summary>The configuration the tests use unless they say otherwise.</summary>
    internal static MisConfig BaseConfig(string dir) => MisConfig.Default with
    {
        Grpc = new GrpcConfig { Enabled = true, BindAddress = "127.0.0.1", Port = 0, MaxMessageBytes = 64 * 1024 },
        Metrics = new MetricsConfig { Enabled = true, BindAddress = "127.0.0.1", Port = 0 },
        Paths = MisConfig.Default.Paths with { StateDir = Path.Combine(dir, "state"), PolicyFiles = [Path.Combine(dir, "policy.toml")] },
        Logging = MisConfig.Default.Logging with { AuditLogPath = Path.Combine(dir, "audit.jsonl") },
        Watchdog = MisConfig.Default.Watchdog with { KillGraceMs = 1500 },
        Policy = MisConfig.Default.Policy with { MaxRuleTtlSecs = 60 },
    };

    /// <summary>Needs root and the kernel backend (skips locally without them, fails under CI=true).</summary>
    /// <param name="configure">Changes to <see cref="BaseConfig"/>.</param>
    /// <param name="policy">Text of the policy file.</param>
    /// <param name="anomalyModelLoader">Loads <c>[policy] anomaly_model</c>, as the CLI's does.</param>
    /// <param name="services">Services to host besides PolicyService, as <c>mis enforcer</c> hosts the kernel episodes.</param>
    internal static async Task<TestEnforcer> StartAsync(Func<MisConfig, MisConfig>? configure = null, string policy = "",
        Func<string, Mis.Enforcer.Run.IOnlineScorer>? anomalyModelLoader = null, IReadOnlyList<HostedGrpcService>? services = null)
    {
        HostRequirements.Root();
        HostRequirements.That(File.Exists("/sys/kernel/btf/vmlinux"), "no kernel BTF");
        string dir = Directory.CreateTempSubdirectory("mis-server-test-").FullName;
        // Workloads run as nobody and read test files from here.
        File.SetUnixFileMode(dir, (UnixFileMode)0x1ED); // 0755
        File.WriteAllText(Path.Combine(dir, "policy.toml"), policy);
        var config = BaseConfig(dir);
        if (configure is not null)
            config = configure(config);
        EnforcerHost host;
        try
        {
            host = await EnforcerHost.StartAsync(new EngineOptions { Config = config, AnomalyModelLoader = anomalyModelLoader, Services = services ?? [] },
                NullLoggerFactory.Instance);
        }
        catch
        {
            Directory.Delete(dir, recursive: true);
            throw;
        }
        var channel = host.GrpcTcpAddress is { } address ? GrpcChannel.ForAddress(address) : GrpcChannel.ForAddress("http://unused");
        return new TestEnforcer(dir, host, channel);
    }

    /// <summary>Starts a workload and returns its cgroup id.</summary>
    internal async Task<RunWorkloadResponse> RunAsync(params string[] argv)
    {
        var request = new RunWorkloadRequest { Command = argv[0] };
        request.Args.AddRange(argv.Skip(1));
        return await Client.RunWorkloadAsync(request, cancellationToken: Ct);
    }

    /// <summary>Waits for the workload to end and returns its final state.</summary>
    internal async Task<CgroupInfo> WaitExitedAsync(ulong cgroupId, TimeSpan? limit = null)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var info = await Client.GetCgroupAsync(new GetCgroupRequest { CgroupId = cgroupId }, cancellationToken: Ct);
            if (info.State == WorkloadState.Exited)
                return info;
            Assert.True(watch.Elapsed < (limit ?? TimeSpan.FromSeconds(20)), $"cgroup {cgroupId} still running after {watch.Elapsed}");
            await Task.Delay(20, Ct);
        }
    }

    /// <summary>Waits until <paramref name="pid"/> runs <paramref name="comm"/> (e.g. after the launcher exec'd the command).</summary>
    internal static async Task WaitCommAsync(int pid, string comm)
    {
        var watch = Stopwatch.StartNew();
        while (ReadComm(pid) != comm)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"pid {pid} never became {comm}");
            await Task.Delay(10, Ct);
        }
    }

    /// <summary>
    /// Waits until <paramref name="pid"/> sleeps in <c>sleep</c>'s nanosleep. The name changes
    /// while exec is still under way (the dynamic loader has yet to map libc), so a test that
    /// raises DEFCON or kills right after <see cref="WaitCommAsync"/> could hit the loader instead.
    /// </summary>
    internal static async Task WaitAsleepAsync(int pid)
    {
        var watch = Stopwatch.StartNew();
        while (!(ReadComm(pid) == "sleep" && ReadProc(pid, "wchan").Contains("nanosleep", StringComparison.Ordinal)))
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"pid {pid} never slept in sleep's nanosleep");
            await Task.Delay(10, Ct);
        }
    }

    internal static string ReadComm(int pid) => ReadProc(pid, "comm").Trim();

    private static string ReadProc(int pid, string file)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/{file}");
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>The status of a call that must fail.</summary>
    internal static async Task<RpcException> FailsAsync(StatusCode expected, Func<Task> call)
    {
        var e = await Assert.ThrowsAsync<RpcException>(call);
        Assert.True(expected == e.StatusCode, $"expected {expected}, got {e.StatusCode}: {e.Status.Detail}");
        return e;
    }

    /// <summary>A world-readable file in the test directory, for rules to be about.</summary>
    internal string WorldReadableFile(string name, string text = "hello\n")
    {
        string path = Path.Combine(Dir, name);
        File.WriteAllText(path, text);
        File.SetUnixFileMode(path, (UnixFileMode)0x1A4); // 0644
        return path;
    }

    internal static string CgroupMount => CgroupV2.FindMount() ?? throw new InvalidOperationException("no cgroup v2");

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        await Host.DisposeAsync();
        Directory.Delete(Dir, recursive: true);
    }
}
