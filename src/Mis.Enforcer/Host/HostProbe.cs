using System.Diagnostics;
using System.Runtime.InteropServices;
using Mis.Enforcer.Bpf;
using Mis.Native;
using Mis.Native.Bpf;

namespace Mis.Enforcer.Host;

/// <summary>
/// Probes what this host allows, for real: each BPF program kind is loaded and attached, then
/// detached; cgroup checks run in a throw-away child cgroup under MIS's own subtree. Nothing is
/// left behind, and nothing outside MIS's cgroups is affected (the probe programs do nothing).
/// </summary>
public static class HostProbe
{
    private const string SecurityFsLsm = "/sys/kernel/security/lsm";
    private const string VmlinuxBtf = "/sys/kernel/btf/vmlinux";
    private const uint ProbeSyscallRetval = 42; // PROBE_SYSCALL_RETVAL in bpf/probe.bpf.c

    private enum AttachMode { Tracing, Cgroup, TestRun }

    // ProgType/AttachType: the kernel's numbers, set by the prober for hooks libbpf 1.1 cannot
    // name from the section (0: from the section).
    private sealed record ProgramKind(string Kind, string Program, string Section, AttachMode Mode, int ProgType = 0, int AttachType = 0);

    // Order matters only for reading: the hooks MIS relies on first.
    private static readonly ProgramKind[] Kinds =
    [
        new("tp_btf", "probe_tp_btf", "tp_btf/sys_enter", AttachMode.Tracing),
        new("raw_tracepoint", "probe_raw_tracepoint", "raw_tracepoint/sys_enter", AttachMode.Tracing),
        new("lsm", "probe_lsm", "lsm/file_open", AttachMode.Tracing),
        new("fentry", "probe_fentry", "fentry/vfs_read", AttachMode.Tracing),
        new("cgroup_connect4", "probe_cgroup_connect4", "cgroup/connect4", AttachMode.Cgroup),
        new("cgroup_sock_create", "probe_cgroup_sock_create", "cgroup/sock_create", AttachMode.Cgroup),
        new("cgroup_connect_unix", "probe_cgroup_connect_unix", "cgroup/connect_unix", AttachMode.Cgroup,
            18 /* BPF_PROG_TYPE_CGROUP_SOCK_ADDR */, 49 /* BPF_CGROUP_UNIX_CONNECT */),
        new("syscall", "probe_syscall", "syscall", AttachMode.TestRun),
    ];

    /// <summary>Runs every probe and picks the backend.</summary>
    public static HostReport Run()
    {
        var privileges = ProbePrivileges();
        string? cgroupMount = CgroupV2.FindMount();
        string? libbpf = ProbeLibbpf();
        bool embedded = EmbeddedBpf.TryLoad(EmbeddedBpf.Probe, out var probeElf, out var whyMissing);

        ProbeCgroup scratch = ProbeCgroup.Create(cgroupMount, privileges.Root);
        try
        {
            var programs = Kinds.Select(kind => ProbeProgram(kind, libbpf, embedded ? probeElf : null, whyMissing, scratch)).ToList();
            var report = new HostReport
            {
                Kernel = File.Exists("/proc/sys/kernel/osrelease")
                    ? File.ReadAllText("/proc/sys/kernel/osrelease").Trim() : Environment.OSVersion.VersionString,
                Architecture = RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant(),
                Privileges = privileges,
                Btf = ProbeBtf(libbpf),
                Libbpf = libbpf,
                BpfObjects = new EmbeddedObjectsReport(embedded, embedded ? null : whyMissing),
                Programs = programs,
                Lsm = ProbeLsm(privileges.Root),
                Cgroup = new CgroupReport(cgroupMount,
                    cgroupMount is null ? [] : CgroupV2.Controllers(cgroupMount),
                    scratch.HasFile("cgroup.kill"), scratch.HasFile("cgroup.freeze"), scratch.Error),
                Seccomp = ProbeSeccomp(),
                Landlock = ProbeLandlock(),
                Backend = null!,
            };
            return report with { Backend = ChooseBackend(report) };
        }
        finally
        {
            scratch.Dispose();
        }
    }

    /// <summary>
    /// Whether <c>lsm/</c> programs load and attach here: the probe <c>mis doctor</c> runs for
    /// its "lsm" line, alone. False without root, libbpf or the embedded probes.
    /// </summary>
    internal static bool LsmProgramsWork()
    {
        string? libbpf = ProbeLibbpf();
        bool embedded = EmbeddedBpf.TryLoad(EmbeddedBpf.Probe, out var elf, out var whyMissing);
        using var scratch = ProbeCgroup.Create(null, root: false);
        return ProbeProgram(Kinds.Single(k => k.Kind == "lsm"), libbpf, embedded ? elf : null, whyMissing, scratch).Status == "works";
    }

