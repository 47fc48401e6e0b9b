using Mis.Enforcer.Confinement;
using Mis.Enforcer.Policy;
using Mis.Testing;

namespace Mis.Enforcer.Tests;

/// <summary>
/// A workload in a mount namespace of its own (LaunchSpec.MountNamespace): the supervisor decides
/// and opens its paths in that namespace, never the host's files of the same name, and the host's
/// mount table does not change.
/// </summary>
public sealed class ConfinementNamespaceTests
{
    private const long MsBind = 0x1000;

    [Fact]
    public void The_workload_reads_and_runs_its_namespace_s_files_not_the_host_s()
    {
        using var h = new ConfinementHarness();
        string hostMounts = File.ReadAllText("/proc/self/mountinfo");
        string onlyHere = Path.Combine(h.Dir, "only-here.txt");
        string tool = Path.Combine(h.Dir, "tool.sh");
        RunResult run;
        using (var ns = MountNamespace.Create(() =>
        {
            MountNamespace.Mount("mis-test", h.Dir, "tmpfs", 0, "mode=0755,size=1m");
            File.WriteAllText(h.Allowed, "namespace copy\n");
            File.WriteAllText(onlyHere, "only in the namespace\n");
            File.WriteAllText(tool, "#!/bin/sh\necho tool ran\n");
            ConfinementHarness.Chmod(tool, 0x1ED);
        }))
        {
            run = h.Run(["/bin/sh", "-c", $"cat {h.Allowed} {onlyHere} && {tool}"], mountNamespace: ns);
        }
        Assert.Equal(0, run.Exit.ExitCode);
        Assert.Equal("namespace copy\nonly in the namespace\ntool ran\n", run.Stdout);
        Assert.Empty(h.Sink.Reports);
        // The host never saw any of it.
        Assert.Equal("hello from the allowed file\n", File.ReadAllText(h.Allowed));
        Assert.False(File.Exists(onlyHere));
        Assert.False(File.Exists(tool));
        Assert.Equal(hostMounts, File.ReadAllText("/proc/self/mountinfo"));
        // And the spawn thread is back home: the next workload, without a namespace, sees the host.
        var after = h.Run(["cat", h.Allowed]);
        Assert.Equal("hello from the allowed file\n", after.Stdout);
    }

    [Fact]
    public void A_denied_file_under_another_name_in_the_namespace_is_denied_and_reported_by_that_name()
    {
        using var h = new ConfinementHarness();
        string renamed = Path.Combine(h.Dir, "renamed.txt");
        RunResult run;
        using (var ns = MountNamespace.Create(() =>
        {
            // The host's secret, bind-mounted under a name that exists only in the namespace (a
            // bind's source must be of the namespace: opened there, before the tmpfs hides it).
            using var secret = File.OpenHandle(h.Secret);
            string source = $"/proc/thread-self/fd/{secret.DangerousGetHandle()}";
            MountNamespace.Mount("mis-test", h.Dir, "tmpfs", 0, "mode=0755,size=1m");
            File.WriteAllText(renamed, "");
            MountNamespace.Mount(source, renamed, null, MsBind, null);
        }))
        {
            run = h.Run(["cat", renamed], mountNamespace: ns);
        }
        Assert.NotEqual(0, run.Exit.ExitCode);
        Assert.DoesNotContain(ConfinementHarness.SecretMarker, run.Stdout);
        Assert.Contains("Operation not permitted", run.Stderr);
        var report = Assert.Single(h.Sink.Reports);
        Assert.Equal(ViolationOp.FileRead, report.Op);
        Assert.Equal(renamed, report.Target); // the namespace's canonical name: no such file on the host
        Assert.False(File.Exists(renamed));
    }

    [Fact]
    public void A_failing_preparation_is_reported_and_leaves_no_namespace_behind()
    {
        HostRequirements.Root();
        string hostMounts = File.ReadAllText("/proc/self/mountinfo");
        var e = Assert.Throws<IOException>(() => MountNamespace.Create(() =>
            MountNamespace.Mount("mis-test", "/nonexistent-mis-mountpoint", "tmpfs", 0, null)));
        Assert.Contains("/nonexistent-mis-mountpoint", e.Message);
        Assert.Equal(hostMounts, File.ReadAllText("/proc/self/mountinfo"));
    }

    [Fact]
    public void An_overlay_adds_files_keeps_the_host_s_and_the_mounts_below_and_takes_the_workload_s_writes()
    {
        using var h = new ConfinementHarness();
        string hostMounts = File.ReadAllText("/proc/self/mountinfo");
        string added = Path.Combine(h.Dir, "added", "input.txt");
        string sub = Path.Combine(h.Dir, "sub");
        Directory.CreateDirectory(sub);
        string written = Path.Combine(h.Writable, "out.txt");
        RunResult run;
        using (var ns = MountNamespace.Create(() =>
        {
            // A mount below the overlaid directory must still be there afterwards.
            MountNamespace.Mount("mis-test", sub, "tmpfs", 0, "mode=0755,size=1m");
            File.WriteAllText(Path.Combine(sub, "mounted.txt"), "from the submount\n");
            MountNamespace.Overlay(h.Dir, 1 << 20, (upper, lower) =>
            {
                MountNamespace.MakeDirectoryLike(Path.Combine(upper, "added"), Path.Combine(lower, "added"));
                File.WriteAllText(Path.Combine(upper, "added", "input.txt"), "added by the overlay\n");
            });
        }))
        {
            run = h.Run(["/bin/sh", "-c", $"cat {h.Allowed} {added} {sub}/mounted.txt && echo private > {written} && cat {written} && stat -c %a {h.Writable}"],
                mountNamespace: ns);
        }
        Assert.True(run.Exit.ExitCode == 0, run.ToString());
        Assert.Equal("hello from the allowed file\nadded by the overlay\nfrom the submount\nprivate\n777\n", run.Stdout);
        Assert.False(File.Exists(written), "the workload's write stayed in the namespace");
        Assert.False(Directory.Exists(Path.GetDirectoryName(added)));
        Assert.Empty(Directory.GetFiles(sub));
        Assert.Equal(hostMounts, File.ReadAllText("/proc/self/mountinfo"));
    }
}
