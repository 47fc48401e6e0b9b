using Mis.Enforcer.Policy;

namespace Mis.Server.Engine;

/// <summary>
/// What a workload's seccomp supervisor asks: the runtime (AddRule) rules first, then the policy
/// the workload runs under. The policy is read through <c>policy</c> on every decision, so a
/// ReloadPolicy reaches running workloads at their next decision, all rules at once (the swap is
/// one reference write).
/// </summary>
public sealed class EngineDecider(RuntimeRules runtime, Func<WorkloadPolicy> policy) : IFileDecider
{
    /// <inheritdoc />
    public Verdict Decide(FileRequest access, int defcon) =>
        runtime.Match(access)?.Action ?? policy().Decide(access, defcon);
}
