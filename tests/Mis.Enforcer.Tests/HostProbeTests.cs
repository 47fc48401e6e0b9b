using System.Diagnostics;
using System.Text.Json;
using Mis.Enforcer.Host;
using Mis.Native;
using Mis.Testing;

namespace Mis.Enforcer.Tests;

public sealed class HostProbeTests
{
    [Fact]
    public void Report_round_trips_through_snake_case_json()
    {
        var report = HostProbe.Run();
        string json = report.ToJson();

        using var doc = JsonDocument.Parse(json);
        Assert.Equal(1, doc.RootElement.GetProperty("schema_version").GetInt32());
        Assert.True(doc.RootElement.GetProperty("backend").TryGetProperty("deny_points", out _));
        Assert.Equal(8, doc.RootElement.GetProperty("programs").GetArrayLength());

        var back = HostReport.FromJson(json);
        Assert.Equal(report.Kernel, back.Kernel);
        Assert.Equal(report.Backend.Name, back.Backend.Name);
        Assert.Equal(report.Programs.Select(p => (p.Kind, p.Status, p.Errno)), back.Programs.Select(p => (p.Kind, p.Status, p.Errno)));
    }

    [Fact]
    public void Kernel_probes_load_and_attach_for_real()
    {
        HostRequirements.Root();
        var report = HostProbe.Run();
        HostRequirements.That(report.BpfObjects.Embedded, $"the BPF objects are not in this build: {report.BpfObjects.MissingReason}");

        Assert.True(report.Btf.Available, report.Btf.Error);
        Assert.True(report.Btf.Types > 1000);
        // ARCHITECTURE: tracepoint, cgroup and syscall programs load and attach on every target kernel.
        foreach (var kind in new[] { "tp_btf", "raw_tracepoint", "cgroup_connect4", "cgroup_sock_create", "syscall" })
            Assert.True(report.Program(kind).Status == "works", $"{kind}: {report.Program(kind).Detail}");
        // The Unix socket hooks exist from Linux 6.7 on; the enforcer uses them exactly where doctor finds them.
        Assert.Equal(Kernel.KernelEnforcer.UnixHooksAvailable, report.Program("cgroup_connect_unix").Status == "works");

        // lsm and fentry share the trampoline machinery: the kernel allows both or neither, and a
        // refusal carries the errno the kernel gave.
        var lsm = report.Program("lsm");
        var fentry = report.Program("fentry");
        Assert.Equal(lsm.Status, fentry.Status);
        Assert.Contains(lsm.Status, new[] { "works", "refused" });
        if (lsm.Status == "refused")
            Assert.False(string.IsNullOrEmpty(lsm.Errno));

        Assert.NotNull(report.Cgroup.Mount);
        Assert.True(report.Cgroup.Kill, report.Cgroup.Error);
        Assert.Equal("kernel", report.Backend.Name);
        Assert.Equal("tp_btf", report.Backend.SyscallHook);
    }

    [Fact]
    public void Probing_leaves_no_cgroup_and_no_bpf_link_behind()
    {
        HostRequirements.Root();
        string? mount = CgroupV2.FindMount();
        HostRequirements.That(mount is not null, "cgroup v2 is not mounted");
        HostRequirements.That(Which("bpftool") is not null, "bpftool is not installed");

        int linksBefore = BpfLinkCount();
        HostProbe.Run();

        Assert.Equal(linksBefore, BpfLinkCount());
        Assert.False(Directory.Exists(Path.Combine(mount!, "mis", $"doctor-{Environment.ProcessId}")));
    }

    [Fact]
    public void Securityfs_is_read_without_changing_the_host_mount_table()
    {
        HostRequirements.Root();
        string before = File.ReadAllText("/proc/self/mountinfo");
        var report = HostProbe.Run();
        Assert.Equal(before, File.ReadAllText("/proc/self/mountinfo"));
        Assert.True(report.Lsm.Error is null, report.Lsm.Error);
        Assert.Contains("capability", report.Lsm.Modules);
    }

    [Fact]
    public void Backend_is_kernel_when_every_needed_probe_works()
    {
        var choice = HostProbe.ChooseBackend(Synthetic(lsm: "refused"));
        Assert.Equal("kernel", choice.Name);
        Assert.Equal(["seccomp_user_notif", "cgroup_sock"], choice.DenyPoints);
        Assert.Contains("seccomp user notification", choice.Reason);
    }

    [Fact]
    public void Backend_prefers_lsm_where_the_kernel_allows_it()
    {
        var choice = HostProbe.ChooseBackend(Synthetic(lsm: "works"));
        Assert.Equal("kernel", choice.Name);
        Assert.Equal("lsm", choice.DenyPoints[0]);
        Assert.Contains("BPF LSM", choice.Reason);
    }

    [Fact]
    public void Backend_falls_back_to_the_simulator_and_names_what_is_missing()
    {
        var report = Synthetic(lsm: "refused", cgroupHooks: "refused") with
        {
            Seccomp = new SeccompReport(false, [], "EINVAL"),
        };
        var choice = HostProbe.ChooseBackend(report);
        Assert.Equal("sim", choice.Name);
        Assert.Contains("cgroup socket hooks", choice.Reason);
        Assert.Contains("a file deny point", choice.Reason);
    }

    [Fact]
    public void Backend_falls_back_when_the_build_has_no_bpf_objects()
    {
        var report = Synthetic(lsm: "refused") with { BpfObjects = new EmbeddedObjectsReport(false, "clang was missing") };
        var choice = HostProbe.ChooseBackend(report);
        Assert.Equal("sim", choice.Name);
        Assert.Contains("BPF objects in this build", choice.Reason);
    }

    private static HostReport Synthetic(string lsm, string cgroupHooks = "works")
    {
        ProgramProbe P(string kind, string status) => new(kind, kind, status != "refused", status == "works", status, status == "refused" ? "EPERM" : null, null);
        return new HostReport
        {
            Kernel = "test",
            Architecture = "x64",
            Privileges = new PrivilegeReport(true, 0, true, true, true),
            Btf = new BtfReport(true, "/sys/kernel/btf/vmlinux", 100000, null),
            Libbpf = "1.1",
            BpfObjects = new EmbeddedObjectsReport(true, null),
            Programs =
            [
                P("tp_btf", "works"), P("raw_tracepoint", "works"), P("lsm", lsm), P("fentry", lsm),
                P("cgroup_connect4", cgroupHooks), P("cgroup_sock_create", cgroupHooks), P("syscall", "works"),
            ],
            Lsm = new LsmReport(["capability", "bpf"], true, "test", null),
            Cgroup = new CgroupReport("/sys/fs/cgroup", [], true, true, null),
            Seccomp = new SeccompReport(true, ["user_notif"], null),
            Landlock = new LandlockReport(4, null),
            Backend = new BackendChoice("?", [], null, ""),
        };
    }

    private static int BpfLinkCount()
    {
        var psi = new ProcessStartInfo("bpftool", "-j link show") { RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return JsonDocument.Parse(output).RootElement.GetArrayLength();
    }

    private static string? Which(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
            .Select(dir => Path.Combine(dir, tool)).FirstOrDefault(File.Exists);
}
