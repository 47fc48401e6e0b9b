using System.Reflection;
using System.Text;
using Mis.Enforcer.Configuration;
using Tomlyn.Parsing;
using Tomlyn.Syntax;

namespace Mis.Enforcer.Tests;

public sealed class ConfigTests
{
    private const string File = "config.toml";

    // ---- defaults and the documented file --------------------------------------------------

    [Theory]
    [InlineData("")]
    [InlineData("\n\n")]
    [InlineData("# only a comment\n   \n")]
    [InlineData("[grpc]\n[metrics]\n")]
    public void TextWithoutSettingsGivesTheDefaults(string text)
    {
        var config = MisConfig.Parse(text, File);
        Assert.Equal(MisConfig.Default, config);
        Assert.Equal(50051, config.Grpc.Port);
        Assert.Equal([3L, 6L, 10L, 15L], config.Defcon.Thresholds);
    }

    [Fact]
    public void DefaultsAreTheDocumentedValues()
    {
        var d = MisConfig.Default;
        Assert.Equal("/var/lib/mis", d.Paths.StateDir);
        Assert.Equal("", d.Paths.CgroupRoot);
        Assert.Equal("/sys/fs/bpf/mis", d.Paths.BpfPinDir);
        Assert.Equal("runs", d.Paths.RunsDir);
        Assert.Empty(d.Paths.PolicyFiles);
        Assert.Equal("allow", d.Policy.DefaultAction);
        Assert.False(d.Policy.LearningMode);
        Assert.True(d.Policy.KillOnAnomaly);
        Assert.Equal(800, d.Policy.AnomalyThreshold);
        Assert.Equal(86400, d.Policy.MaxRuleTtlSecs);
        Assert.Equal(65536, d.Policy.DecisionCacheSize);
        Assert.True(d.Watchdog.Enabled);
        Assert.Equal(1000, d.Watchdog.IntervalMs);
        Assert.Equal(2000, d.Watchdog.KillGraceMs);
        Assert.True(d.Watchdog.KillOnEnforcerExit);
        Assert.Equal("info", d.Logging.Level);
        Assert.Equal("text", d.Logging.Format);
        Assert.Equal("", d.Logging.EventsPath);
        Assert.Equal("", d.Logging.AuditLogPath);
        Assert.Equal(100, d.Logging.MaxFileSizeMb);
        Assert.Equal(5, d.Logging.MaxFiles);
        Assert.False(d.Grpc.Enabled);
        Assert.Equal("127.0.0.1", d.Grpc.BindAddress);
        Assert.Equal(50051, d.Grpc.Port);
        Assert.Equal("", d.Grpc.UnixSocketPath);
        Assert.False(d.Grpc.TlsEnabled);
        Assert.Equal("", d.Grpc.TlsCertPath);
        Assert.Equal("", d.Grpc.TlsKeyPath);
        Assert.Equal("", d.Grpc.TlsClientCaPath);
        Assert.Equal(4194304, d.Grpc.MaxMessageBytes);
        Assert.False(d.Metrics.Enabled);
        Assert.Equal("127.0.0.1", d.Metrics.BindAddress);
        Assert.Equal(9090, d.Metrics.Port);
        Assert.Equal("/metrics", d.Metrics.Endpoint);
        Assert.Equal([3L, 6L, 10L, 15L], d.Defcon.Thresholds);
        Assert.Equal([100, 1000, 10000], d.Defcon.SlowdownUs);
        Assert.Equal(0, d.Defcon.DecayIntervalMs);
        Assert.Equal(1, d.Defcon.DecayAmount);
        Assert.True(d.Defcon.KillAtLevel1);
    }

    [Fact]
    public void DocumentedConfigFileLoadsToExactlyTheDefaults()
    {
        Assert.Equal(MisConfig.Default, MisConfig.Load(DocumentedConfigPath()));
    }

    [Fact]
    public void DocumentedConfigFileListsEveryPropertyAndNothingElse()
    {
        var expected = SettableKeys().Select(k => k.Dotted).ToHashSet();
        var documented = DocumentedKeys().Select(k => k.Dotted).ToList();

        Assert.Equal(documented.Count, documented.Distinct().Count());
        Assert.Empty(expected.Except(documented));
        Assert.Empty(documented.Except(expected));
    }

