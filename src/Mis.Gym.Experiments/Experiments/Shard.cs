using System.Globalization;

namespace Mis.Gym.Experiments;

/// <summary>
/// A share of an experiment's (config, seed) runs, so that N machines (a Slurm job array, a
/// Kubernetes Indexed Job) run one sweep into one shared run directory. The runs are numbered in
/// the experiment's fixed order (<see cref="Experiment.Runs"/>: config by config in grid order,
/// each config's seeds in turn) and shard <see cref="Index"/> of <see cref="Count"/> takes those
/// whose number modulo <see cref="Count"/> is <see cref="Index"/>: round-robin, so every shard gets
/// a mix of configs (a slow config is spread over the shards instead of landing on one).
/// </summary>
public sealed record Shard
{
    /// <summary>A shard (0-based <paramref name="index"/> of <paramref name="count"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> below 1, or <paramref name="index"/> not in 0..count-1.</exception>
    public Shard(int index, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, count);
        (Index, Count) = (index, count);
    }

    /// <summary>The whole experiment: shard 0 of 1.</summary>
    public static Shard Whole { get; } = new(0, 1);

    /// <summary>Which shard, 0-based.</summary>
    public int Index { get; }

    /// <summary>How many shards the runs are split into.</summary>
    public int Count { get; }

    /// <summary>Whether this is the whole experiment (one shard), which writes the report itself.</summary>
    public bool IsWhole => Count == 1;

    /// <summary>The items at the positions this shard owns (position modulo <see cref="Count"/> is <see cref="Index"/>), in order.</summary>
    public IEnumerable<T> Select<T>(IEnumerable<T> items) => items.Where((_, position) => position % Count == Index);

    /// <summary>Whether the run at <paramref name="position"/> (in <see cref="Experiment.Runs"/>) belongs to this shard.</summary>
    public bool Owns(int position) => position % Count == Index;

    /// <summary><c>I/N</c>, as <see cref="Parse"/> reads it.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Index}/{Count}");

    /// <summary>Reads <c>I/N</c>: a 0-based index below a count of at least 1.</summary>
    /// <exception cref="FormatException">Not of that form, or out of range; the message says what is expected (without naming where the text came from).</exception>
    public static Shard Parse(string text)
    {
        var parts = text.Split('/');
        if (parts.Length != 2 || !TryInt(parts[0], out int index) || !TryInt(parts[1], out int count))
            throw new FormatException($"\"{text}\" is not I/N (a 0-based shard index and the number of shards, e.g. 0/4)");
        if (count < 1)
            throw new FormatException($"\"{text}\": the number of shards must be at least 1");
        if (index >= count)
            throw new FormatException($"\"{text}\": the index is 0-based, so it must be below the number of shards (0/{count} to {count - 1}/{count})");
        return new Shard(index, count);
    }

    private static bool TryInt(string text, out int value) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
}

/// <summary>A shard and where it came from, for the run's first line (<c>--shard 1/4</c>, <c>SLURM_ARRAY_TASK_ID=5 …</c>).</summary>
/// <param name="Shard">The shard.</param>
/// <param name="Source">Where it came from, in words.</param>
public sealed record ShardChoice(Shard Shard, string Source);

/// <summary>
/// Which shard this process runs: the <c>--shard I/N</c> option; without it, a Slurm array task's
/// or a Kubernetes Indexed Job pod's environment; without either, the whole experiment.
/// <list type="bullet">
/// <item>Slurm (<c>sbatch --array=0-7</c>): I = <c>SLURM_ARRAY_TASK_ID</c> − <c>SLURM_ARRAY_TASK_MIN</c>
/// (divided by <c>SLURM_ARRAY_TASK_STEP</c> for a stepped range such as <c>0-14:2</c>),
/// N = <c>SLURM_ARRAY_TASK_COUNT</c>. An array with gaps (<c>--array=1,5,7</c>) cannot be mapped
/// and is refused.</item>
/// <item>Kubernetes (<c>completionMode: Indexed</c>): I = <c>JOB_COMPLETION_INDEX</c>, N =
/// <c>MIS_SHARD_COUNT</c>: Kubernetes does not put the job's completions into the pod's
/// environment, so the Job template sets it to the same number as <c>completions</c>.</item>
/// </list>
/// An explicit <c>--shard</c> wins over both (<c>--shard 0/1</c> runs everything inside an array task).
/// </summary>
public static class ShardSelection
{
    /// <summary>Slurm's index of this array task.</summary>
    public const string SlurmTaskId = "SLURM_ARRAY_TASK_ID";
    /// <summary>Slurm's lowest index of the array.</summary>
    public const string SlurmTaskMin = "SLURM_ARRAY_TASK_MIN";
    /// <summary>Slurm's number of tasks in the array.</summary>
    public const string SlurmTaskCount = "SLURM_ARRAY_TASK_COUNT";
    /// <summary>Slurm's step between indexes (<c>--array=0-14:2</c>).</summary>
    public const string SlurmTaskStep = "SLURM_ARRAY_TASK_STEP";
    /// <summary>Kubernetes' index of this pod in an Indexed Job.</summary>
    public const string KubernetesIndex = "JOB_COMPLETION_INDEX";
    /// <summary>The number of shards for a Kubernetes Indexed Job: its template sets it to the job's <c>completions</c>.</summary>
    public const string ShardCount = "MIS_SHARD_COUNT";

