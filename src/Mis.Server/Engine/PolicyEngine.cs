using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;
using Mis.Enforcer.Run;
using Mis.Enforcer.Session;
using Mis.Server.Observability;

namespace Mis.Server.Engine;

/// <summary>Settings of a <see cref="PolicyEngine"/>.</summary>
public sealed record EngineOptions
{
    /// <summary>The validated configuration.</summary>
    public required MisConfig Config { get; init; }

    /// <summary>Directory of the config file: relative <c>policy_files</c> are relative to it (null: the working directory).</summary>
    internal string? ConfigDirectory { get; init; }

    /// <summary>The clock for rule TTLs (tests inject a fake one).</summary>
    internal TimeProvider Clock { get; init; } = TimeProvider.System;

    /// <summary>mis-launch; null: beside the assemblies.</summary>
    internal string? LauncherPath { get; init; }

    /// <summary>The configuration file, named in errors about its values (null: the built-in defaults).</summary>
    internal string? ConfigPath { get; init; }

    /// <summary>
    /// Loads <c>[policy] anomaly_model</c> (the CLI passes Mis.Anomaly's loader, so the server never
    /// depends on the model libraries); it throws when the file is unreadable or not a model. Null:
    /// a configured model is a configuration error.
    /// </summary>
    internal Func<string, IOnlineScorer>? AnomalyModelLoader { get; init; }

    /// <summary>Services the gRPC server hosts besides PolicyService (the CLI passes the kernel episodes of Mis.Gym.Server).</summary>
    internal IReadOnlyList<Hosting.HostedGrpcService> Services { get; init; } = [];
}

/// <summary>
/// MIS as a long-lived policy engine: the kernel enforcer, this process's workload cgroups (and
/// their dead-man guard), the workloads started over gRPC, the policy from
/// <c>[paths] policy_files</c> and the runtime rules. The gRPC layer is a thin mapping onto it.
/// Locks are held only to read or swap references, never while waiting for a process, so a slow
/// graceful kill never delays another request.
/// </summary>
public sealed partial class PolicyEngine : IAsyncDisposable
{
    private const int FinishedKept = 256;

    private readonly EngineOptions _options;
    private readonly ILogger _log;
    private readonly StateLock _stateLock;
    private readonly EnforcementSession _session;
    private readonly PolicySlot _global;
    private readonly RuntimeRules _runtime;
    private readonly IReadOnlyList<string> _policyFiles;
    private readonly ConcurrentDictionary<ulong, ManagedWorkload> _workloads = new();
    private readonly ConcurrentQueue<ManagedWorkload> _finished = new();
    private readonly Lock _gate = new();
    private readonly Lock _reloadGate = new();
    private readonly Lock _statsGate = new();
    // Cancelled when the stop begins: RPCs waiting on a workload (a graceful kill's grace, DEFCON
    // 1's drain) stop waiting and answer UNAVAILABLE instead of holding the shutdown up.
    private readonly CancellationTokenSource _stoppingSource = new();
    private bool _stopping;
    private int _disposed;
    private long _started;
    private long _killed;
    private long _allowedFinished;
    private long _decisionsFinished;
    private ulong _learningDeniedFinished;
    // Hits and misses of the decision caches of policies no longer in use (reloaded, or a finished workload's own).
    private DecisionCacheStats _decisionCacheRetired;
    private PolicyEngine(EngineOptions options, ILoggerFactory logs, IReadOnlyList<string> policyFiles, StateLock stateLock,
        EnforcementSession session, PolicySlot global, EventHub events, IOnlineScorer? scorer)
    {
        _scorer = scorer;
        _options = options;
        _log = logs.CreateLogger("Mis.Server.Engine");
        _policyFiles = policyFiles;
        _stateLock = stateLock;
        _session = session;
        _global = global;
        _runtime = new RuntimeRules(options.Clock);
        Events = events;
        _runtime.Changed += OnRuntimeRulesChanged;
    }

    /// <summary>The configuration the engine runs with.</summary>
    internal MisConfig Config => _options.Config;

    /// <summary>How it was started.</summary>
    internal EngineOptions Options => _options;

    /// <summary>The clock of rule TTLs.</summary>
    internal TimeProvider Clock => _options.Clock;

    /// <summary>Enforcement events for WatchEvents (and [logging] events_path).</summary>
    internal EventHub Events { get; }

    /// <summary>This process's directory of workload cgroups, <c>&lt;mount&gt;/mis/enforcer-PID</c>.</summary>
    internal string CgroupRoot => _session.CgroupRoot;

    /// <summary>The policy files in force, resolved.</summary>
    internal IReadOnlyList<string> PolicyFiles => _policyFiles;

    /// <summary>The engine's policy now (swapped whole by <see cref="ReloadPolicy"/>).</summary>
    internal WorkloadPolicy Policy => _global.Policy;