    [Fact]
    public void EveryDocumentedKeyHasACommentOnTheLineAbove()
    {
        var lines = System.IO.File.ReadAllLines(DocumentedConfigPath());
        foreach (var (dotted, line) in DocumentedKeys())
        {
            Assert.True(line >= 1 && lines[line - 1].TrimStart().StartsWith('#'),
                $"{dotted} (line {line + 1}) has no comment line above it");
        }
    }

    [Fact]
    public void SchemaBindsExactlyTheSettableProperties()
    {
        var schema = ConfigSchema.Sections.SelectMany(s => s.Keys.Select(k => $"{s.Name}.{k.Name}")).ToList();
        var properties = SettableKeys().Select(k => k.Dotted).ToList();
        Assert.Equal(properties.Order(), schema.Order());
    }

    // ---- overriding ------------------------------------------------------------------------

    [Fact]
    public void PartialFileOverridesOnlyWhatItSays()
    {
        var config = MisConfig.Parse("""
            [grpc]
            port = 6000

            [defcon]
            thresholds = [1, 2, 3, 4]
            """, File);

        var expected = MisConfig.Default with
        {
            Grpc = MisConfig.Default.Grpc with { Port = 6000 },
            Defcon = MisConfig.Default.Defcon with { Thresholds = [1, 2, 3, 4] },
        };
        Assert.Equal(expected, config);
        Assert.NotEqual(MisConfig.Default, config);
    }

    [Fact]
    public void EveryKeyCanBeSet()
    {
        var config = MisConfig.Parse("""
            [paths]
            state_dir = "/srv/mis/state"
            cgroup_root = "/sys/fs/cgroup/custom"
            bpf_pin_dir = "/sys/fs/bpf/custom"
            runs_dir = "/tmp/runs"
            policy_files = ["a.toml", "b.toml"]

            [policy]
            default_action = "deny"
            learning_mode = true
            kill_on_anomaly = false
            anomaly_threshold = 650
            anomaly_model = "/var/lib/mis/ngram.model"
            anomaly_monitor_by_default = false
            max_rule_ttl_secs = 3600
            decision_cache_size = 0

            [watchdog]
            enabled = false
            interval_ms = 250
            kill_grace_ms = 0
            kill_on_enforcer_exit = false

            [logging]
            level = "debug"
            format = "json"
            events_path = "/var/log/mis/events.jsonl"
            audit_log_path = "/var/log/mis/audit.log"
            max_file_size_mb = 10
            max_files = 2

            [grpc]
            enabled = true
            bind_address = "0.0.0.0"
            port = 7000
            unix_socket_path = "/run/mis.sock"
            unix_socket_mode = "0660"
            unix_socket_group = "mis"
            tls_enabled = true
            tls_cert_path = "cert.pem"
            tls_key_path = "key.pem"
            tls_client_ca_path = "ca.pem"
            max_message_bytes = 1024

            [access]
            admin_group = "mis-admin"
            user_policy_files = ["user.toml"]
            tcp_callers = "refused"

            [metrics]
            enabled = true
            bind_address = "::1"
            port = 9100
            endpoint = "/m"

            [defcon]
            thresholds = [1, 5, 50, 500]
            slowdown_us = [0, 10, 1_000_000]
            decay_interval_ms = 60000
            decay_amount = 3
            kill_at_level_1 = false
            net_lockdown_level = 2
            """, File);

        var expected = new MisConfig
        {
            Paths = new PathsConfig
            {
                StateDir = "/srv/mis/state",
                CgroupRoot = "/sys/fs/cgroup/custom",
                BpfPinDir = "/sys/fs/bpf/custom",
                RunsDir = "/tmp/runs",
                PolicyFiles = ["a.toml", "b.toml"],
            },
            Policy = new PolicyConfig
            {
                DefaultAction = "deny",
                LearningMode = true,
                KillOnAnomaly = false,
                AnomalyThreshold = 650,
                AnomalyModel = "/var/lib/mis/ngram.model",
                AnomalyMonitorByDefault = false,
                MaxRuleTtlSecs = 3600,
                DecisionCacheSize = 0,
            },
            Watchdog = new WatchdogConfig { Enabled = false, IntervalMs = 250, KillGraceMs = 0, KillOnEnforcerExit = false },
            Logging = new LoggingConfig
            {
                Level = "debug",
                Format = "json",
                EventsPath = "/var/log/mis/events.jsonl",
                AuditLogPath = "/var/log/mis/audit.log",
                MaxFileSizeMb = 10,
                MaxFiles = 2,
            },
            Grpc = new GrpcConfig
            {
                Enabled = true,
                BindAddress = "0.0.0.0",
                Port = 7000,
                UnixSocketPath = "/run/mis.sock",
                UnixSocketMode = "0660",
                UnixSocketGroup = "mis",
                TlsEnabled = true,
                TlsCertPath = "cert.pem",
                TlsKeyPath = "key.pem",
                TlsClientCaPath = "ca.pem",
                MaxMessageBytes = 1024,
            },
            Access = new AccessConfig { AdminGroup = "mis-admin", UserPolicyFiles = ["user.toml"], TcpCallers = "refused" },
            Metrics = new MetricsConfig { Enabled = true, BindAddress = "::1", Port = 9100, Endpoint = "/m" },
            Defcon = new DefconConfig
            {
                Thresholds = [1, 5, 50, 500],
                SlowdownUs = [0, 10, 1_000_000],
                DecayIntervalMs = 60000,
                DecayAmount = 3,
                KillAtLevel1 = false,
                NetLockdownLevel = 2,
            },
        };
        Assert.Equal(expected, config);

        // Every settable property differs from its default, so no key is silently ignored.
        foreach (var (section, property, dotted) in SettableKeys())
        {
            var actual = property.GetValue(section.GetValue(config));
            var fallback = property.GetValue(section.GetValue(MisConfig.Default));
            Assert.False(ValuesEqual(actual, fallback), $"{dotted} kept its default");
        }

        Assert.True(config.Policy.DefaultDeny);
        Assert.True(config.Grpc.UsesMutualTls);
        Assert.True(config.Grpc.UsesUnixSocket);
        Assert.Equal("http://[::1]:9100/m", config.Metrics.Url);
        Assert.Equal(TimeSpan.FromMilliseconds(250), config.Watchdog.Interval);
        Assert.Equal(10L * 1024 * 1024, config.Logging.MaxFileSizeBytes);
        Assert.True(config.Defcon.DecayIntervalMs > 0);
        Assert.Equal("/sys/fs/cgroup/custom", config.Paths.ResolveCgroupRoot("/sys/fs/cgroup"));
        Assert.Equal("/sys/fs/cgroup/mis", MisConfig.Default.Paths.ResolveCgroupRoot("/sys/fs/cgroup"));
    }

