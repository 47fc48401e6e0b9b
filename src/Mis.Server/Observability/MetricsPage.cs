using Mis.Server.Engine;
using Prometheus;

namespace Mis.Server.Observability;

/// <summary>
/// The metrics page in the Prometheus text exposition format (version 0.0.4), written by
/// prometheus-net: kernel and engine counters, per-cgroup DEFCON gauges, ring-buffer drops and the
/// per-method RPC latency histograms of <see cref="RpcMetrics"/>.
/// </summary>
/// <remarks>
/// The engine's figures are not events MIS could count as they happen: most are kernel counters
/// and per-cgroup state read from BPF maps. So they are read once per scrape, in the registry's
/// before-collect callback, and carried into prometheus-net's metrics there (counters with
/// <c>IncTo</c>, gauges with <c>Set</c>; the label sets of workloads that ended are removed).
/// </remarks>
internal sealed class MetricsPage
{
    /// <summary>The Content-Type Prometheus expects for this format.</summary>
    internal const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private static readonly string[] CgroupLabelNames = ["cgroup_id", "command"];

    private readonly CollectorRegistry _registry;
    private readonly Func<EngineStats> _stats;
    private readonly Lock _scrape = new();
    private readonly (Counter Metric, Func<EngineStats, double> Value)[] _counters;
    private readonly (Gauge Metric, Func<EngineStats, double> Value)[] _gauges;
    private readonly Gauge _cgroupDefcon, _cgroupViolations, _cgroupAnomalyScore;
    private readonly Counter _cgroupSlowdown;

    /// <summary>Adds the engine's metrics to <paramref name="rpc"/>'s registry, read from <paramref name="stats"/> at each scrape.</summary>
    internal MetricsPage(RpcMetrics rpc, Func<EngineStats> stats)
    {
        _registry = rpc.Registry;
        _stats = stats;
        var factory = Metrics.WithCustomRegistry(_registry);
        Counter Counter(string name, string help) => factory.CreateCounter(name, help);
        Gauge Gauge(string name, string help) => factory.CreateGauge(name, help);
        _counters =
        [
            (Counter("mis_decision_cache_hits_total", "File decisions answered from the policy's decision cache."), s => s.DecisionCache.Hits),
            (Counter("mis_decision_cache_misses_total", "File decisions computed (and then cached)."), s => s.DecisionCache.Misses),
            (Counter("mis_denied_total", "Operations denied, counted by the kernel's DEFCON state machine (every deny point)."), s => s.Denied),
            (Counter("mis_allowed_total", "Operations the seccomp supervisor decided to allow."), s => s.Allowed),
            (Counter("mis_learning_denied_total", "Denials in cgroups in learning mode (recorded, not escalating)."), s => s.LearningDenied),
            (Counter("mis_defcon_escalations_total", "DEFCON levels lost to escalation (kernel counter)."), s => s.DefconEscalations),
            (Counter("mis_workloads_started_total", "Workloads started over gRPC."), s => s.WorkloadsStarted),
            (Counter("mis_workloads_killed_total", "Workloads MIS killed (DEFCON 1, KillProcess, shutdown)."), s => s.WorkloadsKilled),
            (Counter("mis_kernel_kill_signals_total", "SIGKILLs the kernel programs sent at DEFCON 1."), s => s.KernelKillSignals),
            (Counter("mis_cgroup_kills_total", "cgroup.kill writes made at DEFCON 1."), s => s.CgroupKills),
            (Counter("mis_ringbuf_drops_total", "Events the kernel lost because its ring buffer was full."), s => s.RingbufDrops),
            (Counter("mis_events_lost_total", "Events decoded but dropped on the way to a reader (queue full)."), s => s.EventsLost),
            (Counter("mis_supervisor_decisions_total", "Syscalls the seccomp supervisor was asked to decide."), s => s.SupervisorDecisions),
            (Counter("mis_anomaly_kills_total", "Workloads killed for their anomaly score (learning mode, kill_on_anomaly)."), s => s.AnomalyKills),
            (Counter("mis_anomaly_windows_scored_total", "Syscall windows the anomaly model scored."), s => s.AnomalyWindows),
            (Counter("mis_anomaly_windows_skipped_total", "Syscall windows not scored (the model fell behind or failed)."), s => s.AnomalyWindowsSkipped),
        ];
        _gauges =
        [
            (Gauge("mis_anomaly_score_max", "Highest anomaly score (0..1000) among running monitored workloads; 0 when none."),
                s => s.AnomalyByCgroup.Select(a => a.Progress.Peak?.Score ?? 0).DefaultIfEmpty(0).Max()),
            (Gauge("mis_managed_cgroups", "Workloads running now."), s => s.ManagedCgroups),
            (Gauge("mis_runtime_rules", "AddRule rules in force."), s => s.RuntimeRules),
        ];
        _cgroupDefcon = factory.CreateGauge("mis_cgroup_defcon", "DEFCON level of each running workload's cgroup (5 normal .. 1).", CgroupLabelNames);
        _cgroupViolations = factory.CreateGauge("mis_cgroup_violations", "Counted violations of each running workload's cgroup (after decay).", CgroupLabelNames);
        _cgroupSlowdown = factory.CreateCounter("mis_cgroup_slowdown_seconds_total", "Time each running workload's syscalls were slowed.", CgroupLabelNames);
        _cgroupAnomalyScore = factory.CreateGauge("mis_cgroup_anomaly_score", "Highest anomaly score so far (0..1000) of each running monitored workload.", CgroupLabelNames);
        _registry.AddBeforeCollectCallback(Refresh);
    }

