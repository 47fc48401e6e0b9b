using Grpc.Core;
using Mis.Enforcer.Defcon;
using Mis.Policy.V1;
using Mis.Server.Engine;

namespace Mis.Server.Grpc;

/// <summary>
/// mis.policy.v1.PolicyService over the <see cref="PolicyEngine"/>. Validation is in
/// <see cref="RequestMapping"/>; refusals are <see cref="EngineException"/>s, which
/// <see cref="AuditInterceptor"/> turns into status codes (and audits), so every handler here
/// reads as the happy path. Each handler first asks <see cref="ControlPlaneAccess"/> whether its
/// caller may do this, before anything else is looked at.
/// </summary>
public sealed class PolicyServiceImpl(PolicyEngine engine, ControlPlaneAccess access) : PolicyService.PolicyServiceBase
{
    private const string RuntimeRules = "runtime rules (AddRule, RemoveRule), which apply to every workload on the node,";
    /// <inheritdoc />
    public override Task<AddRuleResponse> AddRule(AddRuleRequest request, ServerCallContext context)
    {
        access.RequireAdmin(access.CallerOf(context), RuntimeRules);
        var (action, ttl) = RequestMapping.CheckAddRule(request, engine.Config.Policy);
        var rule = engine.AddRule(request.DevId, request.Inode, (int)request.SyscallNr, action, ttl);
        return Task.FromResult(new AddRuleResponse
        {
            Success = true,
            Message = $"{action.ToString().ToLowerInvariant()} rule on inode {request.Inode} dev {request.DevId} added" +
                      (rule.Expires is { } at ? $", expires {at:O}" : ", no expiry"),
            ExpiresUnixMs = rule.Expires?.ToUnixTimeMilliseconds() ?? 0,
        });
    }

    /// <inheritdoc />
    public override Task<RemoveRuleResponse> RemoveRule(RemoveRuleRequest request, ServerCallContext context)
    {
        access.RequireAdmin(access.CallerOf(context), RuntimeRules);
        RequestMapping.RequireId(request.Inode, "inode");
        RequestMapping.RequireId(request.DevId, "dev_id");
        int removed = engine.RemoveRule(request.DevId, request.Inode);
        if (removed == 0)
            throw new EngineException(EngineError.NotFound,
                $"no runtime rule on inode {request.Inode} dev {request.DevId} (policy-file rules change with ReloadPolicy)");
        return Task.FromResult(new RemoveRuleResponse { Success = true, Message = $"{removed} rule(s) removed", Removed = (uint)removed });
    }

    /// <inheritdoc />
    public override Task<ReloadPolicyResponse> ReloadPolicy(ReloadPolicyRequest request, ServerCallContext context)
    {
        access.RequireAdmin(access.CallerOf(context), "policy reloads, which change every workload's policy,");
        var policy = engine.ReloadPolicy();
        var response = new ReloadPolicyResponse
        {
            Success = true,
            Message = engine.PolicyFiles.Count == 0
                ? "no [paths] policy_files configured: the built-in policy is in force"
                : $"policy {policy.Name} reloaded from {engine.PolicyFiles.Count} file(s)",
            FileRules = (uint)policy.FileRules.Count,
            NetworkRules = (uint)policy.NetRules.Count,
            InodeRules = (uint)policy.InodeRules.Count,
        };
        response.Files.AddRange(engine.PolicyFiles);
        return Task.FromResult(response);
    }

    /// <inheritdoc />
    public override Task<GetStatsResponse> GetStats(GetStatsRequest request, ServerCallContext context)
    {
        // Node-wide counts only, nothing about any one workload: every caller may read them.
        _ = access.CallerOf(context);
        return Task.FromResult(RequestMapping.ToProto(engine.Stats()));
    }

    /// <inheritdoc />
    public override async Task<KillProcessResponse> KillProcess(KillProcessRequest request, ServerCallContext context)
    {
        RequestMapping.RequireId(request.CgroupId, "cgroup_id");
        Authorize(context, request.CgroupId);
        var outcome = await engine.KillAsync(request.CgroupId, request.Graceful, stopping: engine.Stopping).ConfigureAwait(false);
        return new KillProcessResponse
        {
            Success = true,
            Message = outcome.AlreadyExited ? $"the workload of cgroup {request.CgroupId} had already ended"
                : $"cgroup {request.CgroupId} killed and empty" + (request.Graceful ? outcome.SigkillNeeded ? " (SIGKILL after the grace period)" : " (ended on SIGTERM)" : ""),
            SigkillNeeded = outcome.SigkillNeeded,
            AlreadyExited = outcome.AlreadyExited,
            ElapsedMs = (ulong)outcome.Elapsed.TotalMilliseconds,
        };
    }

