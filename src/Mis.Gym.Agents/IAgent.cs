namespace Mis.Gym.Agents;

/// <summary>
/// A learning agent for an environment with float-vector observations and discrete actions (every
/// MIS scenario env). The experiment runner owns the loop, so it can record every step:
/// <code>
/// var obs = env.Reset(seed).Observation;
/// while (true) {
///     int a = agent.Act(obs);                       // explores while training
///     var r = env.Step(a);
///     agent.Observe(new Transition(obs, a, r.Reward, r.Observation, r.Terminated, r.Truncated));
///     if (r.Done) break;                            // the runner resets for the next episode
///     obs = r.Observation;
/// }
/// </code>
/// An agent learns inside <see cref="Observe"/> (PPO when its rollout is full, DQN every few steps,
/// tabular Q at once). Given the same seed and the same transitions, it chooses the same actions.
/// </summary>
public interface IAgent : IDisposable
{
    /// <summary>The algorithm: <c>ppo</c>, <c>dqn</c> or <c>q</c>.</summary>
    string Algorithm { get; }

    /// <summary>The action to take in <paramref name="observation"/>, with the agent's exploration.</summary>
    int Act(float[] observation);

    /// <summary>The greedy action (no exploration), for evaluation.</summary>
    int ActGreedy(float[] observation);

    /// <summary>Learns from one step. <see cref="Transition.Terminated"/> cuts the bootstrap; <see cref="Transition.Truncated"/> does not.</summary>
    void Observe(in Transition transition);

    /// <summary>Writes everything needed to continue learning (weights, optimiser, counters, buffers) into <paramref name="directory"/>.</summary>
    void Save(string directory);

    /// <summary>Restores what <see cref="Save"/> wrote; the agent must have been created with the same configuration.</summary>
    void Load(string directory);
}

/// <summary>One environment step as an agent learns from it.</summary>
/// <param name="Observation">The observation the action was chosen in.</param>
/// <param name="Action">The action taken.</param>
/// <param name="Reward">The reward received.</param>
/// <param name="NextObservation">The observation after the step (the final one when the episode ended).</param>
/// <param name="Terminated">The episode's MDP ended (task done or killed): no value beyond this step.</param>
/// <param name="Truncated">The episode was cut by a limit outside the MDP (steps or time): the next state still has value.</param>
public readonly record struct Transition(float[] Observation, int Action, double Reward, float[] NextObservation, bool Terminated, bool Truncated)
{
    /// <summary>The episode is over either way.</summary>
    internal bool Done => Terminated || Truncated;
}
