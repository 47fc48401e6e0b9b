using Grpc.Core;
using Mis.Gym;

namespace Mis.Gym.Server;

/// <summary>
/// One environment of a Gym server: the env and where its episode is (so a Step out of turn is a
/// FAILED_PRECONDITION with the reason, decided here rather than by catching the env's own
/// exception, which a backend could also throw for other reasons).
/// </summary>
public sealed class GymEnvSlot : GymSlot
{
    private readonly IEnv<float[], int> _env;
    private Episode _episode = Episode.NotStarted;
    private int _steps;

    private enum Episode { NotStarted, Running, Ended }

    internal GymEnvSlot(string id, IEnv<float[], int> env, string scenario, string backend, TimeProvider clock)
        : base(id, scenario, backend, clock)
    {
        _env = env;
        ObservationSpace = GymMapping.ToProto(env.ObservationSpace);
        ActionSpaceMessage = GymMapping.ToProto(env.ActionSpace);
    }

    /// <summary>The action space (immutable: read without the gate).</summary>
    internal Mis.Gym.Spaces.Space<int> ActionSpace => _env.ActionSpace;

    internal override Mis.Gym.V1.Space ObservationSpace { get; }

    internal override Mis.Gym.V1.Space ActionSpaceMessage { get; }

    /// <summary>Starts an episode.</summary>
    internal Task<ResetResult<float[]>> ResetAsync(int? seed, IReadOnlyDictionary<string, object>? options, CancellationToken cancel) =>
        RunAsync(() =>
        {
            // Until the reset has succeeded there is no episode to step (a failed reset leaves none).
            _episode = Episode.NotStarted;
            var result = _env.Reset(seed, options);
            (_episode, _steps) = (Episode.Running, 0);
            return result;
        }, "reset", cancel);

    /// <summary>One step of the running episode; <paramref name="action"/> is already known to be in the action space.</summary>
    /// <exception cref="RpcException">FAILED_PRECONDITION before a reset or after the episode ended.</exception>
    internal Task<StepResult<float[]>> StepAsync(int action, CancellationToken cancel) =>
        RunAsync(() =>
        {
            if (_episode == Episode.NotStarted)
                throw new RpcException(new Status(StatusCode.FailedPrecondition, $"environment {Id}: Step before Reset: call Reset to start an episode"));
            if (_episode == Episode.Ended)
                throw new RpcException(new Status(StatusCode.FailedPrecondition,
                    $"environment {Id}: the episode ended (terminated or truncated) after step {_steps}: call Reset first (autoreset is the client's job)"));
            _episode = Episode.NotStarted; // a step that throws leaves the episode in no known state
            var result = _env.Step(action);
            _steps++;
            _episode = result.Done ? Episode.Ended : Episode.Running;
            return result;
        }, "step", cancel);

    private protected override void CloseCore() => _env.Close();
}