    /// <summary>Resolves the shard from the option (null when absent) and the environment.</summary>
    /// <param name="option">The <c>--shard</c> value, or null.</param>
    /// <param name="environment">Reads an environment variable (null when unset).</param>
    /// <exception cref="FormatException">The option or the variables are malformed or incomplete; the message names the flag or the variables and what to do.</exception>
    public static ShardChoice Resolve(string? option, Func<string, string?> environment)
    {
        if (option is not null)
        {
            try
            {
                return new ShardChoice(Shard.Parse(option), "--shard");
            }
            catch (FormatException e)
            {
                throw new FormatException($"--shard {e.Message}", e);
            }
        }
        if (Set(environment, SlurmTaskId) is { } taskId)
            return FromSlurm(taskId, environment);
        if (Set(environment, KubernetesIndex) is { } podIndex)
            return FromKubernetes(podIndex, environment);
        return new ShardChoice(Shard.Whole, "no --shard, not in a Slurm array or an Indexed Job");
    }

    private static ShardChoice FromSlurm(string taskId, Func<string, string?> environment)
    {
        const string Hint = "pass --shard I/N to choose the shard yourself";
        int id = Number(SlurmTaskId, taskId, Hint);
        int min = Set(environment, SlurmTaskMin) is { } m ? Number(SlurmTaskMin, m, Hint) : 0;
        int step = Set(environment, SlurmTaskStep) is { } s ? Number(SlurmTaskStep, s, Hint) : 1;
        int count = Set(environment, SlurmTaskCount) is { } c ? Number(SlurmTaskCount, c, Hint)
            : throw new FormatException($"{SlurmTaskId}={id} is set but {SlurmTaskCount} is not, so the number of shards is unknown; {Hint}");
        string source = $"{SlurmTaskId}={id}, {SlurmTaskMin}={min}, {SlurmTaskCount}={count}" + (step > 1 ? $", {SlurmTaskStep}={step}" : "");
        if (step < 1 || count < 1 || id < min || (id - min) % step != 0 || (id - min) / step >= count)
            throw new FormatException($"the Slurm array ({source}) is not a contiguous range of task ids, so this task's shard is unknown; " +
                                      $"submit with --array=0-{Math.Max(count, 1) - 1} or {Hint}");
        return new ShardChoice(new Shard((id - min) / step, count), source);
    }

    private static ShardChoice FromKubernetes(string podIndex, Func<string, string?> environment)
    {
        const string Hint = "set it in the Job template to the job's completions, or pass --shard I/N";
        int index = Number(KubernetesIndex, podIndex, Hint);
        int count = Set(environment, ShardCount) is { } c ? Number(ShardCount, c, Hint)
            : throw new FormatException($"{KubernetesIndex}={index} is set (an Indexed Job) but {ShardCount} is not: Kubernetes does not tell a pod " +
                                        $"the job's completions, so the number of shards is unknown; {Hint}");
        if (count < 1 || index >= count)
            throw new FormatException($"{KubernetesIndex}={index} with {ShardCount}={count}: the index must be below the number of shards; {Hint}");
        return new ShardChoice(new Shard(index, count), $"{KubernetesIndex}={index}, {ShardCount}={count}");
    }

    private static string? Set(Func<string, string?> environment, string name) =>
        environment(name) is { Length: > 0 } value ? value.Trim() : null;

    private static int Number(string name, string value, string hint) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n)
            ? n
            : throw new FormatException($"{name}=\"{value}\" is not a non-negative whole number; {hint}");
}
