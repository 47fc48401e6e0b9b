using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using Mis.Enforcer.Policy;
using Mis.Server.Engine;
using Mis.Server.Observability;

namespace Mis.Server.Tests;

/// <summary>The parts that need no kernel: TTLs on an injected clock, audit rotation, policy merging.</summary>
public sealed class UnitTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-server-unit-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_runtime_rule_stops_matching_at_its_expiry_instant_and_the_timer_announces_it()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        using var rules = new RuntimeRules(clock);
        int changes = 0;
        rules.Changed += () => changes++;
        var access = new FileRequest(FileOp.Read, "/x", 7, 42);

        rules.Add(7, 42, 0, Verdict.Deny, TimeSpan.FromSeconds(2));
        rules.Add(7, 43, 0, Verdict.Deny, TimeSpan.Zero);
        Assert.Equal(Verdict.Deny, rules.Match(access)?.Action);
        clock.Advance(TimeSpan.FromMilliseconds(1999));
        Assert.NotNull(rules.Match(access));
        Assert.Equal(2, changes);
        clock.Advance(TimeSpan.FromMilliseconds(1));

        Assert.Null(rules.Match(access));
        Assert.Equal(3, changes); // pruned by the timer
        Assert.Single(rules.Active);
        Assert.NotNull(rules.Match(access with { Inode = 43 }));
    }

    [Theory]
    [InlineData("[grpc]\nenabled = true\n[policy]\nanomaly_model = \"m.model\"\n", 4, 17)]
    [InlineData("policy.anomaly_model = \"m.model\"\n", 1, 24)]
    [InlineData("policy = { anomaly_model = \"m.model\" }\n", 1, 28)]
    [InlineData("[grpc]\nenabled = true\n", 0, 0)] // not in the file (set in code): file and key only
    public void An_error_found_when_a_value_is_put_to_use_points_at_the_key_in_the_file(string text, int line, int column)
    {
        string path = Path.Combine(_dir, "config.toml");
        File.WriteAllText(path, text);

        var e = Mis.Enforcer.Configuration.ConfigBinder.ErrorAtKey(path, "policy.anomaly_model", "cannot load");

        Assert.Equal((line, column, "policy.anomaly_model"), (e.Line, e.Column, e.Key));
        Assert.Equal(line > 0 ? $"{path}:{line}:{column}: policy.anomaly_model: cannot load" : $"{path}: policy.anomaly_model: cannot load", e.Message);
    }

    [Fact]
    public void A_runtime_rule_naming_a_syscall_applies_to_that_syscall_only()
    {
        using var rules = new RuntimeRules(TimeProvider.System);
        rules.Add(7, 42, 257, Verdict.Deny, TimeSpan.Zero);
        Assert.NotNull(rules.Match(new FileRequest(FileOp.Read, "/x", 7, 42) { SyscallNr = 257 }));
        Assert.Null(rules.Match(new FileRequest(FileOp.Read, "/x", 7, 42) { SyscallNr = 2 }));
    }

    [Fact]
    public void The_audit_log_rotates_by_size_and_keeps_max_files()
    {
        string path = Path.Combine(_dir, "audit.jsonl");
        using (var log = new AuditLog(path, maxBytes: 600, maxFiles: 2))
        {
            for (int i = 0; i < 30; i++)
                log.Write(new AuditRecord(DateTimeOffset.UtcNow, "GetStats", "ipv4:127.0.0.1:1", $"{{\"n\":{i}}}", "OK", null, 0.1));
        }

        Assert.Equal(["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"], Directory.GetFiles(_dir).Select(Path.GetFileName).Order());
        Assert.All(Directory.GetFiles(_dir), f => Assert.InRange(new FileInfo(f).Length, 1, 600));
        var newest = File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal("{\"n\":29}", newest[^1].GetProperty("arguments").GetString());
        Assert.False(newest[^1].TryGetProperty("detail", out _)); // null fields are left out
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public void Policy_files_merge_in_order_with_the_builtin_rules_last_once()
    {
        string a = Path.Combine(_dir, "a.toml"), b = Path.Combine(_dir, "b.toml");
        File.WriteAllText(a, "[[file]]\npath = \"/srv/a\"\naction = \"deny\"\n[[network]]\naddress = \"10.0.0.0/8\"\naction = \"deny\"\n");
        File.WriteAllText(b, "[policy]\ndefault = \"deny\"\n[[file]]\npath = \"/srv/b\"\naction = \"allow\"\n[[rule]]\ninode = 5\ndev_id = 6\naction = 1\n");

        var merged = PolicySet.Load([a, b], 86400, TimeProvider.System);

        Assert.Equal(["/srv/a", "/srv/b"], merged.FileRules.Take(2).Select(r => r.Path.Pattern));
        Assert.Equal(BuiltinPolicy.FileRules.Length, merged.FileRules.Count - 2);
        Assert.Single(merged.NetRules);
        Assert.Single(merged.InodeRules);
        Assert.Equal(Verdict.Deny, merged.DefaultAction);
        Assert.Equal("a+b", merged.Name);
        Assert.Equal(BuiltinPolicy.Source, PolicySet.Load([], 86400, TimeProvider.System).Name);
    }

    [Fact]
    public void Relative_policy_files_are_relative_to_the_config_file()
    {
        Assert.Equal(["/etc/mis/p.toml", "/abs.toml"], PolicySet.Resolve(["p.toml", "/abs.toml"], "/etc/mis"));
    }

    [Fact]
    public void Metrics_text_escapes_label_values()
    {
        var rpc = new RpcMetrics();
        rpc.Observe("GetStats", "OK", TimeSpan.FromMilliseconds(0.2));
        string text = MetricsText.Render(new EngineStats { DefconByCgroup = [(9, "/bin/we\"ird\\cmd", new Mis.Enforcer.Kernel.CgroupState(9, 1, Mis.Enforcer.Defcon.DefconLevel.Normal, 0, 0, false, false, 0, 1))] }, rpc);
        var (_, samples) = ObservabilityTests.Parse(text);
        Assert.Equal(5, samples["mis_cgroup_defcon{cgroup_id=\"9\",command=\"we\\\"ird\\\\cmd\"}"]);
        Assert.Equal(1, samples["mis_rpc_duration_seconds_bucket{method=\"GetStats\",le=\"0.00025\"}"]);
        Assert.Equal(0, samples["mis_rpc_duration_seconds_bucket{method=\"GetStats\",le=\"0.0001\"}"]);
    }
}
