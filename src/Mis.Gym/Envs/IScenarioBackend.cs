namespace Mis.Gym.Envs;

/// <summary>The enforcement state of the episode's workload after an action.</summary>
/// <param name="Defcon">DEFCON level, 5 (normal) to 1.</param>
/// <param name="Violations">Counted violations (decay applied).</param>
/// <param name="SlowdownNs">Time lost to slowdown since the episode began.</param>
/// <param name="ElapsedNs">Time since the episode began (simulated, or the workload's real time).</param>
public readonly record struct BackendState(int Defcon, ulong Violations, ulong SlowdownNs, ulong ElapsedNs)
{
    /// <summary>A fresh workload: DEFCON 5, nothing counted, no time passed.</summary>
    internal static BackendState Fresh => new(5, 0, 0, 0);
}

/// <summary>What performing one action did.</summary>
/// <param name="Result">Ok, denied, error or killed.</param>
/// <param name="Reason">The rule or level behind the decision (for info and events).</param>
/// <param name="State">The enforcement state afterwards.</param>
public readonly record struct ActionOutcome(ActionResult Result, string Reason, BackendState State)
{
    /// <summary>The anomaly scorer's reading after the action, when a <see cref="SyscallWatch"/> scores the episode live.</summary>
    public AnomalyReading? Anomaly { get; init; }
}

/// <summary>
/// Where a scenario's actions actually happen: the simulator (<see cref="SimBackend"/>) or, later,
/// the real kernel enforcer. <see cref="MisEnv"/> owns everything else — task progress, reward,
/// observation, termination, truncation and all randomness — so two backends given the same
/// action sequence and the same <c>failsByItself</c> draws must produce the same outcomes; that
/// is what makes a sim-versus-kernel differential test possible.
/// </summary>
/// <remarks>
/// A kernel implementation: <see cref="BeginEpisode"/> creates a fresh MIS-managed cgroup (the
/// previous one killed and removed) with the scenario's DEFCON config and network rules, and starts
/// an actuator process in it under the seccomp supervisor with the scenario's policy;
/// <see cref="Perform"/> asks the actuator to do action <c>i</c> (open/read/close, exec, connect,
/// send, sleep, write the answer) against a scenario sandbox, maps its errno to the result (EPERM →
/// denied, death by SIGKILL → killed, other errors → error), and reads the cgroup's state from the
/// kernel (<c>KernelEnforcer.State</c>): level, violations, slowdown total, and elapsed wall time.
/// </remarks>
public interface IScenarioBackend : IDisposable
{
    /// <summary>The backend's name: <c>sim</c> or <c>kernel</c>.</summary>
    string Name { get; }

    /// <summary>Starts an episode with a fresh workload at DEFCON 5; ends any previous one.</summary>
    /// <returns>The fresh state.</returns>
    BackendState BeginEpisode();

    /// <summary>Performs action <paramref name="action"/> (an index into the scenario's actions).</summary>
    /// <param name="action">The action index.</param>
    /// <param name="failsByItself">The world makes the operation fail if the policy allows it (the env drew <c>fail_prob</c>).</param>
    /// <returns>The result and the state after it.</returns>
    ActionOutcome Perform(int action, bool failsByItself);
}
