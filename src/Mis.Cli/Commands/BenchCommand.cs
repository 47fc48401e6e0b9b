using System.CommandLine;
using System.Text.Json;
using Mis.Cli.Benchmarks;
using Mis.Enforcer.Bench;
using Mis.Enforcer.Kernel;

namespace Mis.Cli.Commands;

/// <summary><c>mis bench</c>: MIS's performance, measured for real on this machine.</summary>
internal static class BenchCommand
{
    internal static Command Create()
    {
        var ops = new Option<int>("--ops")
        {
            Description = "Operations of the mix (allowed and denied opens, connects, execs) to run through the real enforcer.",
            DefaultValueFactory = _ => 10_000,
        };
        ops.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() <= 0)
                r.AddError($"--ops must be a positive number of operations, got {r.GetValueOrDefault<int>()}");
        });
        var seed = new Option<ulong>("--seed") { Description = "Seeds the mix (which operation comes when).", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Print the results as JSON (snake_case, schema_version 1) instead of a table." };
        var command = new Command("bench",
            "Measure MIS for real: N policy-checked operations through the real enforcer in a managed cgroup (decision latency " +
            "where the decision is made, DEFCON transitions, kills). Needs root.")
        {
            ops, seed, json,
        };
        command.SetAction(result =>
        {
            bool asJson = result.GetValue(json);
            if (!Environment.IsPrivilegedProcess)
            {
                Console.Error.WriteLine("mis bench: needs root (it runs workloads under the real kernel enforcer); run it with sudo");
                return 2;
            }
            var progress = new BenchProgress();
            try
            {
                progress.Stage($"{result.GetValue(ops)} operations");
                var r = OpsBench.Run(new OpsBenchOptions
                {
                    Operations = result.GetValue(ops),
                    Seed = result.GetValue(seed),
                    Progress = (done, total) => progress.Update($"{done}/{total}"),
                });
                progress.Done();
                if (asJson)
                {
                    var root = new System.Text.Json.Nodes.JsonObject { ["schema_version"] = BenchJson.SchemaVersion, ["ops"] = BenchJson.Ops(r) };
                    Console.WriteLine(root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                }
                else
                {
                    Console.Write(RenderOps(r));
                }
                return 0;
            }
            catch (KernelUnavailableException e)
            {
                progress.Done();
                Console.Error.WriteLine($"mis bench: {e.Message}");
                return 2;
            }
        });
        return command;
    }

    /// <summary>The seed's table, measured, for people.</summary>
    internal static string RenderOps(OpsBenchResult r)
    {
        var w = new StringWriter();
        w.WriteLine($"MIS bench: {r.Operations} operations of the mix in {r.Workloads} workloads, {r.Elapsed.TotalSeconds:0.0} s " +
                    $"({r.Decisions} file/exec decisions: {r.Allowed} allowed, {r.Denied} denied; {r.KernelNetDecisions} network decisions in the kernel)");
        w.WriteLine();
        w.Write(BenchFormat.Table(["metric", "seed (claimed, never measured)", "MIS (measured here)"],
        [
            ["decision cache hit rate", "-", "n/a: MIS keeps no decision cache"],
            ["decision latency p50", "3.1 µs", BenchFormat.Duration(r.Decision.P50Ns)],
            ["decision latency p99", "8.7 µs", BenchFormat.Duration(r.Decision.P99Ns)],
            ["  of which DEFCON read p50 / p99", "-", $"{BenchFormat.Duration(r.DefconRead.P50Ns)} / {BenchFormat.Duration(r.DefconRead.P99Ns)}"],
            ["  of which policy verdict p50 / p99", "-", $"{BenchFormat.Duration(r.PolicyVerdict.P50Ns)} / {BenchFormat.Duration(r.PolicyVerdict.P99Ns)}"],
            ["kernel network decision (mean)", "-", BenchFormat.Duration(r.KernelNetDecisionMeanNs)],
            ["violations", "-", r.Violations.ToString()],
            ["DEFCON transitions", "-", r.DefconTransitions.ToString()],
            ["kills", "-", r.Kills.ToString()],
        ], markdown: false));
        w.WriteLine();
        w.WriteLine($"Ladder: thresholds [{string.Join(", ", r.Ladder.Thresholds)}], slowdown [{string.Join(", ", r.Ladder.SlowdownUs)}] µs. " +
                    "A decision is timed in the seccomp supervisor: the cgroup's DEFCON read from the kernel plus the policy's verdict.");
        return w.ToString();
    }
}
