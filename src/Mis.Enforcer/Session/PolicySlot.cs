using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;

namespace Mis.Enforcer.Session;

/// <summary>
/// A policy as the kernel holds it for a session: its network and Unix socket rules and its exec
/// deny set (<see cref="WorkloadPolicy.ExecDenySet"/>, with the session's runtime rules) under one
/// kernel policy id. Workloads launched with it are decided by it. Disposing clears its kernel rules.
/// </summary>
public sealed class PolicySlot : IDisposable
{
    private readonly EnforcementSession _session;
    private readonly IReadOnlyList<NetRule>? _netRules;
    private WorkloadPolicy _policy;
    private bool _disposed;

    internal PolicySlot(EnforcementSession session, uint id, WorkloadPolicy policy, IReadOnlyList<NetRule>? netRules)
    {
        (_session, Id, _policy, _netRules) = (session, id, policy, netRules);
    }

    /// <summary>The kernel's policy id.</summary>
    public uint Id { get; }

    /// <summary>The policy in force (swapped whole by <see cref="Replace"/>).</summary>
    public WorkloadPolicy Policy => Volatile.Read(ref _policy);

    /// <summary>
    /// Whether the kernel's BPF LSM hooks decide this policy's opens, execs and file changes: the session's
    /// backend is <see cref="FileBackend.Lsm"/> and the policy compiled into the kernel's tables.
    /// </summary>
    internal bool InKernel { get; private set; }

    /// <summary>Why a policy on the LSM backend is decided by the supervisor instead (null when it is not).</summary>
    internal string? NotInKernelReason { get; private set; }

    /// <summary>Whether it was cleared.</summary>
    internal bool Disposed => Volatile.Read(ref _disposed);

    /// <summary>Puts <paramref name="policy"/> in force (a reload): the kernel's rules are rewritten, never absent in between.</summary>
    /// <exception cref="NotSupportedException">
    /// Workloads of this policy running now are decided by the kernel's BPF LSM hooks, which cannot
    /// hold <paramref name="policy"/> (the message says why): they would go on deciding with the old
    /// rules, so nothing is replaced. Workloads launched after those end are decided by the supervisor.
    /// </exception>
    public void Replace(WorkloadPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        if (_session.DecidedInKernel(this) is > 0 and int running)
        {
            try
            {
                KernelEnforcer.CompileFilePolicy(Id, policy, _session.RuntimeRules);
            }
            catch (NotSupportedException e)
            {
                throw new NotSupportedException($"policy {policy.Name} not put in force, {Policy.Name} stays: {running} running workload(s) of it are " +
                    $"decided by the kernel's BPF LSM hooks, which cannot hold the new one ({e.Message}); reload when they have ended", e);
            }
        }
        Volatile.Write(ref _policy, policy);
        Apply();
    }

    /// <summary>Writes this policy's rules to the kernel (again: the runtime rules changed).</summary>
    internal void Apply()
    {
        if (Disposed)
            return;
        var policy = Policy;
        var kernel = _session.Kernel;
        kernel.SetNetRules(Id, _netRules ?? policy.NetRules);
        kernel.SetUnixRules(Id, policy.UnixRules);
        kernel.SetExecDeny(Id, policy.ExecDenySet(_session.RuntimeRules));
        if (_session.DenyPoint.Backend != FileBackend.Lsm)
            return;
        try
        {
            kernel.SetFilePolicy(Id, policy, _session.RuntimeRules);
            (InKernel, NotInKernelReason) = (true, null);
        }
        catch (NotSupportedException e)
        {
            // Workloads launched from now on are decided by the supervisor (Replace refuses a
            // policy the kernel cannot hold while any it decides runs).
            (InKernel, NotInKernelReason) = (false, e.Message);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (Disposed)
            return;
        Volatile.Write(ref _disposed, true);
        _session.Forget(this);
        try
        {
            _session.Kernel.SetNetRules(Id, []);
            _session.Kernel.SetUnixRules(Id, []);
            _session.Kernel.SetExecDeny(Id, []);
            if (_session.DenyPoint.Backend == FileBackend.Lsm)
                _session.Kernel.SetFilePolicy(Id, null, []);
        }
        catch (ObjectDisposedException)
        {
            // the kernel is gone, and its maps with it
        }
    }
}
