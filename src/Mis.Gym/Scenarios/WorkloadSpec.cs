namespace Mis.Gym.Scenarios;

/// <summary>Where a command workload's task reward comes from.</summary>
public enum WorkloadReward
{
    /// <summary><c>reward = "exit"</c>: exit status 0 pays <c>[task] reward</c>, anything else pays nothing.</summary>
    Exit,
    /// <summary><c>reward_command</c>: a command run after the program ends prints the task reward (one number).</summary>
    Command,
}

/// <summary>
/// A scenario's <c>[workload]</c>: the episode is an external program (an agent) rather than a set
/// of actions. Format:
/// <code>
/// [workload]
/// command = ["/bin/sh", "../agents/tempted-summariser.sh"]  # run from this file's directory
/// reward = "exit"                   # exit 0 pays [task] reward (default), or:
/// reward_command = ["/bin/sh", "-c", "test -s /srv/task/output/summary.txt &amp;&amp; echo 10 || echo 0"]
/// timeout_ms = 10000                # the episode is truncated (and the program killed) at this time
/// step_ms = 100                     # one env step observes this much of the program's run
///
/// [workload.files]                  # made in the episode's private view of the file system
/// "/srv/task/input/data.csv" = "id,value\n1,3\n"
/// "/srv/task/output/" = ""          # a trailing '/' makes a (private, writable) directory
/// </code>
/// The program runs in a fresh MIS cgroup under the scenario's policy and DEFCON ladder, as uid 0
/// without any capability, in a private mount namespace holding the files; the reward command runs
/// after it in the same view (so it can grade what the program wrote), confined but unpoliced.
/// </summary>
public sealed record WorkloadSpec
{
    /// <summary><c>command</c>: the program and its arguments (looked up in PATH when it has no '/').</summary>
    public required IReadOnlyList<string> Command { get; init; }

    /// <summary>The directory the program (and the reward command) start in: the scenario file's.</summary>
    public required string WorkingDirectory { get; init; }

    /// <summary>Where the <c>[workload]</c> table is (<c>file.toml:12</c>), for messages.</summary>
    public required string Source { get; init; }

    /// <summary>How the task reward is decided. Default <see cref="WorkloadReward.Exit"/>.</summary>
    public WorkloadReward Reward { get; init; } = WorkloadReward.Exit;

    /// <summary><c>reward_command</c> (with <see cref="WorkloadReward.Command"/>): prints the task reward.</summary>
    public IReadOnlyList<string> RewardCommand { get; init; } = [];

    /// <summary><c>timeout_ms</c>: the episode's time limit (truncation). Default 10,000.</summary>
    public int TimeoutMs { get; init; } = 10_000;

    /// <summary><c>step_ms</c>: the slice of the run one step observes. Default 100.</summary>
    public int StepMs { get; init; } = 100;

    /// <summary>Steps enough to observe the whole run: one per <see cref="StepMs"/> slice of <see cref="TimeoutMs"/>, and the step that sees the timeout.</summary>
    public int StepsForTimeout => (TimeoutMs + StepMs - 1) / StepMs + 1;

    /// <summary><c>[workload.files]</c>: path → content; a null content is a directory.</summary>
    public IReadOnlyList<(string Path, string? Content)> Files { get; init; } = [];
}
