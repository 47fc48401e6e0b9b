using Mis.Enforcer.Configuration;
using Mis.Enforcer.Policy;
using Mis.Native;
using Microsoft.Extensions.Time.Testing;

namespace Mis.Enforcer.Tests;

public sealed class PolicyTests
{
    private static FileRequest Read(string path) => new(FileOp.Read, path, 0, 0);

    [Theory]
    [InlineData("/etc/shadow", "Read")]
    [InlineData("/etc/gshadow", "Read")]
    [InlineData("/etc/sudoers.d/90-cloud", "Read")]
    [InlineData("/home/alice/.ssh/id_ed25519", "Read")]
    [InlineData("/root/.ssh/id_rsa", "Read")]
    [InlineData("/etc/ssh/ssh_host_ed25519_key", "Read")]
    [InlineData("/sys/fs/cgroup/unified/cgroup.procs", "Write")]
    [InlineData("/sys/fs/bpf/mis/map", "Write")]
    [InlineData("/proc/sys/kernel/modprobe", "Write")]
    [InlineData("/sys/power/state", "Write")]
    [InlineData("/dev/sda", "Read")]
    [InlineData("/dev/vda1", "Write")]
    [InlineData("/dev/mem", "Read")]
    public void Builtin_denies_credentials_and_control_surfaces(string path, string op)
    {
        Assert.Equal(Verdict.Deny, BuiltinPolicy.Create().Decide(new FileRequest(Enum.Parse<FileOp>(op), path, 0, 0), defcon: 5));
    }

    [Theory]
    [InlineData("/etc/passwd", "Read")]
    [InlineData("/home/alice/.ssh/id_ed25519.pub", "Read")]
    [InlineData("/tmp/work/out.txt", "Write")]
    [InlineData("/usr/bin/cat", "Exec")]
    [InlineData("/sys/fs/cgroup/unified/cgroup.procs", "Read")]
    [InlineData("/proc/sys/kernel/osrelease", "Read")]
    [InlineData("/dev/null", "Write")]
    [InlineData("/dev/urandom", "Read")]
    [InlineData("/dev/pts/3", "Write")]
    [InlineData("/dev/shm/buffer", "Write")]
    public void Builtin_allows_ordinary_work(string path, string op)
    {
        Assert.Equal(Verdict.Allow, BuiltinPolicy.Create().Decide(new FileRequest(Enum.Parse<FileOp>(op), path, 0, 0), defcon: 5));
    }

    [Theory]
    [InlineData("/srv/secret/**", "/srv/secret", true)]
    [InlineData("/srv/secret/**", "/srv/secret/a/b", true)]
    [InlineData("/srv/secret/**", "/srv/secrets", false)]
    [InlineData("/srv/**/key", "/srv/key", true)]
    [InlineData("/**", "/", true)]
    public void A_tree_pattern_matches_its_root_too(string pattern, string path, bool matches)
    {
        Assert.True(PathGlob.TryParse(pattern, out var glob, out string error), error);
        Assert.Equal(matches, glob!.Matches(path));
    }

