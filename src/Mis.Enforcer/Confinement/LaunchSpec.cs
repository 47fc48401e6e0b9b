using Microsoft.Win32.SafeHandles;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>
/// Who a workload runs as. The default is the system's <c>nobody</c> account: it exists on every
/// Debian host, so confining a workload never has to change the host's user database, and it owns
/// nothing. The price: every workload run as <c>nobody</c> shares one uid, so the DAC boundary
/// between two concurrent workloads is only what the supervisor adds (signals, ptrace and
/// /proc/PID/mem across cgroups are denied there). Give each tenant its own account with
/// <see cref="User"/> where that boundary matters.
/// </summary>
public sealed record WorkloadIdentity
{
    /// <summary>The account used when a launch names none.</summary>
    public const string DefaultUserName = "nobody";

    private WorkloadIdentity(string name, uint uid, uint gid, bool asRoot)
    {
        Name = name;
        Uid = uid;
        Gid = gid;
        AsRoot = asRoot;
    }

    /// <summary>The account name ("root" for <see cref="Root"/>, "#uid" for <see cref="Ids"/>).</summary>
    public string Name { get; }

    /// <summary>The uid the workload runs as.</summary>
    public uint Uid { get; }

    /// <summary>The primary gid the workload runs as.</summary>
    public uint Gid { get; }

    /// <summary>Uid 0 without any capability, securebits locked so exec cannot give them back.</summary>
    internal bool AsRoot { get; }

    /// <summary>uid 0 with no capabilities (<c>--as-root</c>): for workloads that expect to be root.</summary>
    public static WorkloadIdentity Root { get; } = new("root", 0, 0, asRoot: true);

    /// <summary>The default account, <see cref="DefaultUserName"/>.</summary>
    public static WorkloadIdentity Default => User(DefaultUserName);

    /// <summary>An account by name, resolved now with getpwnam (NSS), so a typo fails before anything starts.</summary>
    public static unsafe WorkloadIdentity User(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        byte[] cname = System.Text.Encoding.UTF8.GetBytes(name + "\0");
        byte[] buffer = new byte[16384];
        Libc.Passwd entry;
        Libc.Passwd* result = null;
        int rc;
        fixed (byte* n = cname)
        fixed (byte* b = buffer)
            rc = Libc.GetPwNamR(n, &entry, b, buffer.Length, &result);
        if (rc != 0)
            throw new ArgumentException($"cannot look up user '{name}': {Errno.Describe(rc)}", nameof(name));
        if (result == null)
            throw new ArgumentException($"no such user '{name}' (expected an account in the passwd database)", nameof(name));
        if (entry.Uid == 0 || entry.Gid == 0)
            throw new ArgumentException($"user '{name}' has uid {entry.Uid} gid {entry.Gid}; use WorkloadIdentity.Root for uid 0", nameof(name));
        return new WorkloadIdentity(name, entry.Uid, entry.Gid, asRoot: false);
    }

    /// <summary>
    /// A numeric identity (no supplementary groups), e.g. one uid per tenant without a passwd entry,
    /// or a control-plane caller's own uid and gid; <paramref name="name"/> is what reports show
    /// (default <c>#uid</c>).
    /// </summary>
    /// <exception cref="ArgumentException">uid or gid is 0.</exception>
    public static WorkloadIdentity Ids(uint uid, uint gid, string? name = null)
    {
        if (uid == 0 || gid == 0)
            throw new ArgumentException($"uid {uid} gid {gid}: use WorkloadIdentity.Root for uid/gid 0");
        return new WorkloadIdentity(name ?? $"#{uid}", uid, gid, asRoot: false);
    }

    /// <summary>The launcher's identity arguments.</summary>
    internal IEnumerable<string> LauncherArguments() => AsRoot
        ? ["--as-root"]
        : ["--uid", Uid.ToString(System.Globalization.CultureInfo.InvariantCulture),
           "--gid", Gid.ToString(System.Globalization.CultureInfo.InvariantCulture)];
}