    /// <summary>
    /// The backend decision, from the probe results alone: the kernel backend needs the BPF
    /// objects, kernel BTF, a syscall hook, the cgroup socket hooks and cgroup v2 with
    /// <c>cgroup.kill</c>; otherwise MIS falls back to the simulator and says what is missing.
    /// </summary>
    internal static BackendChoice ChooseBackend(HostReport r)
    {
        bool Works(string kind) => r.Programs.Any(p => p.Kind == kind && p.Status == "works");
        string? syscallHook = Works("tp_btf") ? "tp_btf" : Works("raw_tracepoint") ? "raw_tracepoint" : null;

        var denyPoints = new List<string>();
        if (Works("lsm"))
            denyPoints.Add("lsm");
        if (r.Seccomp.UserNotification)
            denyPoints.Add("seccomp_user_notif");
        if (Works("cgroup_connect4") && Works("cgroup_sock_create"))
            denyPoints.Add("cgroup_sock");

        var missing = new List<string>();
        if (!r.Privileges.Root && !(r.Privileges.CapBpf && r.Privileges.CapSysAdmin))
            missing.Add("root (or CAP_BPF with CAP_SYS_ADMIN)");
        if (!r.BpfObjects.Embedded)
            missing.Add("BPF objects in this build");
        if (!r.Btf.Available)
            missing.Add("kernel BTF");
        if (syscallHook is null)
            missing.Add("a syscall hook (tp_btf or raw_tracepoint)");
        if (!denyPoints.Contains("cgroup_sock"))
            missing.Add("cgroup socket hooks");
        if (!denyPoints.Contains("lsm") && !denyPoints.Contains("seccomp_user_notif"))
            missing.Add("a file deny point (BPF LSM or seccomp user notification)");
        if (r.Cgroup.Mount is null || !r.Cgroup.Kill)
            missing.Add("cgroup v2 with cgroup.kill");

        if (missing.Count > 0)
            return new BackendChoice("sim", denyPoints, syscallHook,
                "kernel backend unavailable, missing: " + string.Join("; ", missing) + ". Using the simulator.");
        string files = denyPoints.Contains("lsm") ? "BPF LSM" : "seccomp user notification (BPF LSM is refused here)";
        return new BackendChoice("kernel", denyPoints, syscallHook,
            $"real enforcement: files via {files}, network via cgroup socket hooks, slowdown and kill via {syscallHook}.");
    }

    private static PrivilegeReport ProbePrivileges()
    {
        var caps = ProcessCapabilities.Current();
        uint euid = Libc.Geteuid();
        return new PrivilegeReport(euid == 0, euid, caps.Has(ProcessCapabilities.Bpf),
            caps.Has(ProcessCapabilities.Perfmon), caps.Has(ProcessCapabilities.SysAdmin));
    }

    private static string? ProbeLibbpf()
    {
        try
        {
            return $"{Libbpf.MajorVersion()}.{Libbpf.MinorVersion()}";
        }
        catch (DllNotFoundException)
        {
            return null;
        }
    }

    private static BtfReport ProbeBtf(string? libbpf)
    {
        if (libbpf is null)
            return new BtfReport(false, VmlinuxBtf, 0, $"{Libbpf.Library} cannot be loaded (install libbpf1)");
        nint btf = Libbpf.BtfLoadVmlinux();
        if (btf == 0)
            return new BtfReport(false, VmlinuxBtf, 0, Errno.Describe(Marshal.GetLastPInvokeError()));
        try
        {
            return new BtfReport(true, VmlinuxBtf, Libbpf.BtfTypeCount(btf), null);
        }
        finally
        {
            Libbpf.BtfFree(btf);
        }
    }

    private static ProgramProbe ProbeProgram(ProgramKind kind, string? libbpf, byte[]? elf, string whyMissing, ProbeCgroup scratch)
    {
        ProgramProbe NotProbed(string why) => new(kind.Kind, kind.Section, false, false, "not_probed", null, why);
        if (libbpf is null)
            return NotProbed($"{Libbpf.Library} cannot be loaded (install libbpf1)");
        if (elf is null)
            return NotProbed(whyMissing);
        if (kind.Mode == AttachMode.Cgroup && scratch.Fd is null)
            return NotProbed("no cgroup to attach to: " + scratch.Error);

        using var obj = BpfObject.Open(elf, "mis_probe");
        try
        {
            if (kind.ProgType != 0)
                obj.Program(kind.Program).SetType(kind.ProgType, kind.AttachType);
            obj.LoadOnly(kind.Program);
        }
        catch (BpfLoadException e)
        {
            return new(kind.Kind, kind.Section, false, false, "refused", Errno.Name(e.Errno),
                $"load refused: {Errno.Describe(e.Errno)}");
        }

        var program = obj.Program(kind.Program);
        try
        {
            switch (kind.Mode)
            {
                case AttachMode.Tracing:
                    using (program.Attach()) { }
                    return new(kind.Kind, kind.Section, true, true, "works", null, "loaded, attached and detached");
                case AttachMode.Cgroup:
                    using (program.AttachCgroup(scratch.Fd!)) { }
                    return new(kind.Kind, kind.Section, true, true, "works", null, "loaded, attached to a scratch cgroup and detached");
                default:
                    uint retval = program.TestRun();
                    return retval == ProbeSyscallRetval
                        ? new(kind.Kind, kind.Section, true, true, "works", null, $"loaded and ran with BPF_PROG_TEST_RUN (returned {retval})")
                        : new(kind.Kind, kind.Section, true, false, "loads_only", null, $"BPF_PROG_TEST_RUN returned {retval}, expected {ProbeSyscallRetval}");
            }
        }
        catch (BpfException e)
        {
            return new(kind.Kind, kind.Section, true, false, "loads_only", Errno.Name(e.Errno),
                $"loads, but attach refused: {Errno.Describe(e.Errno)}");
        }
    }

