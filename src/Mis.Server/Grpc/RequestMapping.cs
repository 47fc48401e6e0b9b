using Mis.Enforcer.Configuration;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Events;
using Mis.Enforcer.Policy;
using Mis.Policy.V1;
using Mis.Server.Engine;

namespace Mis.Server.Grpc;

/// <summary>Validation of requests and the mapping between messages and engine types, kept apart from the service so each rule is stated once.</summary>
public static class RequestMapping
{
    /// <summary>Highest syscall number a rule may name (the policy files' own bound).</summary>
    internal const uint MaxSyscallNr = 1023;

    /// <summary>The event kinds of the schema (README, "Events"), for WatchEvents filters.</summary>
    internal static readonly IReadOnlyList<string> EventKinds =
        ["violation", "defcon_transition", "slowdown", "kill", "exit", "ringbuf_drop", "syscall", "trace", "anomaly"];

    internal static void RequireId(ulong value, string field)
    {
        if (value == 0)
            throw EngineException.Invalid($"{field} must not be 0");
    }

    /// <summary>Checks an AddRule request against the protocol and <c>[policy] max_rule_ttl_secs</c>.</summary>
    internal static (Verdict Action, TimeSpan Ttl) CheckAddRule(AddRuleRequest request, PolicyConfig policy)
    {
        RequireId(request.Inode, "inode");
        RequireId(request.DevId, "dev_id");
        if (request.Action > 2)
            throw EngineException.Invalid($"action {request.Action} is unknown; expected 0 (allow), 1 (deny) or 2 (trace)");
        if (request.SyscallNr > MaxSyscallNr)
            throw EngineException.Invalid($"syscall_nr {request.SyscallNr} is out of range (0..{MaxSyscallNr}; 0 = any)");
        if (request.TtlSecs > (ulong)policy.MaxRuleTtlSecs)
            throw EngineException.Invalid($"ttl_secs {request.TtlSecs} exceeds [policy] max_rule_ttl_secs ({policy.MaxRuleTtlSecs})");
        return ((Verdict)request.Action, TimeSpan.FromSeconds(request.TtlSecs));
    }

    /// <summary>Turns a RunWorkload request into a launch, resolving the user and loading the policy file now, so a typo fails before anything starts.</summary>
    /// <param name="request">The request.</param>
    /// <param name="config">The enforcer's configuration.</param>
    /// <param name="clock">The clock of rule TTLs.</param>
    /// <param name="callerIdentity">An unprivileged caller's own identity (<see cref="ControlPlaneAccess.CheckRunWorkload"/>), which the workload runs as; null: the request's <c>user</c> / <c>as_root</c>.</param>
    internal static WorkloadSpec ToSpec(RunWorkloadRequest request, MisConfig config, TimeProvider clock, WorkloadIdentity? callerIdentity = null)
    {
        if (string.IsNullOrWhiteSpace(request.Command))
            throw EngineException.Invalid("command is empty");
        string[] argv = [request.Command, .. request.Args];
        if (argv.Any(a => a.Contains('\0')) || request.Env.Any(e => e.Contains('\0')))
            throw EngineException.Invalid("command, args and env must not contain NUL characters");
        if (request.AsRoot && request.User.Length > 0)
            throw EngineException.Invalid("user and as_root exclude each other");

        WorkloadIdentity identity;
        try
        {
            identity = callerIdentity ?? (request.AsRoot ? WorkloadIdentity.Root
                : request.User.Length > 0 ? WorkloadIdentity.User(request.User) : WorkloadIdentity.Default);
        }
        catch (ArgumentException e)
        {
            throw EngineException.Invalid(e.Message);
        }

        string cwd = request.WorkingDirectory.Length == 0 ? "/" : request.WorkingDirectory;
        if (!Path.IsPathRooted(cwd))
            throw EngineException.Invalid($"working_directory \"{cwd}\" must be an absolute path");
        foreach (string entry in request.Env)
            if (entry.IndexOf('=', StringComparison.Ordinal) <= 0)
                throw EngineException.Invalid($"env entry \"{entry}\" is not NAME=VALUE");

        WorkloadPolicy? own = null;
        if (request.PolicyFile.Length > 0)
        {
            if (!Path.IsPathRooted(request.PolicyFile))
                throw EngineException.Invalid($"policy_file \"{request.PolicyFile}\" must be an absolute path");
            try
            {
                own = PolicyFile.Load(request.PolicyFile, config.Policy.MaxRuleTtlSecs, clock);
                own.DecisionCacheSize = config.Policy.DecisionCacheSize;
            }
            catch (ConfigException e)
            {
                throw EngineException.Invalid(e.Message);
            }
        }

        // Unspecified follows the configuration, and is off without a model (on without one: the engine refuses it).
        bool monitor = request.AnomalyMonitoring switch
        {
            AnomalyMonitoring.On => true,
            AnomalyMonitoring.Off => false,
            AnomalyMonitoring.Unspecified => config.Policy.AnomalyModel.Length > 0 && config.Policy.AnomalyMonitorByDefault,
            _ => throw EngineException.Invalid($"anomaly_monitoring {(int)request.AnomalyMonitoring} is unknown; expected 0 (unspecified), 1 (on) or 2 (off)"),
        };

        var names = request.Env.Select(e => e[..(e.IndexOf('=', StringComparison.Ordinal) + 1)]).ToHashSet(StringComparer.Ordinal);
        return new WorkloadSpec
        {
            Command = argv,
            Identity = identity,
            Learning = request.Learning,
            OwnPolicy = own,
            AnomalyMonitoring = monitor,
            WorkingDirectory = cwd,
            Environment = [.. LaunchSpec.DefaultEnvironment.Where(e => !names.Any(n => e.StartsWith(n, StringComparison.Ordinal))), .. request.Env],
        };
    }

