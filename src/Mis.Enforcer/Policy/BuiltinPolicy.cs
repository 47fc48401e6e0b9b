namespace Mis.Enforcer.Policy;

/// <summary>
/// The rules every workload gets unless its policy says <c>builtin = false</c>: credential files are
/// off limits, writes to the kernel's control surfaces (cgroups, bpffs, sysctls) are denied, and
/// ordinary work is allowed. Escape-class syscalls (ptrace, mount, bpf, ...) are denied by the
/// confinement itself, whatever the policy says: a policy cannot switch enforcement off.
/// </summary>
public static class BuiltinPolicy
{
    /// <summary>The source every built-in rule names (rules from files name their file and line).</summary>
    public const string Source = "builtin";

    /// <summary>(pattern, ops, action) in decision order.</summary>
    internal static readonly (string Pattern, FileOps Ops, Verdict Action)[] FileRules =
    [
        // Public keys are not secrets; keep them readable before the private-key rule below.
        ("/**/.ssh/*.pub", FileOps.Read, Verdict.Allow),
        ("/etc/shadow", FileOps.All, Verdict.Deny),
        ("/etc/shadow-", FileOps.All, Verdict.Deny),
        ("/etc/gshadow", FileOps.All, Verdict.Deny),
        ("/etc/gshadow-", FileOps.All, Verdict.Deny),
        ("/etc/sudoers", FileOps.All, Verdict.Deny),
        ("/etc/sudoers.d/**", FileOps.All, Verdict.Deny),
        ("/etc/ssh/ssh_host_*_key", FileOps.All, Verdict.Deny),
        ("/**/.ssh/id_*", FileOps.All, Verdict.Deny),
        ("/**/.ssh/authorized_keys", FileOps.Write, Verdict.Deny),
        // The kernel's control surfaces. sysfs and /proc/sys files check only file permissions,
        // so a uid-0 workload without capabilities (--as-root) could otherwise write them.
        ("/sys/**", FileOps.Write, Verdict.Deny),
        ("/proc/sys/**", FileOps.Write, Verdict.Deny),
        ("/proc/sysrq-trigger", FileOps.Write, Verdict.Deny),
        // Device nodes: the harmless ones are explicitly allowed (so they stay usable at DEFCON 2),
        // everything else is denied: raw disks would bypass every file rule, and uid 0 owns them.
        ("/dev/null", FileOps.Read | FileOps.Write, Verdict.Allow),
        ("/dev/zero", FileOps.Read | FileOps.Write, Verdict.Allow),
        ("/dev/full", FileOps.Read | FileOps.Write, Verdict.Allow),
        ("/dev/random", FileOps.Read, Verdict.Allow),
        ("/dev/urandom", FileOps.Read, Verdict.Allow),
        ("/dev/tty", FileOps.Read | FileOps.Write, Verdict.Allow),
        ("/dev/ptmx", FileOps.Read | FileOps.Write, Verdict.Allow),
        ("/dev/pts/*", FileOps.Read | FileOps.Write, Verdict.Allow),
        ("/dev/shm/**", FileOps.Read | FileOps.Write, Verdict.Allow),
        ("/dev/mqueue/**", FileOps.Read | FileOps.Write, Verdict.Allow),
        ("/dev/**", FileOps.All, Verdict.Deny),
    ];

    /// <summary>
    /// Unix socket names every workload may reach: glibc asks nscd on every user or group lookup
    /// (`id`, `ls -l`), connecting whether or not nscd runs; a read-only name service.
    /// </summary>
    internal static readonly string[] UnixAllowed = ["/var/run/nscd/socket", "/run/nscd/socket"];

    /// <summary>The built-in Unix socket rules.</summary>
    public static IEnumerable<UnixRule> UnixRules() =>
        UnixAllowed.Select(n => new UnixRule(n, Verdict.Allow, $"{Source}: {n}"));

    /// <summary>The built-in file rules, in decision order (after a policy's own).</summary>
    public static IEnumerable<FileRule> Rules() =>
        FileRules.Select(r => new FileRule(Glob(r.Pattern), r.Ops, r.Action, $"{Source}: {r.Pattern}"));

    /// <summary>The built-in policy alone.</summary>
    public static WorkloadPolicy Create(TimeProvider? clock = null) =>
        new(Source, Verdict.Allow, Rules().ToList(), [], [], clock) { UnixRules = UnixRules().ToList() };

    private static PathGlob Glob(string pattern) =>
        PathGlob.TryParse(pattern, out var glob, out var error) ? glob! : throw new InvalidOperationException(error);
}
