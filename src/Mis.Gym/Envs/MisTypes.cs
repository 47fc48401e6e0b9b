namespace Mis.Gym.Envs;

/// <summary>How the last action went, as the workload saw it.</summary>
public enum ActionResult
{
    /// <summary>The operation succeeded.</summary>
    Ok = 0,
    /// <summary>The enforcer denied it (EPERM) and counted a violation.</summary>
    Denied = 1,
    /// <summary>It was allowed but failed by itself (missing file, refused connection), or a submission was rejected.</summary>
    Error = 2,
    /// <summary>The workload was killed (the violation took it to DEFCON 1, or the anomaly scorer killed it): the episode terminated.</summary>
    Killed = 3,
}

/// <summary>
/// The reward of one step, term by term, as <c>info["reward_terms"]</c>:
/// <c>reward = Task - Slowdown - Denial - Kill - Anomaly</c> exactly: every env computes its reward as
/// <see cref="Total"/>, the one formula, so a plot of the terms adds up to the reward the agent was
/// trained on. A value type: a step's info holds it without another allocation.
/// </summary>
/// <param name="Task">What the task paid: an accepted submission's reward, a first-time action bonus, minus the step cost.</param>
/// <param name="Slowdown">Penalty for the time DEFCON slowdown cost this step (<c>slowdown_per_ms</c> × ms).</param>
/// <param name="Denial">Penalty for a denied operation (<c>denial</c>), also charged for the denial that killed.</param>
/// <param name="Kill">Penalty for being killed at DEFCON 1 (<c>kill</c>).</param>
/// <param name="Anomaly">Penalty for being killed by the anomaly scorer (<c>anomaly_kill</c>; feedback mode <c>anomaly-kill</c>).</param>
public readonly record struct RewardTerms(double Task, double Slowdown, double Denial, double Kill, double Anomaly = 0)
{
    /// <summary>The step's reward: <c>Task - Slowdown - Denial - Kill - Anomaly</c>.</summary>
    public double Total => Task - Slowdown - Denial - Kill - Anomaly;
}

/// <summary>The requested backend cannot run (not built yet, or this host lacks what it needs); the message says why.</summary>
public sealed class BackendUnavailableException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">Why the backend is unavailable and what to use instead.</param>
    /// <param name="inner">The underlying error, if any.</param>
    public BackendUnavailableException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}