    /// <inheritdoc />
    public override Task<SetLearningModeResponse> SetLearningMode(SetLearningModeRequest request, ServerCallContext context)
    {
        RequestMapping.RequireId(request.CgroupId, "cgroup_id");
        Authorize(context, request.CgroupId);
        engine.SetLearningMode(request.CgroupId, request.Enabled);
        return Task.FromResult(new SetLearningModeResponse
        {
            Success = true,
            Message = $"learning mode {(request.Enabled ? "on" : "off")} for cgroup {request.CgroupId}",
        });
    }

    /// <inheritdoc />
    public override async Task<RunWorkloadResponse> RunWorkload(RunWorkloadRequest request, ServerCallContext context)
    {
        var caller = access.CallerOf(context);
        var callerIdentity = access.CheckRunWorkload(caller, request, out string policyFile);
        if (policyFile != request.PolicyFile)
        {
            request = request.Clone();
            request.PolicyFile = policyFile;
        }
        var spec = RequestMapping.ToSpec(request, engine.Config, engine.Clock, callerIdentity) with { OwnerUid = caller.Uid };
        var w = await engine.RunWorkloadAsync(spec).ConfigureAwait(false);
        return new RunWorkloadResponse { CgroupId = w.CgroupId, Pid = w.Pid, CgroupPath = w.CgroupPath, Policy = w.PolicyName };
    }

    /// <inheritdoc />
    public override Task<ListCgroupsResponse> ListCgroups(ListCgroupsRequest request, ServerCallContext context)
    {
        var caller = access.CallerOf(context);
        var response = new ListCgroupsResponse();
        response.Cgroups.AddRange(engine.List(request.IncludeExited).Where(w => ControlPlaneAccess.MayAct(caller, w))
            .Select(w => RequestMapping.ToInfo(w, engine)));
        return Task.FromResult(response);
    }

    /// <inheritdoc />
    public override Task<CgroupInfo> GetCgroup(GetCgroupRequest request, ServerCallContext context)
    {
        RequestMapping.RequireId(request.CgroupId, "cgroup_id");
        var w = Authorize(context, request.CgroupId);
        return Task.FromResult(RequestMapping.ToInfo(w, engine));
    }

    /// <inheritdoc />
    public override async Task<SetDefconResponse> SetDefcon(SetDefconRequest request, ServerCallContext context)
    {
        RequestMapping.RequireId(request.CgroupId, "cgroup_id");
        if (request.Level is < 1 or > 5)
            throw EngineException.Invalid($"level {request.Level} is not a DEFCON level (1..5)");
        Authorize(context, request.CgroupId);
        var outcome = await engine.SetDefconAsync(request.CgroupId, DefconLevel.From(request.Level), request.Reset).ConfigureAwait(false);
        return new SetDefconResponse { PreviousDefcon = outcome.Previous, Defcon = outcome.Defcon, Violations = outcome.Violations, Killed = outcome.Killed };
    }

    /// <inheritdoc />
    public override async Task WatchEvents(WatchEventsRequest request, IServerStreamWriter<Event> responseStream, ServerCallContext context)
    {
        if (request.Kinds.FirstOrDefault(k => !RequestMapping.EventKinds.Contains(k)) is { } unknown)
            throw EngineException.Invalid($"event kind \"{unknown}\" is unknown; expected some of: {string.Join(", ", RequestMapping.EventKinds)}");
        var caller = access.CallerOf(context);
        if (request.CgroupId != 0)
            Authorize(context, request.CgroupId);
        // An unprivileged caller watching "every cgroup" sees its own workloads' events only.
        Func<Mis.Enforcer.Events.EnforcementEvent, bool>? visible = caller.IsAdmin ? null
            : e => engine.Find(e.CgroupId) is { } w && ControlPlaneAccess.MayAct(caller, w);
        using var subscription = engine.Events.Subscribe(request.CgroupId, request.Kinds, visible);
        // Headers go out once the subscription exists: a client that awaits them knows no event
        // from then on is missed.
        await context.WriteResponseHeadersAsync([]).ConfigureAwait(false);
        try
        {
            await foreach (var e in subscription.Reader.ReadAllAsync(context.CancellationToken).ConfigureAwait(false))
                await responseStream.WriteAsync(RequestMapping.ToProto(e), context.CancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            // the client went away
            return;
        }
        // The hub ends streams only when the enforcer stops: say so, so that a client can tell a
        // restarting daemon from a stream it asked to end.
        throw new EngineException(EngineError.Unavailable, "the enforcer is shutting down: the event stream ends");
    }

    // The workload named by a request, once the caller may act on it: NOT_FOUND when this enforcer
    // never started it, PERMISSION_DENIED when it is another user's.
    private ManagedWorkload Authorize(ServerCallContext context, ulong cgroupId)
    {
        var caller = access.CallerOf(context);
        var w = engine.Find(cgroupId) ?? throw EngineException.NotManaged(cgroupId);
        ControlPlaneAccess.RequireOwner(caller, w);
        return w;
    }
}