    [Fact]
    public void DottedKeysQuotedKeysAndInlineTablesAreAccepted()
    {
        var config = MisConfig.Parse("""
            grpc.port = 6001
            metrics = { enabled = true, port = 9191 }
            "logging"."level" = "warning"

            [defcon]
            "slowdown_us" = [0, 0, 0]
            """, File);

        var expected = MisConfig.Default with
        {
            Grpc = MisConfig.Default.Grpc with { Port = 6001 },
            Metrics = MisConfig.Default.Metrics with { Enabled = true, Port = 9191 },
            Logging = MisConfig.Default.Logging with { Level = "warning" },
            Defcon = MisConfig.Default.Defcon with { SlowdownUs = [0, 0, 0] },
        };
        Assert.Equal(expected, config);
    }

    [Fact]
    public void TomlIntegerSyntaxesAreAccepted()
    {
        var config = MisConfig.Parse("[grpc]\nport = 0xC350\nmax_message_bytes = 1_048_576\n", File);
        Assert.Equal(50000, config.Grpc.Port);
        Assert.Equal(1_048_576, config.Grpc.MaxMessageBytes);
    }

    // ---- equality ----------------------------------------------------------------------------

    [Fact]
    public void EveryPropertyTakesPartInEquality()
    {
        foreach (var (section, property, dotted) in SettableKeys())
        {
            var original = section.GetValue(MisConfig.Default)!;
            var changed = CloneRecord(original);
            property.SetValue(changed, OtherValue(property.GetValue(original)));

            Assert.NotEqual(original, changed);
            var config = CloneRecord(MisConfig.Default);
            section.SetValue(config, changed);
            Assert.False(MisConfig.Default.Equals(config), $"changing {dotted} left the configuration equal");
        }
    }