    [Fact]
    public void An_exec_allow_list_runs_only_named_programs_never_one_written_during_the_run()
    {
        var policy = PolicyFile.Parse("[policy]\nexec = \"allowlist\"\n[[file]]\npath = \"/usr/bin/**\"\nops = [\"exec\"]\naction = \"allow\"\n", "p.toml");
        Assert.True(policy.ExecAllowList);
        Assert.Equal(Verdict.Allow, policy.Decide(new FileRequest(FileOp.Exec, "/usr/bin/true", 1, 2), 5));
        Assert.Equal(Verdict.Deny, policy.Decide(new FileRequest(FileOp.Exec, "/usr/bin/true", 1, 2) { WrittenDuringRun = true }, 5));
        Assert.Equal(Verdict.Deny, policy.Decide(new FileRequest(FileOp.Exec, "/tmp/tool", 1, 3), 5));
        Assert.Equal(Verdict.Allow, policy.Decide(new FileRequest(FileOp.Exec, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", 1, 4) { Interpreter = true }, 5));
        Assert.Equal(Verdict.Deny, policy.Decide(new FileRequest(FileOp.Exec, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", 1, 4), 5));
        Assert.False(PolicyFile.Parse("", "p.toml").ExecAllowList);
    }

    [Fact]
    public void A_glob_rule_follows_a_file_to_the_names_a_link_or_rename_gives_it()
    {
        var policy = PolicyFile.Parse("[[file]]\npath = \"/srv/answers/**\"\nops = [\"read\"]\naction = \"deny\"\n", "p.toml");
        var elsewhere = new FileRequest(FileOp.Read, "/tmp/copy", 7, 42);
        Assert.Equal(Verdict.Allow, policy.Decide(elsewhere, 5));
        // Renaming is a write, which the rule allows; it gives the file a new name, which the rule follows.
        Assert.Equal(Verdict.Allow, policy.Decide(new FileRequest(FileOp.Write, "/srv/answers/key.csv", 7, 42) { NewName = true, SyscallNr = 82 }, 5));
        Assert.Equal(Verdict.Deny, policy.Decide(elsewhere, 5));
        // A file with other names is followed as soon as a rule meets it by name.
        Assert.Equal(Verdict.Deny, policy.Decide(new FileRequest(FileOp.Read, "/srv/answers/b.csv", 7, 43) { Links = 2 }, 5));
        Assert.Equal(Verdict.Deny, policy.Decide(new FileRequest(FileOp.Read, "/home/x/b-link.csv", 7, 43) { Links = 2 }, 5));
        // An ordinary file met by name alone is not remembered (no unbounded growth).
        Assert.Equal(Verdict.Deny, policy.Decide(new FileRequest(FileOp.Read, "/srv/answers/c.csv", 7, 44), 5));
        Assert.Equal(Verdict.Allow, policy.Decide(new FileRequest(FileOp.Read, "/tmp/c.csv", 7, 44), 5));
    }

    [Fact]
    public void A_hard_link_to_a_denied_file_is_denied_by_inode()
    {
        string dir = Directory.CreateTempSubdirectory("mis-policy-").FullName;
        try
        {
            string secret = Path.Combine(dir, "secret");
            File.WriteAllText(secret, "x");
            var policy = PolicyFile.Parse($"[[file]]\npath = \"{secret}\"\naction = \"deny\"\n", "p.toml");
            var id = FileIdentity.Of(secret)!.Value;
            var viaOtherName = new FileRequest(FileOp.Read, Path.Combine(dir, "innocent-name"), id.Device, id.Inode);
            Assert.Equal(Verdict.Deny, policy.Decide(viaOtherName, 5));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void First_matching_rule_wins_and_file_rules_come_before_builtin()
    {
        var policy = PolicyFile.Parse("""
            [[file]]
            path = "/data/public/**"
            action = "allow"

            [[file]]
            path = "/data/**"
            ops = ["read"]
            action = "deny"

            [[file]]
            path = "/etc/shadow"
            action = "trace"
            """, "p.toml");
        Assert.Equal(Verdict.Allow, policy.Decide(Read("/data/public/a/b.csv"), 5));
        Assert.Equal(Verdict.Deny, policy.Decide(Read("/data/private.csv"), 5));
        Assert.Equal(Verdict.Allow, policy.Decide(new FileRequest(FileOp.Write, "/data/private.csv", 0, 0), 5));
        Assert.Equal(Verdict.Trace, policy.Decide(Read("/etc/shadow"), 5));
        Assert.Equal(Verdict.Deny, policy.Decide(Read("/etc/gshadow"), 5)); // builtin still applies
    }

    [Fact]
    public void Builtin_can_be_left_out()
    {
        var policy = PolicyFile.Parse("[policy]\nbuiltin = false\n", "p.toml");
        Assert.Equal(Verdict.Allow, policy.Decide(Read("/etc/shadow"), 5));
    }

    [Fact]
    public void Defcon_3_denies_exec_and_defcon_2_everything_not_explicitly_allowed()
    {
        var policy = PolicyFile.Parse("[[file]]\npath = \"/usr/bin/allowed\"\nops = [\"exec\", \"read\"]\naction = \"allow\"\n", "p.toml");
        var exec = new FileRequest(FileOp.Exec, "/usr/bin/cat", 0, 0);
        Assert.Equal(Verdict.Allow, policy.Decide(exec, 4));
        Assert.Equal(Verdict.Deny, policy.Decide(exec, 3));
        Assert.Equal(Verdict.Allow, policy.Decide(Read("/etc/passwd"), 3));
        Assert.Equal(Verdict.Deny, policy.Decide(Read("/etc/passwd"), 2));
        Assert.Equal(Verdict.Allow, policy.Decide(new FileRequest(FileOp.Exec, "/usr/bin/allowed", 0, 0), 2));
        Assert.Contains("DEFCON 2", policy.Explain(Read("/etc/passwd"), 2).Reason);
    }

    [Fact]
    public void Network_rules_parse_addresses_networks_ports_and_protocols()
    {
        var policy = PolicyFile.Parse("""
            [[network]]
            address = "127.0.0.1"
            port = 9
            protocol = "tcp"
            action = "deny"

            [[network]]
            address = "10.0.0.0/8"
            action = "deny"

            [[network]]
            address = "::1"
            protocol = "udp"
            action = "allow"
            """, "p.toml");
        Assert.Equal(3, policy.NetRules.Count);
        Assert.Equal("127.0.0.1/32 port 9 tcp deny", policy.NetRules[0].ToString());
        Assert.Equal("10.0.0.0/8 port any any deny", policy.NetRules[1].ToString());
        Assert.Equal("::1/128 port any udp allow", policy.NetRules[2].ToString());
    }

    [Fact]
    public void Any_address_means_every_IPv4_and_every_IPv6_destination()
    {
        var policy = PolicyFile.Parse("[[network]]\naddress = \"any\"\nport = 53\naction = \"deny\"\n", "p.toml");
        Assert.Equal(["0.0.0.0/0 port 53 any deny", "::/0 port 53 any deny"], policy.NetRules.Select(r => r.ToString()));
    }

    [Fact]
    public void Seed_shaped_rules_match_by_inode_and_syscall_and_expire()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var policy = PolicyFile.Parse("""
            [[rule]]
            inode = 42
            dev_id = 7
            action = 1
            ttl_secs = 60

            [[rule]]
            inode = 43
            dev_id = 7
            syscall_nr = 257
            action = "deny"
            """, "p.toml", clock: clock);
        var a = new FileRequest(FileOp.Read, "/x", 7, 42);
        Assert.Equal(Verdict.Deny, policy.Decide(a, 5));
        Assert.Equal(Verdict.Allow, policy.Decide(new FileRequest(FileOp.Read, "/y", 7, 43) { SyscallNr = 2 }, 5));
        Assert.Equal(Verdict.Deny, policy.Decide(new FileRequest(FileOp.Read, "/y", 7, 43) { SyscallNr = 257 }, 5));
        clock.Advance(TimeSpan.FromSeconds(60));
        Assert.Equal(Verdict.Allow, policy.Decide(a, 5));
    }

    [Theory]
    [InlineData("[[file]]\npath = \"/a\"\n", 1, "file.action", "missing")]
    [InlineData("[[file]]\npath = \"relative\"\naction = \"deny\"\n", 2, "file.path", "absolute")]
    [InlineData("[[file]]\npath = \"/a\"\naction = \"block\"\n", 3, "file.action", "expected one of: allow, deny, trace")]
    [InlineData("[[file]]\npath = \"/a\"\nops = [\"read\", \"delete\"]\naction = \"deny\"\n", 3, "file.ops", "unknown operation \"delete\"")]
    [InlineData("[[file]]\npaht = \"/a\"\n", 2, "file.paht", "did you mean 'path'?")]
    [InlineData("[[netwrok]]\n", 1, "netwrok", "did you mean 'network'?")]
    [InlineData("[file]\npath = \"/a\"\n", 1, "file", "write [[file]]")]
    [InlineData("\n[[network]]\naddress = \"300.1.1.1\"\naction = \"deny\"\n", 3, "network.address", "not an IP address")]
    [InlineData("[[network]]\naddress = \"::1\"\nport = 70000\naction = \"deny\"\n", 3, "network.port", "out of range")]
    [InlineData("[[rule]]\ninode = 1\ndev_id = 1\naction = 5\n", 4, "rule.action", "out of range")]
    [InlineData("[[rule]]\ninode = 1\ndev_id = 1\naction = 1\nttl_secs = 99999999\n", 5, "rule.ttl_secs", "out of range")]
    [InlineData("[policy]\nexec = \"whitelist\"\n", 2, "policy.exec", "allowlist")]
    [InlineData("action = \"deny\"\n", 1, "action", "outside any table")]
    [InlineData("[[file]\n", 1, "file", "syntax error")]
    public void Errors_name_line_and_key(string text, int line, string? key, string message)
    {
        var e = Assert.Throws<ConfigException>(() => PolicyFile.Parse(text, "policy.toml"));
        Assert.Equal(line, e.Line);
        Assert.Equal(key, e.Key);
        Assert.Contains(message, e.Message);
        Assert.StartsWith("policy.toml:", e.Message);
    }

    [Fact]
    public void Missing_policy_file_is_a_clear_error()
    {
        var e = Assert.Throws<ConfigException>(() => PolicyFile.Load("/nonexistent/policy.toml"));
        Assert.Contains("cannot read the policy file", e.Message);
    }

    [Fact]
    public void Unix_rules_name_paths_and_abstract_sockets_and_the_builtin_allows_nscd()
    {
        var policy = PolicyFile.Parse("""
            [[unix]]
            path = "/run/app.sock"
            action = "allow"

            [[unix]]
            path = "@app"
            action = "trace"
            """, "unix.toml");
        Assert.Equal(["/run/app.sock", "@app", "/var/run/nscd/socket", "/run/nscd/socket"], policy.UnixRules.Select(r => r.Name));
        Assert.Equal([0, (byte)'a', (byte)'p', (byte)'p'], policy.UnixRules[1].KernelName());
        Assert.Equal(Verdict.Trace, policy.UnixRules[1].Action);
        Assert.Empty(PolicyFile.Parse("[policy]\nbuiltin = false\n", "none.toml").UnixRules);

        var tooLong = Assert.Throws<ConfigException>(() => PolicyFile.Parse($"[[unix]]\npath = \"/{new string('x', 108)}\"\naction = \"deny\"\n", "u.toml"));
        Assert.Contains("at most 108 bytes", tooLong.Message);
        Assert.Throws<ConfigException>(() => PolicyFile.Parse("[[unix]]\npath = \"@\"\naction = \"deny\"\n", "u.toml"));
    }
}

public sealed class PolicyExampleTests
{
    [Fact]
    public void The_shipped_example_policy_parses_and_means_what_its_comments_say()
    {
        string root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "MIS.sln")))
            root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("MIS.sln not found above the test binary");
        var policy = PolicyFile.Load(Path.Combine(root, "config", "policy.example.toml"));
        Assert.Equal("example", policy.Name);
        Assert.Equal(Verdict.Deny, policy.Decide(new FileRequest(FileOp.Read, "/srv/task/secret/key.txt", 0, 0), 5));
        Assert.Equal(Verdict.Allow, policy.Decide(new FileRequest(FileOp.Read, "/srv/task/input/a.csv", 0, 0), 2));
        Assert.Equal(Verdict.Allow, policy.Decide(new FileRequest(FileOp.Exec, "/usr/bin/python3.11", 0, 0), 3));
        Assert.Equal(Verdict.Deny, policy.Decide(new FileRequest(FileOp.Exec, "/usr/bin/curl", 0, 0), 3));
        Assert.Equal(Verdict.Deny, policy.Decide(new FileRequest(FileOp.Read, "/etc/shadow", 0, 0), 5));
        Assert.Equal(3, policy.NetRules.Count); // the allow, and the "any" deny for each family
    }
}
