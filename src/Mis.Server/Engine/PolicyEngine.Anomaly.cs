using Mis.Enforcer.Configuration;
using Mis.Enforcer.Events;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Run;
using Mis.Server.Observability;

namespace Mis.Server.Engine;

// Online anomaly scoring of monitored workloads, as `mis run --learn --anomaly-model` does it (the
// semantics are written in policy.proto, RunWorkloadRequest.anomaly_monitoring): the kernel's
// learning-mode syscall stream feeds one AnomalyMonitor per workload; a window above the threshold
// kills the cgroup when kill_on_anomaly is on and the cgroup is still in learning mode.
public sealed partial class PolicyEngine
{
    internal const string AnomalyModelKey = "policy.anomaly_model";

    /// <summary>The kill reason of a workload killed for its anomaly score (CgroupInfo.kill_reason).</summary>
    internal const string AnomalyKillReason = "anomaly";

    // Waiting for the pump to hand over a finished workload's last syscalls before its last window is scored.

    private readonly IOnlineScorer? _scorer;
    private long _anomalyKills;
    private long _anomalyWindowsFinished;
    private long _anomalySkippedFinished;

    /// <summary>The model scoring monitored workloads (null: <c>[policy] anomaly_model</c> is empty).</summary>
    internal IOnlineScorer? AnomalyScorer => _scorer;

    // Loads [policy] anomaly_model before anything else is set up; every failure is a configuration
    // error at the key, so `mis enforcer` exits 2 naming file, line and key.
    private static IOnlineScorer? LoadAnomalyModel(EngineOptions options)
    {
        string configured = options.Config.Policy.AnomalyModel;
        if (configured.Length == 0)
            return null;
        string file = options.ConfigPath ?? "configuration";
        string path = Path.IsPathRooted(configured) || options.ConfigDirectory is null
            ? Path.GetFullPath(configured)
            : Path.GetFullPath(Path.Combine(options.ConfigDirectory, configured));
        if (options.AnomalyModelLoader is not { } load)
            throw KeyError(file, $"cannot load \"{path}\": this host was started without an anomaly model loader");
        IOnlineScorer scorer;
        try
        {
            scorer = load(path);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or InvalidOperationException
                                      or NotSupportedException or ArgumentException or DllNotFoundException or TypeInitializationException)
        {
            throw KeyError(file, $"cannot load the anomaly model \"{path}\": {e.Message}", e);
        }
        if (scorer.WindowSize < 1 || scorer.Stride < 1)
        {
            (scorer as IDisposable)?.Dispose();
            throw KeyError(file, $"\"{path}\" has window {scorer.WindowSize} and stride {scorer.Stride}; both must be at least 1");
        }
        return scorer;

        ConfigException KeyError(string configFile, string detail, Exception? inner = null) =>
            options.ConfigPath is null
                ? new ConfigException(configFile, 0, 0, AnomalyModelKey, detail, inner)
                : ConfigBinder.ErrorAtKey(configFile, AnomalyModelKey, detail, inner);
    }

    // Made by the session before the workload's first instruction; `owner` is set before it runs.
    private AnomalyMonitor StartAnomalyMonitor(ulong cgroupId, Func<ManagedWorkload?> owner)
    {
        var scorer = _scorer ?? throw NoAnomalyModel();
        var settings = new AnomalySettings(Config.Policy.AnomalyThreshold, Config.Policy.KillOnAnomaly)
        {
            // Killing by score is learning mode's rule: a window scored after SetLearningMode(false)
            // (or after the teardown unmanaged the cgroup) is reported instead.
            KillVeto = () => StillLearning(cgroupId) ? null : "not killed: the cgroup is not in learning mode",
            ReportCrossings = true,
        };
        return new AnomalyMonitor(scorer, settings, cgroupId, Events.Publish, () =>
        {
            if (owner() is { } w)
                KillForAnomaly(w);
        });
    }

    // Asked on the monitor's worker thread, which must not fault: a kernel already closed (a
    // teardown that outlasted the shutdown's wait) is no learning mode.
    private bool StillLearning(ulong cgroupId)
    {
        try
        {
            return _session.Kernel.State(cgroupId) is { Learning: true };
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    private static EngineException NoAnomalyModel() => new(EngineError.FailedPrecondition,
        "anomaly_monitoring is ON, but this enforcer has no anomaly model: set [policy] anomaly_model in its configuration");

    // On the monitor's worker thread, where an exception would fault the monitor: failures are logged.
    private void KillForAnomaly(ManagedWorkload w)
    {
        if (w.TrySetKillReason(AnomalyKillReason))
            Interlocked.Increment(ref _anomalyKills);
        var hit = w.Anomaly?.Progress().Killed;
        if (hit is not null)
            _log.AnomalyKill(w.CgroupId, hit.Score, Config.Policy.AnomalyThreshold, _scorer?.Name ?? "", hit.Raw, hit.Tid, string.Join(' ', hit.Window));
        try
        {
            w.Cgroup.Kill();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            _log.TeardownFailed(w.CgroupId, $"anomaly kill: {e.Message}");
        }
    }
}
