using System.Xml.Linq;
using Mis.Enforcer.Host;

namespace Mis.Lsm.Tests;

/// <summary>
/// What can only be tested under a kernel that loads BPF LSM programs, run in the VM
/// (<see cref="LsmVm"/>). Names contain "Lsm" so that <c>./mis test --filter Lsm</c> runs them alone.
/// </summary>
[Collection(LsmVmCollection.Name)]
public sealed class LsmVmTests(LsmVmFixture vm)
{
    [Fact]
    public void Lsm_guest_suite_passes_in_a_kernel_with_BPF_LSM()
    {
        var run = vm.Require();
        string? xml = run.ReadResult(LsmVmFixture.GuestXml);
        Assert.True(xml is not null,
            $"the guest suite wrote no results (VM exit {run.ExitCode}); its output:\n{Tail(run.Stdout)}\n{Tail(run.Stderr)}\nconsole:\n{Tail(run.Console)}");

        var doc = XDocument.Parse(xml);
        var tests = doc.Descendants("test").ToList();
        var problems = new List<string>();
        foreach (var test in tests)
        {
            string name = (string?)test.Attribute("name") ?? "?";
            switch ((string?)test.Attribute("result"))
            {
                case "Pass":
                    break;
                case "Skip":
                    problems.Add($"skipped: {name}: {(string?)test.Element("reason")}");
                    break;
                default:
                    problems.Add($"failed: {name}: {(string?)test.Element("failure")?.Element("message")}\n{(string?)test.Element("failure")?.Element("stack-trace")}");
                    break;
            }
        }
        // Errors outside any test (a fixture or the runner itself) are in <errors>.
        foreach (var error in doc.Descendants("error"))
            problems.Add($"error ({(string?)error.Attribute("type")} {(string?)error.Attribute("name")}): {(string?)error.Element("failure")?.Element("message")}");
        if (tests.Count == 0)
            problems.Add($"no guest test ran; runner output:\n{Tail(run.Stdout)}");

        Assert.True(problems.Count == 0, $"the guest suite under kernel {vm.KernelRelease}:\n" + string.Join("\n", problems));
        Assert.Equal("0", run.ReadResult(LsmVmFixture.GuestExit)?.Trim());
        TestContext.Current.TestOutputHelper?.WriteLine($"{tests.Count} guest test(s) passed; the slowest: " + string.Join(", ", tests
            .OrderByDescending(t => double.TryParse((string?)t.Attribute("time"), System.Globalization.CultureInfo.InvariantCulture, out double s) ? s : 0)
            .Take(8).Select(t => $"{(string?)t.Attribute("name")} {(string?)t.Attribute("time")} s")));
    }

    [Fact]
    public void Lsm_doctor_in_the_vm_finds_that_lsm_programs_load()
    {
        var run = vm.Require();
        string? json = run.ReadResult(LsmVmFixture.DoctorJson);
        Assert.True(!string.IsNullOrWhiteSpace(json) && run.ReadResult(LsmVmFixture.DoctorExit)?.Trim() == "0",
            $"mis doctor --json in the VM exited {run.ReadResult(LsmVmFixture.DoctorExit)?.Trim() ?? "(never ran)"}; stderr:\n{Tail(run.Stderr)}");

        var report = HostReport.FromJson(json);

        Assert.Equal(vm.KernelRelease, report.Kernel);
        Assert.True(report.Lsm.BpfListed, $"bpf is not among the guest's LSMs: {string.Join(",", report.Lsm.Modules)} {report.Lsm.Error}");
        var lsm = report.Program("lsm");
        Assert.True(lsm.Status == "works", $"doctor's {lsm.Section} probe in the VM: {lsm.Status} {lsm.Errno} ({lsm.Detail})");
        Assert.Contains("lsm", report.Backend.DenyPoints);
        Assert.Equal("kernel", report.Backend.Name);
    }

    private static string Tail(string text, int lines = 30) =>
        string.Join('\n', text.Split('\n').TakeLast(lines));
}
