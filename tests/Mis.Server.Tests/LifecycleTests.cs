using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Mis.Enforcer.Configuration;
using Mis.Policy.V1;
using Mis.Server.Engine;
using Mis.Server.Hosting;
using Mis.Testing;

namespace Mis.Server.Tests;

/// <summary>Start and stop in this process: one enforcer per state directory, validation before anything is set up, a stop that leaves nothing behind.</summary>
public sealed class LifecycleTests
{
    [Fact]
    public async Task A_second_enforcer_on_the_same_state_directory_is_refused_with_a_clear_message()
    {
        await using var first = await TestEnforcer.StartAsync();
        var config = TestEnforcer.BaseConfig(first.Dir);

        var e = await Assert.ThrowsAsync<EnforcerStartException>(() =>
            EnforcerHost.StartAsync(new EngineOptions { Config = config }, NullLoggerFactory.Instance, Ct));

        Assert.False(e.IsConfiguration);
        Assert.Contains($"another mis enforcer (pid {Environment.ProcessId}) already runs with the state directory {config.Paths.StateDir}", e.Message);
        Assert.Equal(0UL, (await first.Client.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct)).CacheHits); // the first one is untouched
    }

    [Fact]
    public async Task A_broken_policy_file_stops_the_start_before_anything_is_set_up()
    {
        HostRequirements.Root();
        string dir = Directory.CreateTempSubdirectory("mis-server-test-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "policy.toml"), "[[network]]\naddress = \"not-an-address\"\naction = \"deny\"\n");
            var config = TestEnforcer.BaseConfig(dir);

            var e = await Assert.ThrowsAsync<EnforcerStartException>(() =>
                EnforcerHost.StartAsync(new EngineOptions { Config = config }, NullLoggerFactory.Instance, Ct));

            Assert.True(e.IsConfiguration);
            Assert.Contains("policy.toml:2:", e.Message);
            Assert.False(Directory.Exists(config.Paths.StateDir), "the state lock was never taken");
            Assert.False(Directory.Exists(Path.Combine(TestEnforcer.CgroupMount, "mis", $"enforcer-{Environment.ProcessId}")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Unreadable_TLS_material_is_a_configuration_error_naming_the_key()
    {
        HostRequirements.Root();
        string dir = Directory.CreateTempSubdirectory("mis-server-test-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "policy.toml"), "");
            var config = TestEnforcer.BaseConfig(dir) with
            {
                Grpc = new GrpcConfig { Enabled = true, Port = 0, TlsEnabled = true, TlsCertPath = Path.Combine(dir, "none.pem"), TlsKeyPath = Path.Combine(dir, "none.key") },
            };
            var e = await Assert.ThrowsAsync<EnforcerStartException>(() =>
                EnforcerHost.StartAsync(new EngineOptions { Config = config }, NullLoggerFactory.Instance, Ct));
            Assert.True(e.IsConfiguration);
            Assert.StartsWith("grpc.tls_cert_path", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Stopping_kills_the_workloads_removes_the_cgroups_and_releases_the_state_lock()
    {
        var mis = await TestEnforcer.StartAsync();
        var started = await mis.RunAsync("sleep", "61.803");
        await TestEnforcer.WaitAsleepAsync(started.Pid);
        string root = mis.Host.Engine.CgroupRoot;
        var config = TestEnforcer.BaseConfig(mis.Dir);

        var watch = Stopwatch.StartNew();
        await mis.Host.DisposeAsync();
        watch.Stop();

        Assert.False(Directory.Exists(root));
        Assert.NotEqual("sleep", TestEnforcer.ReadComm(started.Pid));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"stop took {watch.Elapsed}");
        var again = await EnforcerHost.StartAsync(new EngineOptions { Config = config }, NullLoggerFactory.Instance, Ct); // the lock was released
        await again.DisposeAsync();
        await mis.DisposeAsync();
    }
}
