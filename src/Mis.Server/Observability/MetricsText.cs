using System.Globalization;
using System.Text;
using Mis.Server.Engine;

namespace Mis.Server.Observability;

/// <summary>
/// Renders the metrics page in the Prometheus text exposition format (version 0.0.4): kernel
/// counters, per-cgroup DEFCON gauges, ring-buffer drops and the per-method RPC latency histograms.
/// </summary>
public static class MetricsText
{
    /// <summary>The Content-Type Prometheus expects for this format.</summary>
    internal const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    internal static string Render(EngineStats stats, RpcMetrics rpc)
    {
        var w = new StringBuilder();
        Counter(w, "mis_decision_cache_hits_total", "File decisions answered from the policy's decision cache.", (ulong)stats.DecisionCache.Hits);
        Counter(w, "mis_decision_cache_misses_total", "File decisions computed (and then cached).", (ulong)stats.DecisionCache.Misses);
        Counter(w, "mis_denied_total", "Operations denied, counted by the kernel's DEFCON state machine (every deny point).", stats.Denied);
        Counter(w, "mis_allowed_total", "Operations the seccomp supervisor decided to allow.", stats.Allowed);
        Counter(w, "mis_learning_denied_total", "Denials in cgroups in learning mode (recorded, not escalating).", stats.LearningDenied);
        Counter(w, "mis_defcon_escalations_total", "DEFCON levels lost to escalation (kernel counter).", stats.DefconEscalations);
        Counter(w, "mis_workloads_started_total", "Workloads started over gRPC.", stats.WorkloadsStarted);
        Counter(w, "mis_workloads_killed_total", "Workloads MIS killed (DEFCON 1, KillProcess, shutdown).", stats.WorkloadsKilled);
        Counter(w, "mis_kernel_kill_signals_total", "SIGKILLs the kernel programs sent at DEFCON 1.", stats.KernelKillSignals);
        Counter(w, "mis_cgroup_kills_total", "cgroup.kill writes made at DEFCON 1.", stats.CgroupKills);
        Counter(w, "mis_ringbuf_drops_total", "Events the kernel lost because its ring buffer was full.", stats.RingbufDrops);
        Counter(w, "mis_events_lost_total", "Events decoded but dropped on the way to a reader (queue full).", stats.EventsLost);
        Counter(w, "mis_supervisor_decisions_total", "Syscalls the seccomp supervisor was asked to decide.", stats.SupervisorDecisions);
        Counter(w, "mis_anomaly_kills_total", "Workloads killed for their anomaly score (learning mode, kill_on_anomaly).", stats.AnomalyKills);
        Counter(w, "mis_anomaly_windows_scored_total", "Syscall windows the anomaly model scored.", stats.AnomalyWindows);
        Counter(w, "mis_anomaly_windows_skipped_total", "Syscall windows not scored (the model fell behind or failed).", stats.AnomalyWindowsSkipped);
        Gauge(w, "mis_anomaly_score_max", "Highest anomaly score (0..1000) among running monitored workloads; 0 when none.",
            stats.AnomalyByCgroup.Select(a => a.Progress.Peak?.Score ?? 0).DefaultIfEmpty(0).Max());
        Gauge(w, "mis_managed_cgroups", "Workloads running now.", stats.ManagedCgroups);
        Gauge(w, "mis_runtime_rules", "AddRule rules in force.", stats.RuntimeRules);

        var cgroups = stats.DefconByCgroup.Where(c => c.State is not null).ToList();
        Header(w, "mis_cgroup_defcon", "gauge", "DEFCON level of each running workload's cgroup (5 normal .. 1).");
        foreach (var (id, command, state) in cgroups)
            Sample(w, "mis_cgroup_defcon", CgroupLabels(id, command), state!.Defcon);
        Header(w, "mis_cgroup_violations", "gauge", "Counted violations of each running workload's cgroup (after decay).");
        foreach (var (id, command, state) in cgroups)
            Sample(w, "mis_cgroup_violations", CgroupLabels(id, command), state!.Violations);
        Header(w, "mis_cgroup_slowdown_seconds_total", "counter", "Time each running workload's syscalls were slowed.");
        foreach (var (id, command, state) in cgroups)
            Sample(w, "mis_cgroup_slowdown_seconds_total", CgroupLabels(id, command), state!.SlowdownNsTotal / 1e9);

        Header(w, "mis_cgroup_anomaly_score", "gauge", "Highest anomaly score so far (0..1000) of each running monitored workload.");
        foreach (var (id, command, progress) in stats.AnomalyByCgroup)
            Sample(w, "mis_cgroup_anomaly_score", CgroupLabels(id, command), progress.Peak?.Score ?? 0);

        Header(w, "mis_rpc_requests_total", "counter", "gRPC calls by method and status code.");
        foreach (var (method, code, count) in rpc.Calls)
            Sample(w, "mis_rpc_requests_total", $"method=\"{Escape(method)}\",code=\"{code}\"", count);
        Header(w, "mis_rpc_duration_seconds", "histogram", "gRPC call latency by method, in seconds.");
        foreach (var (method, histogram) in rpc.Latencies)
        {
            string m = $"method=\"{Escape(method)}\"";
            long[] cumulative = histogram.Cumulative();
            for (int i = 0; i < RpcMetrics.Buckets.Length; i++)
                Sample(w, "mis_rpc_duration_seconds_bucket", $"{m},le=\"{Number(RpcMetrics.Buckets[i])}\"", cumulative[i]);
            Sample(w, "mis_rpc_duration_seconds_bucket", $"{m},le=\"+Inf\"", cumulative[^1]);
            Sample(w, "mis_rpc_duration_seconds_sum", m, histogram.SumSeconds);
            Sample(w, "mis_rpc_duration_seconds_count", m, histogram.Count);
        }
        return w.ToString();
    }

    private static string CgroupLabels(ulong id, string command) =>
        $"cgroup_id=\"{id}\",command=\"{Escape(Path.GetFileName(command))}\"";

    private static void Counter(StringBuilder w, string name, string help, double value)
    {
        Header(w, name, "counter", help);
        Sample(w, name, null, value);
    }

    private static void Gauge(StringBuilder w, string name, string help, double value)
    {
        Header(w, name, "gauge", help);
        Sample(w, name, null, value);
    }

    private static void Header(StringBuilder w, string name, string type, string help) =>
        w.Append("# HELP ").Append(name).Append(' ').Append(help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal))
         .Append('\n').Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    private static void Sample(StringBuilder w, string name, string? labels, double value)
    {
        w.Append(name);
        if (labels is not null)
            w.Append('{').Append(labels).Append('}');
        w.Append(' ').Append(Number(value)).Append('\n');
    }

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    // Label values escape backslash, double quote and newline (exposition format).
    private static string Escape(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
}