    private static LsmReport ProbeLsm(bool root)
    {
        if (File.Exists(SecurityFsLsm))
            return LsmFrom(File.ReadAllText(SecurityFsLsm), SecurityFsLsm);
        if (!root)
            return new LsmReport([], false, SecurityFsLsm, "securityfs is not mounted and mounting it needs root");
        // securityfs is not mounted here: mount it in a private mount namespace of a child
        // process, so the host's mount table never changes.
        var psi = new ProcessStartInfo("unshare")
        {
            ArgumentList = { "--mount", "--propagation", "private", "--", "sh", "-c",
                             $"mount -t securityfs securityfs /sys/kernel/security && cat {SecurityFsLsm}" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        try
        {
            using var child = Process.Start(psi)!;
            string output = child.StandardOutput.ReadToEnd();
            string error = child.StandardError.ReadToEnd();
            child.WaitForExit();
            return child.ExitCode == 0
                ? LsmFrom(output, "securityfs mounted in a private mount namespace")
                : new LsmReport([], false, SecurityFsLsm, $"cannot mount securityfs: {error.Trim()}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return new LsmReport([], false, SecurityFsLsm, $"securityfs is not mounted and unshare is unavailable: {e.Message}");
        }
    }

    private static LsmReport LsmFrom(string list, string source)
    {
        var modules = list.Trim().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return new LsmReport(modules, modules.Contains("bpf"), source, null);
    }

    private static SeccompReport ProbeSeccomp()
    {
        var (available, errno) = Native.Seccomp.UserNotificationAvailable();
        return new SeccompReport(available, Native.Seccomp.ListedActions(), available ? null : Errno.Describe(errno));
    }

    private static LandlockReport ProbeLandlock()
    {
        var (abi, errno) = Native.Landlock.AbiVersion();
        string? error = abi > 0 ? null : errno switch
        {
            Errno.ENOSYS => "not built into this kernel (ENOSYS)",
            Errno.EOPNOTSUPP => "built in but not enabled at boot (EOPNOTSUPP)",
            _ => Errno.Describe(errno),
        };
        return new LandlockReport(abi, error);
    }

    /// <summary>
    /// A throw-away child cgroup under MIS's subtree (<c>&lt;mount&gt;/mis/doctor-PID</c>) for the
    /// cgroup checks and cgroup program attachments, removed on dispose. The <c>mis</c> parent
    /// stays: it is MIS's own subtree, and an enforcer may be creating workloads in it right now.
    /// </summary>
    private sealed class ProbeCgroup : IDisposable
    {
        private readonly string? _path;

        private ProbeCgroup(string? path, Microsoft.Win32.SafeHandles.SafeFileHandle? fd, string? error)
        {
            _path = path;
            Fd = fd;
            Error = error;
        }

        internal Microsoft.Win32.SafeHandles.SafeFileHandle? Fd { get; }

        internal string? Error { get; }

        internal bool HasFile(string name) => _path is not null && File.Exists(Path.Combine(_path, name));

        internal static ProbeCgroup Create(string? mount, bool root)
        {
            if (mount is null)
                return new ProbeCgroup(null, null, "cgroup v2 is not mounted");
            if (!root)
                return new ProbeCgroup(null, null, "creating a cgroup needs root");
            string parent = Path.Combine(mount, "mis");
            string path = Path.Combine(parent, $"doctor-{Environment.ProcessId}");
            try
            {
                Directory.CreateDirectory(path);
                return new ProbeCgroup(path, Libc.OpenDirectory(path), null);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                RemoveQuietly(path);
                return new ProbeCgroup(null, null, $"cannot create a cgroup under {parent}: {e.Message}");
            }
        }

        public void Dispose()
        {
            Fd?.Dispose();
            if (_path is not null)
                RemoveQuietly(_path);
        }

        // A cgroup directory is removed with rmdir, never recursively: its files are not files.
        private static void RemoveQuietly(string path)
        {
            try
            {
                Directory.Delete(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
    }
}
