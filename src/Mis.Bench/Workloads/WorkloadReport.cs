using System.Globalization;
using Mis.Bench.Suite;

namespace Mis.Bench.Workloads;

/// <summary>The workload figures for people: the table <c>mis bench --workloads</c> prints and the README's rows.</summary>
public static class WorkloadReport
{
    /// <summary>
    /// "Scales with threads": the 4-thread reader's time over the 1-thread reader's under MIS is at
    /// most this many times bare's same quotient. Relative to bare, because on a machine with fewer
    /// cores than threads bare itself cannot reach 1.0 (on 2 cores it is about 2.0); a supervisor
    /// that serialises the threads makes it about 4.0.
    /// </summary>
    public const double ScalingTolerance = 1.25;

    /// <summary>The target of the reader's scaling as printed.</summary>
    public static readonly string ScalingTarget = $"scales with threads (≤ {ScalingTolerance.ToString("0.00", CultureInfo.InvariantCulture)}× bare's)";

    /// <summary>Whether MIS's reader scaling meets <see cref="ScalingTolerance"/> (null: not measured).</summary>
    public static bool? ScalingMet(WorkloadBenchResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        return r.ScalingOverBare(WorkloadMode.Mis) is double s ? s <= ScalingTolerance : null;
    }

    /// <summary>The BPF LSM backend's target on every workload (MIS / bare).</summary>
    public const double LsmTarget = 1.05;

    private static readonly string LsmTargetText = $"≤ {LsmTarget.ToString("0.00", CultureInfo.InvariantCulture)}×";

    private static string Ms(double ns) => double.IsFinite(ns) ? BenchFormat.Duration(ns) : "n/a";

    /// <summary>The table of medians and ratios.</summary>
    public static string Table(WorkloadBenchResult r, bool markdown)
    {
        ArgumentNullException.ThrowIfNull(r);
        var rows = r.Workloads.Select(w => (IReadOnlyList<string>)
        [
            w.Workload.Name,
            Ms(w.MedianNs(WorkloadMode.Bare)),
            Ms(w.MedianNs(WorkloadMode.Floor)),
            Ms(w.MedianNs(WorkloadMode.FloorAddfd)),
            Ms(w.MedianNs(WorkloadMode.Mis)),
            w.Failure is null ? BenchFormat.Ratio(w.Ratio(WorkloadMode.Mis)) : "FAILED",
            BenchFormat.Ratio(w.Ratio(WorkloadMode.Floor)),
            BenchFormat.Ratio(w.Ratio(WorkloadMode.FloorAddfd)),
            w.Workload.Key is WorkloadCatalog.Reader1 or WorkloadCatalog.Reader4 ? "see scaling" : w.Workload.TargetText,
            w.Failure is not null ? "no" : w.TargetMet switch { true => "yes", false => "no", null => "" },
        ]).ToList();
        if (r.Scaling(WorkloadMode.Bare) is not null)
        {
            string S(WorkloadMode m) => BenchFormat.Ratio(r.Scaling(m));
            bool? met = ScalingMet(r);
            rows.Add(
            [
                "reader scaling: time 4 threads ÷ 1 thread (1.0 = perfect)", S(WorkloadMode.Bare), S(WorkloadMode.Floor), S(WorkloadMode.FloorAddfd), S(WorkloadMode.Mis),
                $"{BenchFormat.Ratio(r.ScalingOverBare(WorkloadMode.Mis))} of bare's", $"{BenchFormat.Ratio(r.ScalingOverBare(WorkloadMode.Floor))} of bare's",
                $"{BenchFormat.Ratio(r.ScalingOverBare(WorkloadMode.FloorAddfd))} of bare's", ScalingTarget, met switch { true => "yes", false => "no", null => "" },
            ]);
        }
        string[] header = ["workload (timed inside itself)", "bare", "floor", "floor (addfd)", "MIS", "MIS / bare", "floor / bare", "addfd / bare", "target (MIS / bare)", "met"];
        if (r.Modes.Contains(WorkloadMode.MisLsm))
        {
            // The BPF LSM backend, where the kernel allows it: its target is the same for every workload.
            header = [.. header, "MIS (LSM)", "LSM / bare", $"target (LSM / bare)"];
            for (int i = 0; i < r.Workloads.Count; i++)
            {
                var w = r.Workloads[i];
                rows[i] = [.. rows[i], Ms(w.MedianNs(WorkloadMode.MisLsm)), w.Failure is null ? BenchFormat.Ratio(w.Ratio(WorkloadMode.MisLsm)) : "FAILED", LsmTargetText];
            }
            if (rows.Count > r.Workloads.Count)
                rows[^1] = [.. rows[^1], BenchFormat.Ratio(r.Scaling(WorkloadMode.MisLsm)), $"{BenchFormat.Ratio(r.ScalingOverBare(WorkloadMode.MisLsm))} of bare's", ScalingTarget];
        }
        return BenchFormat.Table(header, rows, markdown);
    }

