using Mis.Enforcer.Configuration;
using Mis.Enforcer.Policy;

namespace Mis.Server.Engine;

/// <summary>
/// The policy built from <c>[paths] policy_files</c>: every file parsed, then merged into one
/// <see cref="WorkloadPolicy"/>. All or nothing: the first file that does not parse throws, so a
/// caller never sees half of a new policy.
/// </summary>
/// <remarks>
/// How several files merge (one file alone behaves exactly as <c>mis run --policy</c>):
/// file and network rules keep file order, first match wins; the built-in rules come last, once,
/// unless some file says <c>builtin = false</c>; <c>[[rule]]</c> entries of a later file take
/// precedence over an earlier file's (as if each file's were added in turn with AddRule); the
/// default action is <c>deny</c> if any file says so (the stricter one wins).
/// </remarks>
public static class PolicySet
{
    private const string BuiltinSourcePrefix = BuiltinPolicy.Source + ":";

    /// <summary>The files resolved against <paramref name="baseDirectory"/> (relative paths are relative to the config file).</summary>
    internal static IReadOnlyList<string> Resolve(IReadOnlyList<string> files, string? baseDirectory) =>
        files.Select(f => Path.IsPathRooted(f) || baseDirectory is null ? f : Path.GetFullPath(Path.Combine(baseDirectory, f))).ToList();

    /// <summary>Loads and merges <paramref name="files"/>; none gives the built-in policy.</summary>
    /// <exception cref="ConfigException">A file is missing or does not parse (file:line:column in the message).</exception>
    internal static WorkloadPolicy Load(IReadOnlyList<string> files, long maxTtlSecs, TimeProvider clock)
    {
        if (files.Count == 0)
            return BuiltinPolicy.Create(clock);
        var parsed = files.Select(f => PolicyFile.Load(f, maxTtlSecs, clock)).ToList();
        if (parsed.Count == 1)
            return parsed[0];

        bool builtin = parsed.All(p => p.FileRules.Any(IsBuiltin));
        var fileRules = parsed.SelectMany(p => p.FileRules.Where(r => !IsBuiltin(r))).ToList();
        if (builtin)
            fileRules.AddRange(BuiltinPolicy.Rules());
        var inodeRules = Enumerable.Reverse(parsed).SelectMany(p => p.InodeRules).ToList();
        var defaultAction = parsed.Any(p => p.DefaultAction == Verdict.Deny) ? Verdict.Deny : Verdict.Allow;
        return new WorkloadPolicy(string.Join("+", parsed.Select(p => p.Name)), defaultAction, fileRules,
            parsed.SelectMany(p => p.NetRules).ToList(), inodeRules, clock)
        {
            UnixRules = parsed.SelectMany(p => p.UnixRules.Where(r => !r.Source.StartsWith(BuiltinSourcePrefix, StringComparison.Ordinal)))
                .Concat(builtin ? BuiltinPolicy.UnixRules() : []).ToList(),
        };
    }

    private static bool IsBuiltin(FileRule rule) => rule.Source.StartsWith(BuiltinSourcePrefix, StringComparison.Ordinal);
}