    internal static CgroupInfo ToInfo(ManagedWorkload w, PolicyEngine engine)
    {
        var end = w.End;
        var state = end is null ? engine.KernelState(w) : end.State;
        var anomaly = w.Anomaly?.Progress();
        var info = new CgroupInfo
        {
            CgroupId = w.CgroupId,
            Defcon = state?.Defcon ?? DefconLevel.NotKnown,
            Violations = state?.Violations ?? 0,
            SlowdownNs = state?.SlowdownNsTotal ?? 0,
            AnomalyScore = (uint)(anomaly?.Peak?.Score ?? 0),
            AnomalyLastScore = (uint)(anomaly?.Last?.Score ?? 0),
            AnomalyWindows = (ulong)(anomaly?.WindowsScored ?? 0),
            AnomalyWindowsSkipped = (ulong)(anomaly?.WindowsSkipped ?? 0),
            AnomalyMonitoring = w.Anomaly is not null,
            AnomalyModel = w.Anomaly is null ? "" : engine.AnomalyScorer?.Name ?? "",
            Learning = state?.Learning ?? w.Spec.Learning,
            Killed = w.KillReason is not null || state?.Killed == true,
            Pid = w.Pid,
            Command = w.Spec.Command[0],
            State = end is null ? WorkloadState.Running : WorkloadState.Exited,
            ExitStatus = end?.Exit is { } exit ? exit.Signal is int s ? 128 + s : exit.ExitCode ?? 0 : 0,
            Syscalls = state?.Syscalls ?? 0,
            LearningViolations = state?.LearningViolations ?? 0,
            User = w.Spec.Identity.Name,
            OwnerUid = w.Spec.OwnerUid is { } owner ? owner : -1,
            Policy = w.PolicyName,
            CgroupPath = w.CgroupPath,
            StartedUnixMs = w.Started.ToUnixTimeMilliseconds(),
            KillReason = w.KillReason ?? (state?.Killed == true ? "DEFCON 1" : ""),
        };
        info.Args.AddRange(w.Spec.Command.Skip(1));
        return info;
    }

    internal static Event ToProto(EnforcementEvent e) => new()
    {
        Event_ = e.Event,
        Timestamp = e.Timestamp.ToUniversalTime().ToString("O", System.Globalization.CultureInfo.InvariantCulture),
        CgroupId = e.CgroupId,
        Pid = e.Pid,
        Tid = e.Tid,
        Comm = e.Comm,
        Operation = e.Operation,
        Target = e.Target,
        Decision = e.Decision,
        Defcon = e.Defcon,
        Violations = e.Violations,
        PrevDefcon = e.PrevDefcon ?? 0,
        SlowdownNs = e.SlowdownNs ?? 0,
        SyscallNr = e.SyscallNr ?? 0,
        ExitStatus = e.ExitStatus ?? 0,
        Signal = e.Signal ?? 0,
        Dropped = e.Dropped ?? 0,
        Reason = e.Reason ?? "",
        AnomalyScore = (uint)Math.Max(0, e.AnomalyScore ?? 0),
        AnomalyRaw = e.AnomalyRaw ?? 0,
        WindowSize = e.WindowSize ?? 0,
        Window = { e.Window ?? [] },
    };

    internal static GetStatsResponse ToProto(EngineStats s) => new()
    {
        CacheHits = (ulong)s.DecisionCache.Hits,
        CacheMisses = (ulong)s.DecisionCache.Misses,
        Denied = s.Denied,
        Allowed = s.Allowed,
        DefconEscalations = s.DefconEscalations,
        ProcessesKilled = s.WorkloadsKilled,
        RingbufDrops = s.RingbufDrops,
        EventsLost = s.EventsLost,
        KernelKillSignals = s.KernelKillSignals,
        CgroupKills = s.CgroupKills,
        ManagedCgroups = (uint)s.ManagedCgroups,
        WorkloadsStarted = s.WorkloadsStarted,
        SupervisorDecisions = s.SupervisorDecisions,
        RuntimeRules = (uint)s.RuntimeRules,
        LearningDenied = s.LearningDenied,
        AnomalyKills = s.AnomalyKills,
        AnomalyWindows = s.AnomalyWindows,
        AnomalyWindowsSkipped = s.AnomalyWindowsSkipped,
    };
}
