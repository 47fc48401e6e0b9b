using Microsoft.Extensions.Time.Testing;
using Mis.Enforcer.Policy;

namespace Mis.Enforcer.Tests;

/// <summary>
/// The policy's decision cache: every cached answer equals the uncached one, whatever changed in
/// between (DEFCON level, inode rules added, removed or expired, another file at the same path).
/// </summary>
public sealed class DecisionCacheTests
{
    private static WorkloadPolicy Policy(TimeProvider? clock = null, string extra = "") => PolicyFile.Parse($"""
        [[file]]
        path = "/srv/allowed/**"
        action = "allow"

        [[file]]
        path = "/srv/secret/**"
        action = "deny"

        {extra}
        """, "cache-test.toml", clock: clock);

    [Fact]
    public void A_repeated_decision_is_a_hit_with_the_same_verdict()
    {
        var policy = Policy();
        var request = new FileRequest(FileOp.Read, "/srv/secret/a", 1, 10);

        Assert.Equal(Verdict.Deny, policy.Decide(request, 5));
        Assert.Equal(Verdict.Deny, policy.Decide(request, 5));
        Assert.Equal(Verdict.Deny, policy.Decide(request with { }, 5)); // an equal request, another object

        Assert.Equal(new DecisionCacheStats(2, 1), policy.DecisionCacheStats);
    }

    [Fact]
    public void The_level_is_part_of_the_key()
    {
        var policy = Policy();
        var plain = new FileRequest(FileOp.Read, "/srv/other/file", 1, 11);
        var exec = new FileRequest(FileOp.Exec, "/srv/other/tool", 1, 12);

        Assert.Equal(Verdict.Allow, policy.Decide(plain, 5));
        Assert.Equal(Verdict.Deny, policy.Decide(plain, 2)); // not explicitly allowed at DEFCON 2
        Assert.Equal(Verdict.Allow, policy.Decide(exec, 4));
        Assert.Equal(Verdict.Deny, policy.Decide(exec, 3));
        Assert.Equal(Verdict.Allow, policy.Decide(new FileRequest(FileOp.Read, "/srv/allowed/x", 1, 13), 2));
        Assert.Equal(0, policy.DecisionCacheStats.Hits);
    }

    [Fact]
    public void Adding_and_removing_an_inode_rule_invalidates_cached_answers()
    {
        var policy = Policy();
        var request = new FileRequest(FileOp.Read, "/srv/other/file", 7, 42);
        Assert.Equal(Verdict.Allow, policy.Decide(request, 5));
        Assert.Equal(Verdict.Allow, policy.Decide(request, 5));

        policy.AddInodeRule(new InodeRule(7, 42, 0, Verdict.Deny, null, "test"));
        Assert.Equal(Verdict.Deny, policy.Decide(request, 5));

        Assert.Equal(1, policy.RemoveInodeRules(7, 42));
        Assert.Equal(Verdict.Allow, policy.Decide(request, 5));
    }

    [Fact]
    public void An_expired_rule_is_not_answered_from_the_cache()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var policy = Policy(clock, """
            [[rule]]
            inode = 42
            dev_id = 7
            action = "deny"
            ttl_secs = 60
            """);
        var request = new FileRequest(FileOp.Read, "/srv/other/file", 7, 42);
        Assert.Equal(Verdict.Deny, policy.Decide(request, 5));
        clock.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(Verdict.Deny, policy.Decide(request, 5)); // still in force: a hit
        Assert.Equal(1, policy.DecisionCacheStats.Hits);

        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(Verdict.Allow, policy.Decide(request, 5));
    }

    [Fact]
    public void Another_file_at_the_same_path_is_decided_afresh()
    {
        string dir = Directory.CreateTempSubdirectory("mis-cache-test-").FullName;
        try
        {
            string secret = Path.Combine(dir, "secret");
            File.WriteAllText(secret, "x");
            var id = Mis.Native.FileIdentity.Of(secret)!.Value;
            // The concrete rule also matches by (device, inode): a hard link elsewhere is the same file.
            var policy = PolicyFile.Parse($"[[file]]\npath = \"{secret}\"\naction = \"deny\"\n", "p.toml");
            string link = Path.Combine(dir, "link");
            var asLink = new FileRequest(FileOp.Read, link, id.Device, id.Inode);
            var other = new FileRequest(FileOp.Read, link, id.Device, id.Inode + 1000);

            Assert.Equal(Verdict.Deny, policy.Decide(asLink, 5));
            Assert.Equal(Verdict.Allow, policy.Decide(other, 5)); // same path, another inode: not the cached deny
            Assert.Equal(Verdict.Deny, policy.Decide(asLink, 5));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Cached_and_uncached_policies_agree_on_a_random_stream_and_the_size_bounds_the_cache()
    {
        var cached = Policy();
        cached.DecisionCacheSize = 16; // small: the stream refills it many times
        var uncached = Policy();
        uncached.DecisionCacheSize = 0;
        string[] paths = ["/srv/allowed/a", "/srv/secret/b", "/srv/other/c", "/etc/shadow", "/usr/bin/true", "/dev/null", "/dev/sda"];
        var rng = new Random(7);
        for (int i = 0; i < 5_000; i++)
        {
            var request = new FileRequest((FileOp)rng.Next(1, 4), paths[rng.Next(paths.Length)], 1, (ulong)rng.Next(1, 4)) { SyscallNr = rng.Next(2) == 0 ? 2 : 257 };
            int level = rng.Next(1, 6);
            if (i % 997 == 0)
            {
                var rule = new InodeRule(1, (ulong)rng.Next(1, 4), 0, (Verdict)rng.Next(0, 2), null, "random");
                cached.AddInodeRule(rule);
                uncached.AddInodeRule(rule);
            }
            Assert.Equal(uncached.Decide(request, level), cached.Decide(request, level));
        }
        Assert.True(cached.DecisionCacheStats.Hits > 0);
        Assert.Equal(default, uncached.DecisionCacheStats);
        Assert.Equal(0, uncached.DecisionCacheSize);
    }
}