    [Fact]
    public void ListsCompareByContents()
    {
        var a = new DefconConfig { Thresholds = new List<long> { 1, 2, 3, 4 }, SlowdownUs = new[] { 1, 2, 3 } };
        var b = new DefconConfig { Thresholds = new long[] { 1, 2, 3, 4 }, SlowdownUs = new List<int> { 1, 2, 3 } };
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, b with { SlowdownUs = [1, 2, 4] });

        var p = new PathsConfig { PolicyFiles = new List<string> { "x.toml" } };
        var q = new PathsConfig { PolicyFiles = new[] { "x.toml" } };
        Assert.Equal(p, q);
        Assert.Equal(p.GetHashCode(), q.GetHashCode());
        Assert.NotEqual(p, q with { PolicyFiles = ["y.toml"] });
    }

    [Fact]
    public void ToStringShowsEverySettingAndListContents()
    {
        var text = MisConfig.Default.ToString();
        foreach (var (_, property, dotted) in SettableKeys())
        {
            Assert.True(text.Contains($"{property.Name} = ", StringComparison.Ordinal), $"{dotted} missing from ToString()");
        }
        Assert.Contains("Thresholds = [3, 6, 10, 15]", text, StringComparison.Ordinal);
        Assert.Contains("SlowdownUs = [100, 1000, 10000]", text, StringComparison.Ordinal);
        Assert.Contains("PolicyFiles = []", text, StringComparison.Ordinal);
        Assert.Contains("UserPolicyFiles = []", text, StringComparison.Ordinal);
    }

    // ---- errors ------------------------------------------------------------------------------

    [Fact]
    public void ErrorMessageHasFileLineColumnAndKey()
    {
        var e = Assert.Throws<ConfigException>(() => MisConfig.Parse("[grpc]\nport = \"abc\"\n", File));
        Assert.Equal("config.toml:2:8: grpc.port: expected an integer, found a string (\"abc\")", e.Message);
        Assert.Equal(File, e.File);
        Assert.Equal(2, e.Line);
        Assert.Equal(8, e.Column);
        Assert.Equal("grpc.port", e.Key);
        Assert.Equal("expected an integer, found a string (\"abc\")", e.Detail);
    }

    [Fact]
    public void ErrorLineIsRightDeepInTheDocumentedFile()
    {
        var lines = System.IO.File.ReadAllLines(DocumentedConfigPath());
        var index = Array.FindIndex(lines, l => l.StartsWith("port = 50051", StringComparison.Ordinal));
        Assert.True(index > 10);
        lines[index] = "port = \"abc\"";

        var e = Assert.Throws<ConfigException>(() => MisConfig.Parse(string.Join("\n", lines), "mis.toml"));
        Assert.Equal($"mis.toml:{index + 1}:8: grpc.port: expected an integer, found a string (\"abc\")", e.Message);
        Assert.Equal(index + 1, e.Line);
    }

    [Fact]
    public void ErrorLineIsRightWithCrLfLineEndings()
    {
        var e = Assert.Throws<ConfigException>(() =>
            MisConfig.Parse("# c\r\n\r\n[watchdog]\r\nenabled = true\r\ninterval_ms = 5\r\n", File));
        Assert.Equal((5, 15, "watchdog.interval_ms"), (e.Line, e.Column, e.Key));
    }

    [Theory]
    // TOML syntax errors, reported from Tomlyn's diagnostics.
    [InlineData("[grpc]\nport = \n", 2, 8, "grpc.port", "syntax error: ")]
    [InlineData("[paths]\nstate_dir = \"/var/lib\n", 2, 22, "paths.state_dir", "syntax error: ")]
    [InlineData("[grpc]\nport = 1\nport = 2\n", 3, 1, "grpc.port", "syntax error: The key `grpc.port` is already defined")]
    [InlineData("[policy]\nlearning_mode = true\n[policy]\n", 3, 1, "policy", "syntax error: The key `policy` is already defined")]
    [InlineData("[grpc]\nport = 9223372036854775808\n", 2, 8, "grpc.port", "syntax error: ")]
    [InlineData("[grpc\nport = 1\n", 1, 6, "grpc", "syntax error: ")]
    // Unknown sections and keys.
    [InlineData("[grcp]\nport = 1\n", 1, 2, "grcp", "unknown section [grcp]; did you mean [grpc]?")]
    [InlineData("[policy]\nlearning_mode = true\n\n[zzzzzz]\n", 4, 2, "zzzzzz", "unknown section [zzzzzz]; known sections: [paths], [policy], [watchdog], [logging], [grpc], [access], [metrics], [defcon]")]
    [InlineData("[grpc]\nprot = 1\n", 2, 1, "grpc.prot", "unknown key; did you mean 'port'?")]
    [InlineData("[grpc]\nenabled = true\nbindAddress = \"::\"\n", 3, 1, "grpc.bindAddress", "unknown key; did you mean 'bind_address'?")]
    [InlineData("[grpc]\nendpoint = \"/x\"\n", 2, 1, "grpc.endpoint", "unknown key in [grpc]; 'endpoint' belongs in [metrics]")]
    [InlineData("[watchdog]\nfrobnicate = 1\n", 2, 1, "watchdog.frobnicate", "unknown key in [watchdog]; known keys: enabled, interval_ms, kill_grace_ms, kill_on_enforcer_exit")]
    [InlineData("grpc.prot = 1\n", 1, 6, "grpc.prot", "unknown key; did you mean 'port'?")]
    [InlineData("metrics = { enabld = true }\n", 1, 13, "metrics.enabld", "unknown key; did you mean 'enabled'?")]
    [InlineData("port = 1\n", 1, 1, "port", "settings must be inside a section; 'port' belongs in [grpc] or [metrics]")]
    [InlineData("verbose = true\n", 1, 1, "verbose", "unknown top-level key; settings must be inside a section: ")]
    [InlineData("grpc = 1\n", 1, 8, "grpc", "expected a table (the [grpc] section), found an integer (1)")]
    [InlineData("[grpc.port]\n", 1, 7, "grpc.port", "is a setting, not a table; write 'port = ...' under [grpc]")]
    [InlineData("[grpc]\nport.number = 1\n", 2, 1, "grpc.port", "is a setting, not a table")]
    [InlineData("[[grpc]]\nport = 1\n", 1, 3, "grpc", "arrays of tables ([[grpc]]) are not used here; write [grpc]")]
    // Wrong types.
    [InlineData("[policy]\nanomaly_threshold = 0.5\n", 2, 21, "policy.anomaly_threshold", "expected an integer, found a float (0.5)")]
    [InlineData("[policy]\nanomaly_threshold = 8e2\n", 2, 21, "policy.anomaly_threshold", "expected an integer, found a float (8e2)")]
    [InlineData("[paths]\nstate_dir = 5\n", 2, 13, "paths.state_dir", "expected a string, found an integer (5)")]
    [InlineData("[watchdog]\nenabled = \"yes\"\n", 2, 11, "watchdog.enabled", "expected a boolean (true or false), found a string (\"yes\")")]
    [InlineData("[watchdog]\nenabled = 1\n", 2, 11, "watchdog.enabled", "expected a boolean (true or false), found an integer (1)")]
    [InlineData("[logging]\nlevel = [\"info\"]\n", 2, 9, "logging.level", "expected a string, found an array")]
    [InlineData("[grpc]\nport = { value = 1 }\n", 2, 8, "grpc.port", "expected an integer, found an inline table")]
    [InlineData("[logging]\nevents_path = 1979-05-27\n", 2, 15, "logging.events_path", "expected a string, found a date-time (1979-05-27)")]
    // Out-of-range values.
    [InlineData("[grpc]\nport = 0\n", 2, 8, "grpc.port", "0 is out of range; expected an integer from 1 to 65535")]
    [InlineData("[metrics]\nport = 65536\n", 2, 8, "metrics.port", "65536 is out of range; expected an integer from 1 to 65535")]
    [InlineData("[policy]\nanomaly_threshold = 1001\n", 2, 21, "policy.anomaly_threshold", "1001 is out of range; expected an integer from 0 to 1000")]
    [InlineData("[policy]\nanomaly_threshold = -1\n", 2, 21, "policy.anomaly_threshold", "-1 is out of range; expected an integer from 0 to 1000")]
    [InlineData("[policy]\nmax_rule_ttl_secs = 0\n", 2, 21, "policy.max_rule_ttl_secs", "0 is out of range; expected an integer >= 1")]
    [InlineData("[policy]\ndecision_cache_size = -5\n", 2, 23, "policy.decision_cache_size", "-5 is out of range; expected an integer from 0 to 2147483647")]
    [InlineData("[watchdog]\ninterval_ms = 9\n", 2, 15, "watchdog.interval_ms", "9 is out of range; expected an integer from 10 to 2147483647")]
    [InlineData("[watchdog]\nkill_grace_ms = -1\n", 2, 17, "watchdog.kill_grace_ms", "-1 is out of range")]
    [InlineData("[logging]\nmax_files = 3000000000\n", 2, 13, "logging.max_files", "3000000000 is out of range; expected an integer from 1 to 2147483647")]
    [InlineData("[logging]\nmax_file_size_mb = 0\n", 2, 20, "logging.max_file_size_mb", "0 is out of range")]
    [InlineData("[grpc]\nmax_message_bytes = 1023\n", 2, 21, "grpc.max_message_bytes", "1023 is out of range; expected an integer from 1024 to 2147483647")]
    [InlineData("[defcon]\ndecay_amount = 0\n", 2, 16, "defcon.decay_amount", "0 is out of range")]
    [InlineData("[defcon]\ndecay_interval_ms = -1\n", 2, 21, "defcon.decay_interval_ms", "-1 is out of range")]
    [InlineData("[paths]\nstate_dir = \"\"\n", 2, 13, "paths.state_dir", "must not be empty")]
    [InlineData("[metrics]\nendpoint = \"metrics\"\n", 2, 12, "metrics.endpoint", "must start with '/', found \"metrics\"")]
    // Invalid enum strings.
    [InlineData("[policy]\ndefault_action = \"block\"\n", 2, 18, "policy.default_action", "invalid value \"block\"; expected one of: allow, deny")]
    [InlineData("[logging]\nlevel = \"verbose\"\n", 2, 9, "logging.level", "invalid value \"verbose\"; expected one of: trace, debug, info, warning, error, critical, none")]
    [InlineData("[logging]\nformat = \"JSON\"\n", 2, 10, "logging.format", "invalid value \"JSON\"; expected one of: text, json")]
    // Arrays of the wrong length or element type.
    [InlineData("[defcon]\nthresholds = [1, 2, 3]\n", 2, 14, "defcon.thresholds", "expected exactly 4 integers, found 3")]
    [InlineData("[defcon]\nthresholds = 5\n", 2, 14, "defcon.thresholds", "expected an array of 4 integers, found an integer (5)")]
    [InlineData("[defcon]\nthresholds = [1, 2, \"3\", 4]\n", 2, 21, "defcon.thresholds", "element 3: expected an integer, found a string (\"3\")")]
    [InlineData("[defcon]\nthresholds = [3, 3, 10, 15]\n", 2, 18, "defcon.thresholds", "element 2: 3 is not greater than the previous element 3; the values must be strictly increasing")]
    [InlineData("[defcon]\nthresholds = [0, 6, 10, 15]\n", 2, 15, "defcon.thresholds", "element 1: 0 is out of range; expected an integer >= 1")]
    [InlineData("[defcon]\nslowdown_us = [1, 2]\n", 2, 15, "defcon.slowdown_us", "expected exactly 3 integers, found 2")]
    [InlineData("[defcon]\nslowdown_us = [1, 2, 3, 4]\n", 2, 15, "defcon.slowdown_us", "expected exactly 3 integers, found 4")]
    [InlineData("[defcon]\nslowdown_us = [1, 2, 1000001]\n", 2, 22, "defcon.slowdown_us", "element 3: 1000001 is out of range; expected an integer from 0 to 1000000")]
    [InlineData("[defcon]\nslowdown_us = [1, 2.5, 3]\n", 2, 19, "defcon.slowdown_us", "element 2: expected an integer, found a float (2.5)")]
    [InlineData("[paths]\npolicy_files = \"a.toml\"\n", 2, 16, "paths.policy_files", "expected an array of strings, found a string (\"a.toml\")")]
    [InlineData("[paths]\npolicy_files = [\n  \"a.toml\",\n  7,\n]\n", 4, 3, "paths.policy_files", "element 2: expected a string, found an integer (7)")]
    // Checks across keys.
    [InlineData("[grpc]\ntls_enabled = true\ntls_key_path = \"key.pem\"\n", 2, 15, "grpc.tls_cert_path", "required when grpc.tls_enabled = true")]
    [InlineData("[grpc]\ntls_enabled = true\ntls_cert_path = \"cert.pem\"\n", 2, 15, "grpc.tls_key_path", "required when grpc.tls_enabled = true")]
    [InlineData("[grpc]\ntls_enabled = true\ntls_cert_path = \"cert.pem\"\ntls_key_path = \"\"\n", 4, 16, "grpc.tls_key_path", "must not be empty when grpc.tls_enabled = true")]
    [InlineData("[grpc]\ntls_client_ca_path = \"ca.pem\"\n", 2, 22, "grpc.tls_client_ca_path", "mutual TLS requires grpc.tls_enabled = true")]
    [InlineData("[grpc]\nenabled = true\nport = 9090\n[metrics]\nenabled = true\n", 3, 8, "metrics.port", "127.0.0.1:9090 is also the gRPC address")]
    // The Unix socket opened to users.
    [InlineData("[grpc]\nunix_socket_path = \"/run/mis/mis.sock\"\nunix_socket_mode = \"666\"\n", 3, 20, "grpc.unix_socket_mode", "invalid value \"666\"; expected one of: 0600, 0660, 0666")]
    [InlineData("[grpc]\nunix_socket_mode = \"0666\"\n", 2, 20, "grpc.unix_socket_mode", "\"0666\" needs a socket: set grpc.unix_socket_path")]
    [InlineData("[grpc]\nunix_socket_path = \"/run/mis/mis.sock\"\nunix_socket_mode = \"0660\"\n", 3, 20, "grpc.unix_socket_mode", "\"0660\" lets a group connect: name it with grpc.unix_socket_group")]
    [InlineData("[grpc]\nunix_socket_path = \"/run/mis/mis.sock\"\nunix_socket_group = \"mis\"\n", 3, 21, "grpc.unix_socket_group", "has no effect with unix_socket_mode = \"0600\"")]
    [InlineData("[access]\ntcp_callers = \"yes\"\n", 2, 15, "access.tcp_callers", "invalid value \"yes\"; expected one of: auto, admin, refused")]
    [InlineData("[access]\nuser_policy_files = [\"\"]\n", 2, 22, "access.user_policy_files", "element 1: must not be empty")]
    public void InvalidFilesAreRejectedWithLineColumnAndKey(string text, int line, int column, string key, string detail)
    {
        var e = Assert.Throws<ConfigException>(() => MisConfig.Parse(text, File));
        Assert.Equal(File, e.File);
        Assert.Equal(key, e.Key);
        Assert.StartsWith(detail, e.Detail, StringComparison.Ordinal);
        Assert.Equal((line, column), (e.Line, e.Column));
        Assert.Equal($"{File}:{line}:{column}: {key}: {e.Detail}", e.Message);
    }

    [Fact]
    public void MissingFileIsAConfigErrorNamingThePath()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mis-missing-{Guid.NewGuid():N}", "config.toml");
        var e = Assert.Throws<ConfigException>(() => MisConfig.Load(path));
        Assert.Equal(path, e.File);
        Assert.Equal(0, e.Line);
        Assert.Null(e.Key);
        Assert.Equal($"{path}: configuration file not found", e.Message);
        Assert.IsAssignableFrom<IOException>(e.InnerException);
    }

    [Fact]
    public void DirectoryIsNotAConfigFile()
    {
        var path = Path.GetTempPath();
        var e = Assert.Throws<ConfigException>(() => MisConfig.Load(path));
        Assert.Equal(path, e.File);
        Assert.Contains("is a directory", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadReadsTheFileAndNamesItInErrors()
    {
        var directory = Directory.CreateTempSubdirectory("mis-config-");
        try
        {
            var path = Path.Combine(directory.FullName, "mis.toml");
            System.IO.File.WriteAllText(path, "[watchdog]\ninterval_ms = 50\n");
            Assert.Equal(50, MisConfig.Load(path).Watchdog.IntervalMs);

            System.IO.File.WriteAllText(path, "[watchdog]\ninterval_ms = 5\n");
            var e = Assert.Throws<ConfigException>(() => MisConfig.Load(path));
            Assert.Equal(path, e.File);
            Assert.StartsWith($"{path}:2:15: watchdog.interval_ms: ", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("prot", "port")]
    [InlineData("Port", "port")]
    [InlineData("bindaddress", "bind_address")]
    [InlineData("tls_cert", null)]
    [InlineData("xyz", null)]
    public void SuggestionsNeedASmallEditDistance(string typed, string? expected)
    {
        var keys = ConfigSchema.FindSection("grpc")!.Keys.Select(k => k.Name);
        Assert.Equal(expected, TomlDocument.Closest(typed, keys));
    }

    // ---- helpers -----------------------------------------------------------------------------

    private static string DocumentedConfigPath()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (System.IO.File.Exists(Path.Combine(dir.FullName, "MIS.sln"))
                || System.IO.File.Exists(Path.Combine(dir.FullName, "global.json")))
            {
                return Path.Combine(dir.FullName, "config", "config.toml");
            }
        }
        throw new InvalidOperationException($"no MIS.sln or global.json above {AppContext.BaseDirectory}");
    }

    /// <summary>Every "section.key" of config/config.toml, with its 0-based line.</summary>
    private static List<(string Dotted, int Line)> DocumentedKeys()
    {
        var path = DocumentedConfigPath();
        var document = SyntaxParser.Parse(System.IO.File.ReadAllText(path), path, validate: true);
        Assert.False(document.HasErrors, document.Diagnostics.ToString());
        Assert.Empty(document.KeyValues);

        var keys = new List<(string, int)>();
        foreach (var table in document.Tables)
        {
            foreach (var keyValue in table.Items)
            {
                var name = ((BareKeySyntax)keyValue.Key!.Key!).Key!.Text;
                keys.Add(($"{table.Name!.ToString().Trim()}.{name}", keyValue.Span.Start.Line));
            }
        }
        return keys;
    }

    /// <summary>Every init-settable property of every section record, named as in TOML.</summary>
    private static List<(PropertyInfo Section, PropertyInfo Property, string Dotted)> SettableKeys()
    {
        var keys = new List<(PropertyInfo, PropertyInfo, string)>();
        foreach (var section in typeof(MisConfig).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            foreach (var property in section.PropertyType.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                if (property.SetMethod is { IsPublic: true })
                {
                    keys.Add((section, property, $"{SnakeCase(section.Name)}.{SnakeCase(property.Name)}"));
                }
            }
        }
        Assert.Equal(8, keys.Select(k => k.Item1).Distinct().Count());
        return keys;
    }

    private static string SnakeCase(string name)
    {
        var builder = new StringBuilder();
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (i > 0 && (char.IsUpper(c) || (char.IsDigit(c) && !char.IsDigit(name[i - 1]))))
            {
                builder.Append('_');
            }
            builder.Append(char.ToLowerInvariant(c));
        }
        return builder.ToString();
    }

    private static T CloneRecord<T>(T record) where T : notnull =>
        (T)record.GetType().GetMethod("<Clone>$")!.Invoke(record, null)!;

    private static object OtherValue(object? value) => value switch
    {
        bool b => !b,
        int i => i + 1,
        long l => l + 1,
        string s => s + "x",
        IReadOnlyList<string> list => list.Append("x").ToArray(),
        IReadOnlyList<long> list => list.Append(99L).ToArray(),
        IReadOnlyList<int> list => list.Append(99).ToArray(),
        _ => throw new InvalidOperationException($"no other value for {value?.GetType()}"),
    };

    private static bool ValuesEqual(object? a, object? b) =>
        a is System.Collections.IEnumerable x && b is System.Collections.IEnumerable y && a is not string
            ? x.Cast<object>().SequenceEqual(y.Cast<object>())
            : Equals(a, b);
}