/// <summary>What to start and how; see <see cref="WorkloadLauncher.Launch"/>.</summary>
public sealed record LaunchSpec
{
    /// <summary>
    /// The minimal environment used when none is given: nothing of the enforcer's own environment
    /// (tokens, credentials, socket paths) reaches a workload unless the caller passes it on.
    /// </summary>
    public static readonly IReadOnlyList<string> DefaultEnvironment =
        ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "HOME=/"];

    /// <summary>The workload's cgroup directory (absolute, inside the cgroup2 mount); it must exist.</summary>
    public required string CgroupPath { get; init; }

    /// <summary>The command and its arguments; the command is looked up in the PATH of <see cref="Environment"/>.</summary>
    public required IReadOnlyList<string> Command { get; init; }

    /// <summary>Who the workload runs as; null means <see cref="WorkloadIdentity.Default"/>.</summary>
    internal WorkloadIdentity? Identity { get; init; }

    /// <summary>The workload's environment ("NAME=value"); default <see cref="DefaultEnvironment"/>.</summary>
    internal IReadOnlyList<string> Environment { get; init; } = DefaultEnvironment;

    /// <summary>Directory to start in, entered as the workload (so it needs the workload's permissions); default "/".</summary>
    internal string WorkingDirectory { get; init; } = "/";

    /// <summary>stdin, stdout, stderr of the workload; null means /dev/null.</summary>
    internal SafeFileHandle? Stdin { get; init; }

    /// <summary>The workload's stdout; null means /dev/null.</summary>
    internal SafeFileHandle? Stdout { get; init; }

    /// <summary>The workload's stderr (also where the launcher writes setup errors); null means /dev/null.</summary>
    internal SafeFileHandle? Stderr { get; init; }

    /// <summary>
    /// A private mount namespace to start the workload in (null: the enforcer's own). The workload
    /// cannot leave it (setns, unshare and mount are refused), and the supervisor resolves the
    /// workload's paths in it (through the workload's /proc/PID/root). The caller may dispose it
    /// once <see cref="WorkloadLauncher.Launch"/> returned: the workload keeps it alive.
    /// </summary>
    internal MountNamespace? MountNamespace { get; init; }

    /// <summary>
    /// The kernel's BPF LSM hooks decide this workload's opens, execs and the changes the path
    /// hooks see (its cgroup is managed with them; bpf/include/mis_lsm.h): the launcher's seccomp
    /// filter leaves those to the kernel and still sends the supervisor everything else it decides.
    /// </summary>
    internal bool FilesInKernel { get; init; }

    /// <summary>
    /// The most tasks (processes and threads) the workload's cgroup may hold; a fork beyond fails
    /// with EAGAIN. Enforced by a pids controller (see <see cref="Cgroups.PidsCap"/>: v2, or a v1
    /// mirror cgroup on hybrid hosts); where the host has none, there is no cap.
    /// </summary>
    internal int MaxTasks { get; init; } = Cgroups.PidsCap.DefaultMaxTasks;

    /// <summary>How long the launcher may take to hand its seccomp listener over.</summary>
    internal TimeSpan HandoffTimeout { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>How a workload ended: exactly one of <see cref="ExitCode"/> and <see cref="Signal"/> is set.</summary>
/// <param name="ExitCode">The exit status when it exited.</param>
/// <param name="Signal">The signal number when a signal killed it.</param>
public sealed record WorkloadExit(int? ExitCode, int? Signal)
{
    /// <inheritdoc />
    public override string ToString() => Signal is int s ? $"killed by signal {s}" : $"exited with {ExitCode}";

    /// <summary>Decodes a wait status (as in waitpid and pidfd info).</summary>
    internal static WorkloadExit FromWaitStatus(int status) =>
        (status & 0x7f) == 0 ? new WorkloadExit((status >> 8) & 0xff, null) : new WorkloadExit(null, status & 0x7f);
}

/// <summary>The filesystem identity a workload's processes have (read back from /proc after the drop).</summary>
public sealed record WorkloadCredentials(uint Uid, uint Gid, IReadOnlyList<uint> Groups);

/// <summary>Starting a workload failed; <see cref="LauncherMessage"/> is mis-launch's own explanation when it gave one.</summary>
public sealed class WorkloadLaunchException(string message, string? launcherMessage = null, Exception? inner = null)
    : Exception(launcherMessage is null ? message : $"{message}: {launcherMessage}", inner)
{
    /// <summary>The launcher's error text, e.g. "open /sys/fs/cgroup/x/cgroup.procs: No such file or directory".</summary>
    internal string? LauncherMessage { get; } = launcherMessage;
}