    /// <summary>What the columns mean, and the conditions of the run.</summary>
    public static string Legend(WorkloadBenchResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        return $"Median of {r.Rounds} rounds (bare, floor, floor addfd, MIS in alternation; one warm-up round not counted), each run as {r.User}. " +
               $"floor: mis-notify-floor, {r.FloorThreads} supervisor threads answering every open/openat/openat2/creat/execve/execveat " +
               "notification CONTINUE (the notification round trip alone); floor (addfd): the same, but opens are made by the supervisor " +
               "and injected with SECCOMP_IOCTL_NOTIF_ADDFD (the floor of a deciding supervisor); MIS: launched as `mis run` launches " +
               "(built-in policy, default DEFCON ladder) with the seccomp file backend" +
               (r.Modes.Contains(WorkloadMode.MisLsm) ? "; MIS (LSM): the same with the BPF LSM file backend." : " (this kernel refuses BPF LSM: no LSM column).") +
               $" Load average {r.LoadAverageStart} at the start, {r.LoadAverageEnd} at the end; " +
               $"enforcer RSS {r.EnforcerRssKb / 1024.0:0.0} MB with a workload running (peak {r.EnforcerPeakRssKb / 1024.0:0.0} MB).";
    }

    /// <summary>Rows of the README's comparison table (metric, target, measured, met).</summary>
    public static IEnumerable<(string Metric, string Target, string Measured, bool? Met)> Rows(WorkloadBenchResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        foreach (var w in r.Workloads.Where(w => w.Workload.Key is not (WorkloadCatalog.Reader1 or WorkloadCatalog.Reader4)))
        {
            string measured = w.Failure is not null
                ? $"FAILED: {w.Failure}"
                : $"{BenchFormat.Ratio(w.Ratio(WorkloadMode.Mis))} ({Ms(w.MedianNs(WorkloadMode.Bare))} → {Ms(w.MedianNs(WorkloadMode.Mis))}; " +
                  $"floor {BenchFormat.Ratio(w.Ratio(WorkloadMode.Floor))}, addfd floor {BenchFormat.Ratio(w.Ratio(WorkloadMode.FloorAddfd))})";
            yield return ($"workload: {w.Workload.Name}, MIS / bare", w.Workload.TargetText, measured, w.Failure is not null ? false : w.TargetMet);
            if (r.Modes.Contains(WorkloadMode.MisLsm))
            {
                double? lsm = w.Ratio(WorkloadMode.MisLsm);
                yield return ($"workload: {w.Workload.Name}, MIS with BPF LSM / bare", LsmTargetText,
                    w.Failure is not null ? "FAILED" : $"{BenchFormat.Ratio(lsm)} ({Ms(w.MedianNs(WorkloadMode.Bare))} → {Ms(w.MedianNs(WorkloadMode.MisLsm))})",
                    w.Failure is not null ? false : lsm is double l ? l <= LsmTarget : null);
            }
        }
        if (r.Scaling(WorkloadMode.Bare) is not null)
        {
            var failed = r.Failures.Any(w => w.Workload.Key is WorkloadCatalog.Reader1 or WorkloadCatalog.Reader4);
            yield return ("workload: C reader, time 4 threads ÷ 1 thread (4× the work)", ScalingTarget,
                failed ? "FAILED" : $"MIS {BenchFormat.Ratio(r.Scaling(WorkloadMode.Mis))} = {BenchFormat.Ratio(r.ScalingOverBare(WorkloadMode.Mis))} of bare's " +
                $"{BenchFormat.Ratio(r.Scaling(WorkloadMode.Bare))} (floor {BenchFormat.Ratio(r.Scaling(WorkloadMode.Floor))}, addfd floor {BenchFormat.Ratio(r.Scaling(WorkloadMode.FloorAddfd))})",
                failed ? false : ScalingMet(r));
        }
        yield return ("workloads: enforcer RSS with one workload (peak)", "-",
            $"{r.EnforcerRssKb / 1024.0:0.0} MB ({r.EnforcerPeakRssKb / 1024.0:0.0} MB); load average {r.LoadAverageStart}", null);
    }
}