    /// <summary>
    /// Validates the policy files, takes the state lock, loads the kernel programs (attaching
    /// nothing until the first workload) and creates this process's cgroup directory and its guard.
    /// Whatever was set up is released again when a later step fails.
    /// </summary>
    /// <exception cref="ConfigException">A policy file is missing or does not parse, or <c>[policy] anomaly_model</c> does not load.</exception>
    /// <exception cref="StateLockedException">Another enforcer holds <c>[paths] state_dir</c>.</exception>
    /// <exception cref="KernelUnavailableException">The kernel backend cannot run here.</exception>
    internal static PolicyEngine Start(EngineOptions options, ILoggerFactory logs)
    {
        ArgumentNullException.ThrowIfNull(options);
        var config = options.Config;
        var files = PolicySet.Resolve(config.Paths.PolicyFiles, options.ConfigDirectory);
        var policy = PolicySet.Load(files, config.Policy.MaxRuleTtlSecs, options.Clock);
        policy.DecisionCacheSize = config.Policy.DecisionCacheSize;
        var scorer = LoadAnomalyModel(options);

        var owned = new Stack<IDisposable>();
        if (scorer is IDisposable disposableScorer)
            owned.Push(disposableScorer);
        try
        {
            var stateLock = StateLock.Acquire(config.Paths.StateDir);
            owned.Push(stateLock);
            var events = new EventHub(config.Logging.EventsPath.Length > 0 ? config.Logging.EventsPath : null);
            owned.Push(events);
            PolicyEngine? engine = null;
            var session = EnforcementSession.Open(new SessionOptions
            {
                Defcon = config.Defcon,
                Kernel = new KernelEnforcerOptions { CgroupRoot = config.Paths.CgroupRoot },
                LauncherPath = options.LauncherPath,
                OnEvent = e => engine?.OnKernelEvent(e),
                OnEventsLost = lost => engine?.OnEventsLost(lost),
            });
            owned.Push(session);
            var global = session.Install(policy);
            engine = new PolicyEngine(options, logs, files, stateLock, session, global, events, scorer);
            engine._log.EngineStarted(session.CgroupRoot, policy.Name, files.Count, config.Paths.StateDir);
            if (scorer is not null)
                engine._log.AnomalyModelLoaded(scorer.Name, scorer.WindowSize, scorer.Stride, config.Policy.AnomalyThreshold, config.Policy.KillOnAnomaly);
            return engine;
        }
        catch
        {
            while (owned.TryPop(out var resource))
                resource.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Re-reads the policy files and swaps the new policy in whole; when any file does not parse
    /// the old policy stays in force and nothing changes.
    /// </summary>
    /// <exception cref="EngineException">FailedPrecondition with the file:line:column message.</exception>
    internal WorkloadPolicy ReloadPolicy()
    {
        ThrowIfStopping();
        lock (_reloadGate)
        {
            WorkloadPolicy fresh;
            try
            {
                fresh = PolicySet.Load(_policyFiles, Config.Policy.MaxRuleTtlSecs, _options.Clock);
                fresh.DecisionCacheSize = Config.Policy.DecisionCacheSize;
                // Compile the network rules before the swap, so a rule the kernel cannot hold
                // fails the reload instead of leaving the kernel half updated.
                for (int i = 0; i < fresh.NetRules.Count; i++)
                    _ = NetRuleKeys.ToKernel(fresh.NetRules[i], _global.Id, (uint)i);
            }
            catch (Exception e) when (e is ConfigException or ArgumentException)
            {
                _log.PolicyReloadFailed(e.Message);
                throw new EngineException(EngineError.FailedPrecondition, $"policy not reloaded, the previous one stays in force: {e.Message}", e);
            }
            var retired = _global.Policy;
            try
            {
                _global.Replace(fresh);
            }
            catch (NotSupportedException e)
            {
                _log.PolicyReloadFailed(e.Message);
                throw new EngineException(EngineError.FailedPrecondition, e.Message, e);
            }
            // Its cache's counts move to the totals (a decision still running on it is not counted).
            lock (_statsGate)
                _decisionCacheRetired += retired.DecisionCacheStats;
            _log.PolicyReloaded(fresh.Name, fresh.FileRules.Count, fresh.NetRules.Count);
            return fresh;
        }
    }

    /// <summary>Adds a runtime rule (validated by the caller against the request's limits).</summary>
    internal InodeRule AddRule(ulong device, ulong inode, int syscallNr, Verdict action, TimeSpan ttl)
    {
        ThrowIfStopping();
        var rule = _runtime.Add(device, inode, syscallNr, action, ttl);
        _log.RuleAdded(inode, device, action.ToString(), ttl.TotalSeconds);
        return rule;
    }

    /// <summary>Removes the runtime rules on (device, inode); the count removed (0: there was none).</summary>
    internal int RemoveRule(ulong device, ulong inode)
    {
        ThrowIfStopping();
        int removed = _runtime.Remove(device, inode);
        if (removed > 0)
            _log.RuleRemoved(inode, device, removed);
        return removed;
    }

    /// <summary>Counters since start; see GetStatsResponse in policy.proto for what each one measures.</summary>
    internal EngineStats Stats()
    {
        List<ManagedWorkload> live;
        long allowed, decisions, killed, anomalyWindows, anomalySkipped;
        ulong learningDenied;
        DecisionCacheStats cache;
        var liveAnomaly = new List<(ulong CgroupId, string Command, AnomalyProgress Progress)>();
        lock (_statsGate)
        {
            live = [.. _workloads.Values];
            allowed = _allowedFinished + live.Sum(w => Interlocked.Read(ref w.Enforced.Decisions.Allowed));
            decisions = _decisionsFinished + live.Sum(w => Interlocked.Read(ref w.Enforced.Decisions.Notifications));
            killed = _killed;
            learningDenied = _learningDeniedFinished;
            cache = live.Aggregate(_decisionCacheRetired + Policy.DecisionCacheStats,
                (sum, w) => w.Spec.OwnPolicy is { } own ? sum + own.DecisionCacheStats : sum);
            anomalyWindows = _anomalyWindowsFinished;
            anomalySkipped = _anomalySkippedFinished;
            foreach (var w in live)
                if (w.Anomaly?.Progress() is { } progress)
                    liveAnomaly.Add((w.CgroupId, w.Spec.Command[0], progress));
        }
        var states = live.Select(w => (w.CgroupId, w.Spec.Command[0], _session.Kernel.State(w.CgroupId))).ToList();
        foreach (var (_, _, state) in states)
            learningDenied += state?.LearningViolations ?? 0;
        return new EngineStats
        {
            Denied = _session.Kernel.KernelViolations,
            DecisionCache = cache,
            Allowed = (ulong)allowed,
            DefconEscalations = _session.Kernel.KernelEscalations,
            WorkloadsKilled = (ulong)killed,
            RingbufDrops = _session.Kernel.RingbufDrops,
            EventsLost = (ulong)_session.Kernel.EventChannelDrops + (ulong)Events.Lost,
            KernelKillSignals = _session.Kernel.KernelKillSignals,
            CgroupKills = (ulong)_session.Kernel.CgroupKills,
            ManagedCgroups = live.Count,
            WorkloadsStarted = (ulong)Interlocked.Read(ref _started),
            SupervisorDecisions = (ulong)decisions,
            RuntimeRules = _runtime.ActiveCount,
            LearningDenied = learningDenied,
            DefconByCgroup = states,
            AnomalyKills = (ulong)Interlocked.Read(ref _anomalyKills),
            AnomalyWindows = (ulong)(anomalyWindows + liveAnomaly.Sum(a => a.Progress.WindowsScored)),
            AnomalyWindowsSkipped = (ulong)(anomalySkipped + liveAnomaly.Sum(a => a.Progress.WindowsSkipped)),
            AnomalyByCgroup = liveAnomaly,
        };
    }

    /// <summary>Cancelled once the engine begins to stop (<see cref="BeginStop"/>).</summary>
    internal CancellationToken Stopping => _stoppingSource.Token;

    /// <summary>
    /// The first step of stopping, before the gRPC server drains: new requests and requests
    /// waiting on a workload answer UNAVAILABLE from now on, and event streams end. The workloads
    /// keep running until <see cref="DisposeAsync"/> kills them. Safe to call twice.
    /// </summary>
    internal void BeginStop()
    {
        lock (_gate)
            _stopping = true;
        Events.Complete();
        try
        {
            _stoppingSource.Cancel();
        }
        catch (AggregateException e)
        {
            _log.TeardownFailed(0, e.Message); // a callback failed; the stop goes on
        }
    }

    /// <summary>
    /// Stops for good: refuses new work, ends every event stream, kills every workload it
    /// started and waits for their teardown, removes its cgroups, detaches the kernel programs
    /// and releases the state lock. Safe to call twice.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        List<ManagedWorkload> running;
        lock (_gate)
        {
            _stopping = true;
            running = [.. _workloads.Values];
        }
        _log.EngineStopping(running.Count);
        Events.Complete();
        _stoppingSource.Cancel();
        await Task.WhenAll(running.Select(w => KillForShutdownAsync(w))).ConfigureAwait(false);
        _runtime.Dispose();
        _session.Dispose();
        Events.Dispose();
        _stateLock.Dispose();
        _stoppingSource.Dispose();
        (_scorer as IDisposable)?.Dispose();
        _log.EngineStopped();
    }

    private void ThrowIfStopping()
    {
        if (Volatile.Read(ref _stopping))
            throw new EngineException(EngineError.Unavailable, "the enforcer is shutting down");
    }

    // Runs on the caller of AddRule/RemoveRule or on the expiry timer's thread, where an
    // exception would end the process: a failure is logged (the session's supervisors follow the
    // new rules at once; only the kernel's tables lag).
    private void OnRuntimeRulesChanged()
    {
        try
        {
            PublishRuntimeRules();
        }
        catch (ObjectDisposedException)
        {
            // the kernel is gone: shutting down
        }
        catch (Exception e)
        {
            _log.ExecBackstopNotUpdated(e.Message);
        }
    }

    // The runtime rules apply to every policy: the session hands them to every workload's
    // supervisor and writes them to the kernel's tables (the BPF LSM hooks', the exec backstop).
    private void PublishRuntimeRules() => _session.SetRuntimeRules(_runtime.Active);
}
