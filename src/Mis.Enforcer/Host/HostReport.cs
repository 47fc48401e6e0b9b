using System.Text.Json;
using System.Text.Json.Serialization;

namespace Mis.Enforcer.Host;

/// <summary>
/// What this host allows MIS to do, each item probed for real by <see cref="HostProbe"/>:
/// programs are loaded and attached (then detached), not guessed from the kernel version.
/// Serialised as <c>mis doctor --json</c> with snake_case names.
/// </summary>
public sealed record HostReport
{
    /// <summary>Schema version of the JSON form; bumped when a field changes meaning.</summary>
    public int SchemaVersion { get; init; } = 1;

    /// <summary>The kernel release (<c>uname -r</c>).</summary>
    public required string Kernel { get; init; }

    /// <summary>The machine architecture, e.g. "x64".</summary>
    public required string Architecture { get; init; }

    /// <summary>Who MIS runs as and which capabilities are effective.</summary>
    public required PrivilegeReport Privileges { get; init; }

    /// <summary>Kernel BTF, which CO-RE programs and tp_btf need.</summary>
    public required BtfReport Btf { get; init; }

    /// <summary>The libbpf shared library's version, or null when it cannot be loaded.</summary>
    public string? Libbpf { get; init; }

    /// <summary>Whether the BPF programs were compiled into this build, and if not, why.</summary>
    public required EmbeddedObjectsReport BpfObjects { get; init; }

    /// <summary>One entry per program kind MIS may use, in probe order.</summary>
    public required IReadOnlyList<ProgramProbe> Programs { get; init; }

    /// <summary>The active Linux security modules and whether BPF LSM is among them.</summary>
    public required LsmReport Lsm { get; init; }

    /// <summary>The cgroup v2 hierarchy.</summary>
    public required CgroupReport Cgroup { get; init; }

    /// <summary>seccomp support.</summary>
    public required SeccompReport Seccomp { get; init; }

    /// <summary>Landlock support.</summary>
    public required LandlockReport Landlock { get; init; }

    /// <summary>The enforcement backend MIS picks on this host, and why.</summary>
    public required BackendChoice Backend { get; init; }

    /// <summary>The program probe of the given kind, e.g. "tp_btf".</summary>
    public ProgramProbe Program(string kind) => Programs.Single(p => p.Kind == kind);

    /// <summary>The report as indented snake_case JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, HostReportJson.Default.HostReport);

    /// <summary>Reads a report written by <see cref="ToJson"/>.</summary>
    public static HostReport FromJson(string json) =>
        JsonSerializer.Deserialize(json, HostReportJson.Default.HostReport)
        ?? throw new JsonException("the JSON document is null");
}

/// <summary>Identity and effective capabilities of the probing process.</summary>
/// <param name="Root">Effective uid is 0.</param>
/// <param name="Euid">Effective uid.</param>
/// <param name="CapBpf">CAP_BPF effective.</param>
/// <param name="CapPerfmon">CAP_PERFMON effective.</param>
/// <param name="CapSysAdmin">CAP_SYS_ADMIN effective.</param>
public sealed record PrivilegeReport(bool Root, uint Euid, bool CapBpf, bool CapPerfmon, bool CapSysAdmin);

/// <summary>Kernel BTF as libbpf sees it.</summary>
/// <param name="Available">libbpf parsed the kernel's BTF.</param>
/// <param name="Path">Where the BTF was read from.</param>
/// <param name="Types">Number of BTF types, 0 when unavailable.</param>
/// <param name="Error">Why it is unavailable, or null.</param>
public sealed record BtfReport(bool Available, string Path, uint Types, string? Error);

/// <summary>Whether the build embedded the BPF objects.</summary>
/// <param name="Embedded">The probe object is present in the assembly.</param>
/// <param name="MissingReason">Why not, or null.</param>
public sealed record EmbeddedObjectsReport(bool Embedded, string? MissingReason);

/// <summary>Outcome of probing one BPF program kind.</summary>
/// <param name="Kind">Short kind name: tp_btf, raw_tracepoint, lsm, fentry, cgroup_connect4, cgroup_sock_create, cgroup_connect_unix, syscall.</param>
/// <param name="Section">The ELF section, i.e. the hook, that was probed.</param>
/// <param name="Loads">The kernel accepted the program.</param>
/// <param name="Attaches">The program attached (and was detached again), or for syscall programs ran under BPF_PROG_TEST_RUN.</param>
/// <param name="Status">"works", "loads_only", "refused", or "not_probed".</param>
/// <param name="Errno">Symbolic errno of the failure (e.g. "EPERM"), or null.</param>
/// <param name="Detail">Human-readable detail of the failure or of the check made.</param>
public sealed record ProgramProbe(string Kind, string Section, bool Loads, bool Attaches, string Status, string? Errno, string? Detail);

/// <summary>The security modules the kernel lists in securityfs.</summary>
/// <param name="Modules">Modules in <c>/sys/kernel/security/lsm</c>, empty when unreadable.</param>
/// <param name="BpfListed">"bpf" is among them.</param>
/// <param name="Source">How the list was read.</param>
/// <param name="Error">Why it could not be read, or null.</param>
public sealed record LsmReport(IReadOnlyList<string> Modules, bool BpfListed, string Source, string? Error);

/// <summary>The cgroup v2 hierarchy as MIS would use it.</summary>
/// <param name="Mount">Where cgroup2 is mounted, or null.</param>
/// <param name="Controllers">Controllers available at the root of the v2 hierarchy.</param>
/// <param name="Kill">A child cgroup offers <c>cgroup.kill</c>.</param>
/// <param name="Freeze">A child cgroup offers <c>cgroup.freeze</c>.</param>
/// <param name="Error">Why the child-cgroup checks could not run, or null.</param>
public sealed record CgroupReport(string? Mount, IReadOnlyList<string> Controllers, bool Kill, bool Freeze, string? Error);

/// <summary>seccomp support.</summary>
/// <param name="UserNotification">SECCOMP_RET_USER_NOTIF is available.</param>
/// <param name="Actions">Actions listed in <c>/proc/sys/kernel/seccomp/actions_avail</c>.</param>
/// <param name="Error">Why user notification is unavailable, or null.</param>
public sealed record SeccompReport(bool UserNotification, IReadOnlyList<string> Actions, string? Error);

/// <summary>Landlock support.</summary>
/// <param name="Abi">Landlock ABI version, 0 when unavailable.</param>
/// <param name="Error">Why it is unavailable, or null.</param>
public sealed record LandlockReport(int Abi, string? Error);

/// <summary>The backend MIS will use here.</summary>
/// <param name="Name">"kernel" (real enforcement) or "sim" (the in-process twin).</param>
/// <param name="DenyPoints">Where denials happen on this host, e.g. "lsm", "seccomp_user_notif", "cgroup_sock".</param>
/// <param name="SyscallHook">The syscall-stream / slowdown hook: "tp_btf", "raw_tracepoint" or null.</param>
/// <param name="Reason">One sentence on why this backend was picked.</param>
public sealed record BackendChoice(string Name, IReadOnlyList<string> DenyPoints, string? SyscallHook, string Reason);

/// <summary>The JSON form of <see cref="HostReport"/> (<c>mis doctor --json</c>; source-generated, snake_case).</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(HostReport))]
public sealed partial class HostReportJson : JsonSerializerContext;
