using System.Text.Json.Nodes;
using Mis.Bench.Kernel;
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

    internal static double? Round(double? value) => value is double v && double.IsFinite(v) ? Math.Round(v, 1) : null;
}
