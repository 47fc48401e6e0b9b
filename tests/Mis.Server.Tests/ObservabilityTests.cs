using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Grpc.Core;
using Grpc.Reflection.V1Alpha;
using Mis.Policy.V1;

namespace Mis.Server.Tests;

/// <summary>The metrics page (scraped and parsed), the audit log, server reflection, and the latency of a unary call.</summary>
public sealed partial class ObservabilityTests(EnforcerFixture fixture) : IClassFixture<EnforcerFixture>
{
    [Fact]
    public async Task Metrics_are_served_in_the_Prometheus_text_format_with_kernel_counters_gauges_and_histograms()
    {
        var mis = await fixture.GetAsync();
        var started = await mis.RunAsync("sleep", "30");
        await TestEnforcer.WaitAsleepAsync(started.Pid);
        await mis.Client.SetDefconAsync(new SetDefconRequest { CgroupId = started.CgroupId, Level = 3 }, cancellationToken: Ct);
        await mis.Client.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct);
        await Assert.ThrowsAsync<RpcException>(() => mis.Client.KillProcessAsync(new KillProcessRequest(), cancellationToken: Ct).ResponseAsync);

        using var http = new HttpClient();
        var response = await http.GetAsync(mis.Host.MetricsUrl, Ct);
        Assert.True(response.IsSuccessStatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType!.MediaType);
        Assert.Contains("version=0.0.4", response.Content.Headers.ContentType.ToString());
        var (types, samples) = Parse(await response.Content.ReadAsStringAsync(Ct));

        foreach (string counter in new[] { "mis_denied_total", "mis_allowed_total", "mis_defcon_escalations_total", "mis_ringbuf_drops_total", "mis_kernel_kill_signals_total", "mis_workloads_killed_total" })
        {
            Assert.Equal("counter", types[counter]);
            Assert.True(samples.ContainsKey(counter), counter);
        }
        Assert.Equal(3, samples[$"mis_cgroup_defcon{{cgroup_id=\"{started.CgroupId}\",command=\"sleep\"}}"]);
        Assert.Equal(6, samples[$"mis_cgroup_violations{{cgroup_id=\"{started.CgroupId}\",command=\"sleep\"}}"]);
        Assert.True(samples["mis_defcon_escalations_total"] >= 2);
        Assert.Equal("histogram", types["mis_rpc_duration_seconds"]);
        double count = samples["mis_rpc_duration_seconds_count{method=\"GetStats\"}"];
        Assert.True(count >= 1);
        Assert.Equal(count, samples["mis_rpc_duration_seconds_bucket{method=\"GetStats\",le=\"+Inf\"}"]);
        var buckets = samples.Where(kv => kv.Key.StartsWith("mis_rpc_duration_seconds_bucket{method=\"GetStats\"", StringComparison.Ordinal))
            .Select(kv => kv.Value).ToList();
        Assert.Equal(buckets.Order(), buckets); // cumulative
        Assert.True(samples["mis_rpc_requests_total{method=\"KillProcess\",code=\"INVALID_ARGUMENT\"}"] >= 1);

        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await http.GetAsync(mis.Host.MetricsUrl!.Replace("/metrics", "/other", StringComparison.Ordinal), Ct)).StatusCode);
        await mis.Client.KillProcessAsync(new KillProcessRequest { CgroupId = started.CgroupId }, cancellationToken: Ct);
    }

    [Fact]
    public async Task Every_RPC_is_audited_as_a_JSON_line_with_time_method_peer_arguments_and_status()
    {
        var mis = await fixture.GetAsync();
        await TestEnforcer.FailsAsync(StatusCode.NotFound, () => mis.Client.KillProcessAsync(new KillProcessRequest { CgroupId = 99999 }, cancellationToken: Ct).ResponseAsync);
        var started = await mis.Client.RunWorkloadAsync(new RunWorkloadRequest { Command = "true", Env = { "API_TOKEN=hunter2" } }, cancellationToken: Ct);
        await mis.WaitExitedAsync(started.CgroupId);

        string text = File.ReadAllText(mis.AuditPath);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var kill = lines.Last(l => l.GetProperty("method").GetString() == "KillProcess" && l.GetProperty("status").GetString() == "NOT_FOUND");
        Assert.Contains("99999", kill.GetProperty("arguments").GetString());
        Assert.StartsWith("ipv4:127.0.0.1:", kill.GetProperty("peer").GetString());
        Assert.Contains("not managed", kill.GetProperty("detail").GetString());
        Assert.True(DateTimeOffset.TryParse(kill.GetProperty("time").GetString(), CultureInfo.InvariantCulture, out _));
        Assert.True(kill.GetProperty("duration_ms").GetDouble() >= 0);
        var run = lines.Last(l => l.GetProperty("method").GetString() == "RunWorkload");
        Assert.Equal("OK", run.GetProperty("status").GetString());
        Assert.Contains("API_TOKEN=[redacted]", run.GetProperty("arguments").GetString());
        Assert.DoesNotContain("hunter2", text);
        Assert.Contains(lines, l => l.GetProperty("method").GetString() == "GetCgroup");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(mis.AuditPath));
    }

    [Fact]
    public async Task Server_reflection_lists_the_policy_service_and_serves_its_descriptor()
    {
        var mis = await fixture.GetAsync();
        var reflection = new ServerReflection.ServerReflectionClient(mis.Channel);
        using var call = reflection.ServerReflectionInfo(cancellationToken: Ct);

        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" }, Ct);
        Assert.True(await call.ResponseStream.MoveNext(Ct));
        Assert.Contains("mis.policy.v1.PolicyService", call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name));
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { FileContainingSymbol = "mis.policy.v1.PolicyService" }, Ct);
        Assert.True(await call.ResponseStream.MoveNext(Ct));
        var file = Google.Protobuf.Reflection.FileDescriptorProto.Parser.ParseFrom(call.ResponseStream.Current.FileDescriptorResponse.FileDescriptorProto[0]);
        Assert.Equal("mis/policy/v1/policy.proto", file.Name);
        Assert.Contains(file.Service.Single().Method, m => m.Name == "WatchEvents" && m.ServerStreaming);
        await call.RequestStream.CompleteAsync();
    }

    /// <summary>A minimal reader of the text format: TYPE lines, and samples keyed by name plus labels as written.</summary>
    internal static (Dictionary<string, string> Types, Dictionary<string, double> Samples) Parse(string text)
    {
        var types = new Dictionary<string, string>();
        var samples = new Dictionary<string, double>();
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ');
                types[parts[2]] = parts[3];
                continue;
            }
            if (line.StartsWith('#'))
                continue;
            var m = SampleLine().Match(line);
            Assert.True(m.Success, $"not a sample line: {line}");
            samples[m.Groups["key"].Value] = m.Groups["value"].Value == "+Inf" ? double.PositiveInfinity : double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture);
        }
        return (types, samples);
    }

    [GeneratedRegex("""^(?<key>[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})?) (?<value>\S+)$""")]
    private static partial Regex SampleLine();
}
