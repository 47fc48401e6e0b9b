namespace Mis.Enforcer.Policy;

/// <summary>
/// The rules every workload gets unless its policy says <c>builtin = false</c>: credential files are
/// off limits, writes to the kernel's control surfaces (cgroups, bpffs, sysctls) are denied, and
/// ordinary work is allowed. Escape-class syscalls (ptrace, mount, bpf, ...) are denied by the
/// confinement itself, whatever the policy says: a policy cannot switch enforcement off.
/// </summary>
internal static class BuiltinPolicy
{
    internal const string Source = "builtin";

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
        ("/sys/fs/cgroup/**", FileOps.Write, Verdict.Deny),
        ("/sys/fs/bpf/**", FileOps.Write, Verdict.Deny),
        ("/proc/sys/**", FileOps.Write, Verdict.Deny),
        ("/proc/sysrq-trigger", FileOps.Write, Verdict.Deny),
        ("/sys/kernel/**", FileOps.Write, Verdict.Deny),
    ];

    internal static IEnumerable<FileRule> Rules() =>
        FileRules.Select(r => new FileRule(Glob(r.Pattern), r.Ops, r.Action, $"{Source}: {r.Pattern}"));

    /// <summary>The built-in policy alone.</summary>
    internal static WorkloadPolicy Create(TimeProvider? clock = null) =>
        new(Source, Verdict.Allow, Rules().ToList(), [], [], clock);

    private static PathGlob Glob(string pattern) =>
        PathGlob.TryParse(pattern, out var glob, out var error) ? glob! : throw new InvalidOperationException(error);
}
