using Mis.Enforcer.Confinement;
using Mis.Enforcer.Policy;
using Mis.Testing;

namespace Mis.Enforcer.Tests;

/// <summary>
/// A rule protects an object, not a spelling: under a real <see cref="WorkloadPolicy"/>, a hard
/// link, a renamed file or parent, or a file replaced since the policy was built reach the same
/// decision as the name the rule was written for — for the default user and for --as-root.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ConfinementNameTests
{
    private const string Key = "PRIVATE-KEY-MATERIAL";

    private static WorkloadPolicy Policy(params (string Pattern, FileOps Ops)[] denials)
    {
        var rules = denials.Select(d => new FileRule(Glob(d.Pattern), d.Ops, Verdict.Deny, $"test: {d.Pattern}"))
            .Concat(BuiltinPolicy.Rules()).ToList();
        return new WorkloadPolicy("test", Verdict.Allow, rules, [], []);
    }

    private static PathGlob Glob(string pattern) => PathGlob.TryParse(pattern, out var glob, out var error) ? glob! : throw new ArgumentException(error);

    /// <summary>{Dir}/home/.ssh/id_test (0666: DAC alone would let either identity link or read it), under the built-in /**/.ssh/id_* rule.</summary>
    private static string SshKey(ConfinementHarness h)
    {
        string ssh = Path.Combine(h.Dir, "home", ".ssh");
        Directory.CreateDirectory(ssh);
        ConfinementHarness.Chmod(Path.Combine(h.Dir, "home"), 0x1FF);
        ConfinementHarness.Chmod(ssh, 0x1FF);
        string key = Path.Combine(ssh, "id_test");
        File.WriteAllText(key, Key);
        ConfinementHarness.Chmod(key, 0x1B6);
        return key;
    }

    private static WorkloadIdentity? As(bool root) => root ? WorkloadIdentity.Root : null;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_hard_link_to_a_glob_protected_key_is_refused_and_the_key_stays_unread(bool asRoot)
    {
        using var h = new ConfinementHarness { Policy = Policy() };
        string key = SshKey(h);
        var run = h.Sh($"ln {key} {h.Writable}/copy; echo rc=$?; cat {h.Writable}/copy", As(asRoot));
        Assert.DoesNotContain(Key, run.Stdout);
        Assert.Contains("rc=1", run.Stdout);
        var report = Assert.Single(h.Sink.Reports);
        Assert.Equal((ViolationOp.FileWrite, key), (report.Op, report.Target));
        Assert.False(File.Exists(Path.Combine(h.Writable, "copy")));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Renaming_the_parent_of_a_protected_key_away_is_refused(bool asRoot)
    {
        using var h = new ConfinementHarness { Policy = Policy() };
        string key = SshKey(h);
        var run = h.Sh($"mv {Path.GetDirectoryName(key)} {h.Writable}/s; echo rc=$?; cat {h.Writable}/s/id_test", As(asRoot));
        Assert.DoesNotContain(Key, run.Stdout);
        Assert.Contains("rc=1", run.Stdout);
        Assert.Equal(key, Assert.Single(h.Sink.Reports).Target);
        Assert.True(File.Exists(key));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_read_protected_file_renamed_or_moved_with_its_directory_stays_read_protected_under_the_new_name(bool asRoot)
    {
        using var h = new ConfinementHarness();
        string ro = Path.Combine(h.Writable, "ro"); // in a directory either identity may rename in
        Directory.CreateDirectory(Path.Combine(ro, "sub"));
        File.WriteAllText(Path.Combine(ro, "data.txt"), Key);
        File.WriteAllText(Path.Combine(ro, "sub", "more.txt"), Key);
        foreach (string d in new[] { ro, Path.Combine(ro, "sub") })
            ConfinementHarness.Chmod(d, 0x1FF);
        h.Policy = Policy(($"{ro}/**", FileOps.Read));
        // Renaming is a write, which the rule allows; the rule follows the files to their new names.
        var run = h.Sh($"mv {ro}/data.txt {h.Writable}/d.txt && echo moved-file; cat {h.Writable}/d.txt; " +
                       $"mv {ro} {h.Writable}/tree && echo moved-tree; cat {h.Writable}/tree/sub/more.txt; ls {h.Writable}/tree; echo done", As(asRoot));
        Assert.DoesNotContain(Key, run.Stdout);
        Assert.Contains("moved-file\n", run.Stdout);
        Assert.Contains("moved-tree\n", run.Stdout);
        Assert.Contains("done\n", run.Stdout);
        Assert.Equal(
            [$"{h.Writable}/d.txt", $"{h.Writable}/tree/sub/more.txt", $"{h.Writable}/tree"],
            h.Sink.Reports.Select(r => r.Target).ToArray());
        Assert.All(h.Sink.Reports, r => Assert.Equal(ViolationOp.FileRead, r.Op));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_tree_rule_covers_its_directory_listing_and_O_TMPFILE_in_it(bool asRoot)
    {
        using var h = new ConfinementHarness();
        string ro = Path.Combine(h.Dir, "ro");
        string wp = Path.Combine(h.Dir, "wp");
        Directory.CreateDirectory(ro);
        Directory.CreateDirectory(wp);
        File.WriteAllText(Path.Combine(ro, "answers.csv"), Key);
        ConfinementHarness.Chmod(wp, 0x1FF);
        h.Policy = Policy(($"{ro}/**", FileOps.Read), ($"{wp}/**", FileOps.Write));
        var run = h.Python($"""
            import os
            for name, attempt in [("list", lambda: os.listdir("{ro}")),
                                  ("tmpfile", lambda: os.open("{wp}", os.O_TMPFILE | os.O_WRONLY, 0o600))]:
                try:
                    print(name, "ok", attempt(), flush=True)
                except OSError as e:
                    print(name, "errno=%d" % e.errno, flush=True)
            """, As(asRoot));
        Assert.Contains("list errno=1\n", run.Stdout);
        Assert.Contains("tmpfile errno=1\n", run.Stdout);
        Assert.DoesNotContain("answers.csv", run.Stdout);
        Assert.Equal([(ViolationOp.FileRead, ro), (ViolationOp.FileWrite, wp)], h.Sink.Reports.Select(r => (r.Op, r.Target)).ToArray());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_exact_path_rule_protects_the_file_that_replaced_it_under_every_name(bool asRoot)
    {
        using var h = new ConfinementHarness();
        string exact = Path.Combine(h.Dir, "exact.txt");
        File.WriteAllText(exact, "old");
        h.Policy = Policy((exact, FileOps.All));
        // Replaced after the policy was built (as passwd replaces /etc/shadow), then given a second
        // name by someone else (the host, not the workload).
        string replacement = exact + ".new";
        File.WriteAllText(replacement, Key);
        ConfinementHarness.Chmod(replacement, 0x1A4);
        File.Move(replacement, exact, overwrite: true);
        string other = Path.Combine(h.Writable, "other");
        Assert.Equal(0, Link(exact, other));
        var run = h.Sh($"cat {other}; cat {exact}", As(asRoot));
        Assert.DoesNotContain(Key, run.Stdout);
        Assert.Equal([other, exact], h.Sink.Reports.Select(r => r.Target).ToArray());
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "link", SetLastError = true)]
    private static extern int Link(string from, string to);
}
