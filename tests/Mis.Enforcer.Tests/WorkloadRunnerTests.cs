using System.Diagnostics;
using Mis.Enforcer.Run;
using Mis.Native;
using Mis.Testing;

namespace Mis.Enforcer.Tests;

/// <summary>The runner in this very process, so anything it failed to release would still be held here.</summary>
public sealed class WorkloadRunnerTests
{
    [Fact]
    public void A_run_releases_every_link_cgroup_and_process_it_created()
    {
        HostRequirements.Root();
        string misRoot = Path.Combine(CgroupV2.FindMount()!, "mis");
        int linksBefore = MisLinks();

        var result = WorkloadRunner.Run(new RunRequest { Command = ["sh", "-c", "sleep 27.1828 & cat /etc/shadow; exit 4"] }, TestContext.Current.CancellationToken);

        Assert.Equal(4, result.ExitStatus);
        Assert.Equal(1UL, result.Violations);
        Assert.Equal(linksBefore, MisLinks());
        Assert.False(Directory.Exists(Path.Combine(misRoot, $"enforcer-{Environment.ProcessId}")));
        Assert.DoesNotContain(Process.GetProcessesByName("sleep"), p => Cmdline(p.Id).Contains("27.1828", StringComparison.Ordinal));
    }

    [Fact]
    public void A_configured_cgroup_root_is_used_and_cleaned()
    {
        HostRequirements.Root();
        string root = Path.Combine(CgroupV2.FindMount()!, $"mis-test-root-{Environment.ProcessId}");
        var config = Configuration.MisConfig.Default with { Paths = Configuration.MisConfig.Default.Paths with { CgroupRoot = root } };
        try
        {
            var result = WorkloadRunner.Run(new RunRequest { Command = ["sh", "-c", "grep -q mis-test-root /proc/self/cgroup"], Config = config },
                TestContext.Current.CancellationToken);
            Assert.Equal(0, result.ExitStatus);
            Assert.Empty(Directory.GetDirectories(root));
        }
        finally
        {
            if (Directory.Exists(root))
                Directory.Delete(root);
        }
    }

    [Fact]
    public void A_cgroup_root_outside_the_cgroup_mount_is_refused()
    {
        HostRequirements.Root();
        var config = Configuration.MisConfig.Default with { Paths = Configuration.MisConfig.Default.Paths with { CgroupRoot = "/tmp/not-a-cgroup" } };
        var e = Assert.Throws<Kernel.KernelUnavailableException>(() =>
            WorkloadRunner.Run(new RunRequest { Command = ["true"], Config = config }, TestContext.Current.CancellationToken));
        Assert.Contains("cgroup_root", e.Message);
    }

    [Fact]
    public void The_bpf_descriptor_count_sees_an_open_enforcer()
    {
        HostRequirements.Root();
        int before = MisLinks();
        using (Kernel.KernelEnforcer.Open(Configuration.MisConfig.Default.Defcon))
            Assert.True(MisLinks() > before, "an open enforcer holds BPF maps and programs");
        Assert.Equal(before, MisLinks());
    }

    [Fact]
    public void Cancelling_a_run_kills_the_workload_and_still_cleans_up()
    {
        HostRequirements.Root();
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        var watch = Stopwatch.StartNew();
        var result = WorkloadRunner.Run(new RunRequest { Command = ["sleep", "60"] }, cancel.Token);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30));
        Assert.Equal(9, result.Exit.Signal);
        Assert.Equal(137, result.ExitStatus);
        Assert.False(result.KilledByMis);
    }

    private static string Cmdline(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline");
        }
        catch (IOException)
        {
            return "";
        }
    }

    // BPF links, programs and maps this process holds: each is a file descriptor on an anonymous
    // inode ("anon_inode:bpf_link", "anon_inode:bpf-prog", "anon_inode:bpf-map").
    private static int MisLinks() =>
        Directory.GetFiles("/proc/self/fd").Count(fd =>
        {
            try
            {
                return File.ResolveLinkTarget(fd, returnFinalTarget: false)?.FullName.Contains("anon_inode:bpf", StringComparison.Ordinal) == true;
            }
            catch (IOException)
            {
                return false;
            }
        });
}
