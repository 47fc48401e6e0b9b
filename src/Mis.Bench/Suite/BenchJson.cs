using System.Text.Json.Nodes;
using Mis.Bench.Kernel;
using Mis.Bench.Workloads;
using Mis.Enforcer.Configuration;

namespace Mis.Bench.Suite;

/// <summary>The benchmark results as JSON (snake_case, nanoseconds unless a key says otherwise).</summary>
public static class BenchJson
{
    /// <summary>Bumped when a key changes meaning or disappears.</summary>
    public const int SchemaVersion = 1;

    internal static JsonObject Latency(LatencySummary s) => new()
    {
        ["count"] = s.Count,
        ["mean_ns"] = Round(s.MeanNs),
        ["p50_ns"] = Round(s.P50Ns),
        ["p99_ns"] = Round(s.P99Ns),
        ["max_ns"] = Round(s.MaxNs),
    };

    internal static JsonObject Ladder(DefconConfig c) => new()
    {
        ["thresholds"] = new JsonArray([.. c.Thresholds.Select(t => JsonValue.Create(t))]),
        ["slowdown_us"] = new JsonArray([.. c.SlowdownUs.Select(t => JsonValue.Create(t))]),
        ["kill_at_level_1"] = c.KillAtLevel1,
    };

    /// <summary>The <c>--ops</c> result as it appears in results.json.</summary>
    public static JsonObject Ops(OpsBenchResult r) => new()
    {
        ["operations"] = r.Operations,
        ["workloads"] = r.Workloads,
        ["decisions"] = r.Decisions,
        ["allowed"] = r.Allowed,
        ["denied"] = r.Denied,
        ["decision_cache"] = new JsonObject
        {
            ["size"] = r.DecisionCacheSize,
            ["hits"] = r.CacheHits,
            ["misses"] = r.CacheMisses,
            ["hit_rate"] = r.CacheHits + r.CacheMisses == 0 ? null : Math.Round((double)r.CacheHits / (r.CacheHits + r.CacheMisses), 4),
        },
        ["decision"] = Latency(r.Decision),
        ["defcon_read"] = Latency(r.DefconRead),
        ["policy_verdict"] = Latency(r.PolicyVerdict),
        ["kernel_net_decisions"] = r.KernelNetDecisions,
        ["kernel_net_decision_mean_ns"] = Round(r.KernelNetDecisionMeanNs),
        ["violations"] = r.Violations,
        ["defcon_transitions"] = r.DefconTransitions,
        ["kills"] = r.Kills,
        ["elapsed_s"] = Math.Round(r.Elapsed.TotalSeconds, 3),
        ["operations_per_s"] = Math.Round(r.Operations / r.Elapsed.TotalSeconds, 1),
        ["ladder"] = Ladder(r.Ladder),
    };

    /// <summary>The <c>--workloads</c> result as it appears in results.json (times in ms, each workload timed inside itself).</summary>
    public static JsonObject Workloads(WorkloadBenchResult r)
    {
        static double? Ms(double ns) => double.IsFinite(ns) ? Math.Round(ns / 1e6, 3) : null;
        static double? Ratio(double? ratio) => ratio is double v ? Math.Round(v, 3) : null;
        return new JsonObject
        {
            ["rounds"] = r.Rounds,
            ["user"] = r.User,
            ["modes"] = new JsonArray([.. r.Modes.Select(m => JsonValue.Create(WorkloadMath.Name(m)))]),
            ["floor_threads"] = r.FloorThreads,
            ["load_average_start"] = r.LoadAverageStart,
            ["load_average_end"] = r.LoadAverageEnd,
            ["enforcer_rss_kb"] = r.EnforcerRssKb,
            ["enforcer_peak_rss_kb"] = r.EnforcerPeakRssKb,
            ["elapsed_s"] = Math.Round(r.Elapsed.TotalSeconds, 1),
            ["workloads"] = new JsonArray([.. r.Workloads.Select(w =>
            {
                var o = new JsonObject
                {
                    ["name"] = w.Workload.Key,
                    ["description"] = w.Workload.Name,
                    ["target_ratio"] = w.Workload.Target,
                };
                foreach (var mode in r.Modes)
                    o[$"{WorkloadMath.Name(mode)}_median_ms"] = Ms(w.MedianNs(mode));
                foreach (var mode in r.Modes.Where(m => m != WorkloadMode.Bare))
                    o[$"{WorkloadMath.Name(mode)}_ratio"] = Ratio(w.Ratio(mode));
                o["target_met"] = w.TargetMet;
                o["mis_notifications_per_run"] = double.IsFinite(w.MisNotifications) ? w.MisNotifications : null;
                o["samples_ms"] = new JsonObject([.. r.Modes.Select(m => new KeyValuePair<string, JsonNode?>(WorkloadMath.Name(m),
                    new JsonArray([.. (w.SamplesNs.TryGetValue(m, out var s) ? s : []).Select(ns => JsonValue.Create(Ms(ns)))])))]);
                o["failure"] = w.Failure;
                return (JsonNode)o;
            })]),
            ["reader_scaling"] = new JsonObject([.. r.Modes.Select(m => new KeyValuePair<string, JsonNode?>(WorkloadMath.Name(m), new JsonObject
            {
                ["four_over_one"] = Ratio(r.Scaling(m)),
                ["over_bare"] = Ratio(r.ScalingOverBare(m)),
            }))]),
        };
    }

    internal static double? Round(double? value) => value is double v && double.IsFinite(v) ? Math.Round(v, 1) : null;
}
