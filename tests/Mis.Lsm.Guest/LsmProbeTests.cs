using Mis.Enforcer.Host;

namespace Mis.Lsm.Guest;

public sealed class LsmProbeTests
{
    // The same probe `mis doctor` runs: bpf/probe.bpf.c's lsm/file_open program, loaded,
    // attached and detached for real.
    [Fact]
    public void This_kernel_loads_and_attaches_BPF_LSM_programs()
    {
        InTheVm.Require();

        var report = HostProbe.Run();

        Assert.True(report.BpfObjects.Embedded, $"this build has no BPF objects: {report.BpfObjects.MissingReason}");
        Assert.True(report.Lsm.BpfListed,
            $"bpf is not among the active LSMs ({string.Join(",", report.Lsm.Modules)}; {report.Lsm.Error}) on kernel {report.Kernel}");
        var lsm = report.Program("lsm");
        Assert.True(lsm.Status == "works",
            $"the {lsm.Section} probe on kernel {report.Kernel}: {lsm.Status} {lsm.Errno} ({lsm.Detail})");
        Assert.Contains("lsm", report.Backend.DenyPoints);
    }
}
