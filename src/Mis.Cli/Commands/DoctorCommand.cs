using System.CommandLine;
using Mis.Enforcer.Host;

namespace Mis.Cli.Commands;

/// <summary><c>mis doctor</c>: what this host allows, probed for real.</summary>
public static class DoctorCommand
{
    internal static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print the report as JSON (snake_case; schema_version 1) instead of text." };
        var command = new Command("doctor",
            "Probe what this host allows: loads and attaches (then detaches) each BPF program kind, checks BTF, " +
            "BPF LSM, cgroup v2 and cgroup.kill, seccomp user notification and Landlock, and names the backend MIS will use. " +
            "Needs root for the BPF and cgroup probes; without it they are reported as not probed.")
        {
            json,
        };
        command.SetAction(result =>
        {
            var report = HostProbe.Run();
            Console.WriteLine(result.GetValue(json) ? report.ToJson() : Render(report));
            return 0;
        });
        return command;
    }

    /// <summary>The report as a one-screen table for people.</summary>
    internal static string Render(HostReport r)
    {
        var w = new StringWriter();
        static string YesNo(bool b) => b ? "yes" : "no";
        w.WriteLine("MIS doctor: what this host allows (each item probed, not guessed)");
        w.WriteLine();
        w.WriteLine($"  kernel          {r.Kernel} ({r.Architecture})");
        var p = r.Privileges;
        w.WriteLine($"  privileges      {(p.Root ? "root" : $"euid {p.Euid} (not root)")}; CAP_BPF {YesNo(p.CapBpf)}, CAP_PERFMON {YesNo(p.CapPerfmon)}, CAP_SYS_ADMIN {YesNo(p.CapSysAdmin)}");
        w.WriteLine($"  btf             {(r.Btf.Available ? $"yes, {r.Btf.Types} types in {r.Btf.Path}" : $"no: {r.Btf.Error}")}");
        w.WriteLine($"  libbpf          {r.Libbpf ?? "not loadable (install libbpf1)"}");
        w.WriteLine($"  bpf objects     {(r.BpfObjects.Embedded ? "embedded in this build" : $"missing: {r.BpfObjects.MissingReason}")}");
        w.WriteLine();
        w.WriteLine("  program kinds (load, attach, detach)");
        foreach (var prog in r.Programs)
        {
            string mark = prog.Status switch { "works" => "ok  ", "loads_only" => "half", "refused" => "NO  ", _ => "--  " };
            w.WriteLine($"    {mark} {prog.Kind,-19} {prog.Section,-25} {prog.Detail}");
        }
        w.WriteLine();
        w.WriteLine($"  lsm             {(r.Lsm.Error is null ? $"{string.Join(",", r.Lsm.Modules)}; bpf {(r.Lsm.BpfListed ? "listed" : "NOT listed")} (read via {r.Lsm.Source})" : $"unknown: {r.Lsm.Error}")}");
        if (r.Lsm.BpfListed && r.Programs.Any(x => x.Kind == "lsm" && x.Status != "works"))
            w.WriteLine("                  note: bpf is listed, but this kernel refuses to load LSM programs");
        var c = r.Cgroup;
        w.WriteLine($"  cgroup v2       {(c.Mount is null ? "not mounted" : $"{c.Mount}; controllers: {(c.Controllers.Count == 0 ? "(none)" : string.Join(" ", c.Controllers))}; cgroup.kill {YesNo(c.Kill)}; cgroup.freeze {YesNo(c.Freeze)}")}");
        if (c.Error is not null)
            w.WriteLine($"                  {c.Error}");
        w.WriteLine($"  seccomp         user notification {(r.Seccomp.UserNotification ? "yes" : $"no ({r.Seccomp.Error})")}; actions: {string.Join(" ", r.Seccomp.Actions)}");
        w.WriteLine($"  landlock        {(r.Landlock.Abi > 0 ? $"ABI {r.Landlock.Abi}" : $"no: {r.Landlock.Error}")}");
        w.WriteLine();
        w.WriteLine($"  backend         {r.Backend.Name}: {r.Backend.Reason}");
        return w.ToString();
    }
}