    /// <summary>Writes the page (every metric, read now) to <paramref name="output"/>.</summary>
    internal Task WriteAsync(Stream output, CancellationToken cancel) => _registry.CollectAndExportAsTextAsync(output, cancel);

    /// <summary>The page as text.</summary>
    internal async Task<string> RenderAsync()
    {
        using var buffer = new MemoryStream();
        await WriteAsync(buffer, CancellationToken.None).ConfigureAwait(false);
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    // One scrape's reading of the engine. Serialized: two scrapes at once must not interleave the
    // removal of ended workloads' label sets with the other's updates.
    private void Refresh()
    {
        var stats = _stats();
        lock (_scrape)
        {
            foreach (var (metric, value) in _counters)
                metric.IncTo(value(stats));
            foreach (var (metric, value) in _gauges)
                metric.Set(value(stats));

            var cgroups = stats.DefconByCgroup.Where(c => c.State is not null).Select(c => (Labels: CgroupLabels(c.CgroupId, c.Command), State: c.State!)).ToList();
            KeepOnly(_cgroupDefcon, cgroups.Select(c => c.Labels));
            KeepOnly(_cgroupViolations, cgroups.Select(c => c.Labels));
            KeepOnly(_cgroupSlowdown, cgroups.Select(c => c.Labels));
            foreach (var (labels, state) in cgroups)
            {
                _cgroupDefcon.WithLabels(labels).Set(state.Defcon);
                _cgroupViolations.WithLabels(labels).Set(state.Violations);
                _cgroupSlowdown.WithLabels(labels).IncTo(state.SlowdownNsTotal / 1e9);
            }

            var monitored = stats.AnomalyByCgroup.Select(a => (Labels: CgroupLabels(a.CgroupId, a.Command), a.Progress)).ToList();
            KeepOnly(_cgroupAnomalyScore, monitored.Select(a => a.Labels));
            foreach (var (labels, progress) in monitored)
                _cgroupAnomalyScore.WithLabels(labels).Set(progress.Peak?.Score ?? 0);
        }
    }

    private static string[] CgroupLabels(ulong id, string command) => [id.ToString(System.Globalization.CultureInfo.InvariantCulture), Path.GetFileName(command)];

    // A workload that ended leaves the page (its series ends) instead of showing its last value forever.
    private static void KeepOnly<TChild>(Collector<TChild> metric, IEnumerable<string[]> running) where TChild : ChildBase
    {
        var keep = running.Select(l => string.Join('\0', l)).ToHashSet(StringComparer.Ordinal);
        foreach (var labels in metric.GetAllLabelValues().ToList())
            if (!keep.Contains(string.Join('\0', labels)))
                metric.RemoveLabelled(labels);
    }
}
