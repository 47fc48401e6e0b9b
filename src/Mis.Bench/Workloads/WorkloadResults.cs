namespace Mis.Bench.Workloads;

/// <summary>How a workload is run.</summary>
public enum WorkloadMode
{
    /// <summary>As the same user in the same directory, without MIS or any filter.</summary>
    Bare,

    /// <summary>Under mis-notify-floor: opens and execs notify, every notification answered CONTINUE (the round trip alone).</summary>
    Floor,

    /// <summary>Under mis-notify-floor: opens made by the supervisor and injected with ADDFD (the floor of a deciding supervisor).</summary>
    FloorAddfd,

    /// <summary>Under MIS with the seccomp file backend, launched as <c>mis run</c> launches: built-in policy, default DEFCON ladder.</summary>
    Mis,

    /// <summary>The same with the BPF LSM file backend: measured only where the kernel lets <c>lsm/</c> programs load.</summary>
    MisLsm,
}

/// <summary>The arithmetic of the workload table: medians of repeated runs and their ratios.</summary>
public static class WorkloadMath
{
    /// <summary>The median (the mean of the two middle values of an even count); NaN for no value.</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0)
            return double.NaN;
        var sorted = values.Order().ToArray();
        int middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    /// <summary><paramref name="value"/> / <paramref name="baseline"/>; null when either is missing or the baseline is not positive.</summary>
    public static double? Ratio(double value, double baseline) =>
        double.IsFinite(value) && double.IsFinite(baseline) && baseline > 0 ? value / baseline : null;

    /// <summary>JSON and table name of a mode.</summary>
    public static string Name(WorkloadMode mode) => mode switch
    {
        WorkloadMode.Bare => "bare",
        WorkloadMode.Floor => "floor",
        WorkloadMode.FloorAddfd => "floor_addfd",
        WorkloadMode.Mis => "mis",
        WorkloadMode.MisLsm => "mis_lsm",
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };
}

/// <summary>What one workload measured: its elapsed times (timed inside it) per mode.</summary>
public sealed record WorkloadFigures
{
    /// <summary>The workload.</summary>
    public required WorkloadDefinition Workload { get; init; }

    /// <summary>Elapsed nanoseconds of each counted run, per mode, in the order they ran.</summary>
    public required IReadOnlyDictionary<WorkloadMode, IReadOnlyList<double>> SamplesNs { get; init; }

    /// <summary>Notifications MIS's supervisor decided per run under MIS (whole process, start-up included), median.</summary>
    public required double MisNotifications { get; init; }

    /// <summary>Why the workload's row failed (a denial under MIS, a non-zero exit, no time printed); null: it ran clean.</summary>
    public string? Failure { get; init; }

    /// <summary>The median of <paramref name="mode"/>'s runs (NaN: none ran).</summary>
    public double MedianNs(WorkloadMode mode) =>
        SamplesNs.TryGetValue(mode, out var samples) ? WorkloadMath.Median(samples) : double.NaN;

    /// <summary>Median of <paramref name="mode"/> / median bare.</summary>
    public double? Ratio(WorkloadMode mode) => WorkloadMath.Ratio(MedianNs(mode), MedianNs(WorkloadMode.Bare));

    /// <summary>Whether the MIS ratio meets the target (null: no target, or no ratio).</summary>
    public bool? TargetMet => Workload.Target is double t && Ratio(WorkloadMode.Mis) is double r ? r <= t : null;
}

/// <summary>What <c>mis bench --workloads</c> measured.</summary>
public sealed record WorkloadBenchResult
{
    /// <summary>Counted rounds (one warm-up round of each mode ran first and counts in nothing).</summary>
    public required int Rounds { get; init; }

    /// <summary>Every workload, in the order they ran.</summary>
    public required IReadOnlyList<WorkloadFigures> Workloads { get; init; }

    /// <summary>The modes measured, in the order each round runs them.</summary>
    public required IReadOnlyList<WorkloadMode> Modes { get; init; }

    /// <summary>Supervisor threads of the floor.</summary>
    public required int FloorThreads { get; init; }

    /// <summary>The user every mode runs the workloads as.</summary>
    public required string User { get; init; }

    /// <summary>/proc/loadavg's three averages when the bench started.</summary>
    public required string LoadAverageStart { get; init; }

    /// <summary>/proc/loadavg's three averages when it ended.</summary>
    public required string LoadAverageEnd { get; init; }

    /// <summary>The enforcer's resident memory (this process: session, supervisor, event reader), kB: the largest seen at the end of a run under MIS.</summary>
    public required long EnforcerRssKb { get; init; }

    /// <summary>The enforcer's peak resident memory (VmHWM) at the end, kB.</summary>
    public required long EnforcerPeakRssKb { get; init; }

    /// <summary>Wall-clock duration of the whole bench.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>The figures of the workload with <paramref name="key"/>, if it ran.</summary>
    public WorkloadFigures? Find(string key) => Workloads.FirstOrDefault(w => w.Workload.Key == key);

    /// <summary>Time with 4 reader threads (4× the work) ÷ time with 1, under <paramref name="mode"/>: 1.0 scales perfectly, 4.0 is serialised.</summary>
    public double? Scaling(WorkloadMode mode) =>
        Find(WorkloadCatalog.Reader1) is { } one && Find(WorkloadCatalog.Reader4) is { } four
            ? WorkloadMath.Ratio(four.MedianNs(mode), one.MedianNs(mode))
            : null;

    /// <summary>
    /// <see cref="Scaling"/> of <paramref name="mode"/> over bare's: 1.0 means the mode scales as
    /// well as the hardware lets the bare workload scale (on 2 cores bare itself cannot reach 1.0).
    /// </summary>
    public double? ScalingOverBare(WorkloadMode mode) =>
        Scaling(mode) is double s && Scaling(WorkloadMode.Bare) is double b ? WorkloadMath.Ratio(s, b) : null;

    /// <summary>Workloads whose row failed.</summary>
    public IEnumerable<WorkloadFigures> Failures => Workloads.Where(w => w.Failure is not null);
}
