using Grpc.Core;
using Mis.Gym;

namespace Mis.Gym.Server;

/// <summary>
/// One environment of a Gym server: the env, the gate that serializes its calls, and where its
/// episode is (so a Step out of turn is a FAILED_PRECONDITION with the reason, decided here
/// rather than by catching the env's own exception, which a backend could also throw for other reasons).
/// </summary>
public sealed class GymEnvSlot
{
    private readonly IEnv<float[], int> _env;
    private readonly TimeProvider _clock;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private long _lastUsed;
    private Episode _episode = Episode.NotStarted;
    private int _steps;
    private bool _closed;

    private enum Episode { NotStarted, Running, Ended }

    internal GymEnvSlot(string id, IEnv<float[], int> env, string scenario, string backend, TimeProvider clock)
    {
        (Id, _env, Scenario, Backend, _clock) = (id, env, scenario, backend, clock);
        _lastUsed = clock.GetTimestamp();
        ObservationSpace = GymMapping.ToProto(env.ObservationSpace);
        ActionSpaceMessage = GymMapping.ToProto(env.ActionSpace);
    }

    internal string Id { get; }

    internal string Scenario { get; }

    internal string Backend { get; }

    /// <summary>The action space (immutable: read without the gate).</summary>
    internal Mis.Gym.Spaces.Space<int> ActionSpace => _env.ActionSpace;

    internal Mis.Gym.V1.Space ObservationSpace { get; }

    /// <summary>How long since a call on this environment last began or ended; zero while one runs.</summary>
    internal TimeSpan Idle => _gate.CurrentCount == 0 ? TimeSpan.Zero : _clock.GetElapsedTime(Interlocked.Read(ref _lastUsed));

    internal Mis.Gym.V1.Space ActionSpaceMessage { get; }

    /// <summary>Starts an episode.</summary>
    internal Task<ResetResult<float[]>> ResetAsync(int? seed, IReadOnlyDictionary<string, object>? options, CancellationToken cancel) =>
        RunAsync(env =>
        {
            // Until the reset has succeeded there is no episode to step (a failed reset leaves none).
            _episode = Episode.NotStarted;
            var result = env.Reset(seed, options);
            (_episode, _steps) = (Episode.Running, 0);
            return result;
        }, "reset", cancel);

    /// <summary>One step of the running episode; <paramref name="action"/> is already known to be in the action space.</summary>
    /// <exception cref="RpcException">FAILED_PRECONDITION before a reset or after the episode ended.</exception>
    internal Task<StepResult<float[]>> StepAsync(int action, CancellationToken cancel) =>
        RunAsync(env =>
        {
            if (_episode == Episode.NotStarted)
                throw new RpcException(new Status(StatusCode.FailedPrecondition, $"environment {Id}: Step before Reset: call Reset to start an episode"));
            if (_episode == Episode.Ended)
                throw new RpcException(new Status(StatusCode.FailedPrecondition,
                    $"environment {Id}: the episode ended (terminated or truncated) after step {_steps}: call Reset first (autoreset is the client's job)"));
            _episode = Episode.NotStarted; // a step that throws leaves the episode in no known state
            var result = env.Step(action);
            _steps++;
            _episode = result.Done ? Episode.Ended : Episode.Running;
            return result;
        }, "step", cancel);

    /// <summary>Closes the environment after the call it is running, if any. Safe to call twice.</summary>
    internal async Task CloseAsync()
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_closed)
                return;
            _closed = true;
            _env.Close();
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<T> RunAsync<T>(Func<IEnv<float[], int>, T> call, string what, CancellationToken cancel)
    {
        await _gate.WaitAsync(cancel).ConfigureAwait(false);
        Interlocked.Exchange(ref _lastUsed, _clock.GetTimestamp());
        try
        {
            if (_closed)
                throw new RpcException(new Status(StatusCode.NotFound, $"environment {Id} was closed"));
            try
            {
                return call(_env);
            }
            catch (Exception e) when (e is not RpcException)
            {
                // The backend failed (an actuator that died unexpectedly, a cgroup that could not
                // be made): the client sees why, and must reset before stepping again.
                throw new RpcException(new Status(StatusCode.Internal, $"environment {Id} ({Scenario}, {Backend}): {what} failed: {e.GetType().Name}: {e.Message}"));
            }
        }
        finally
        {
            Interlocked.Exchange(ref _lastUsed, _clock.GetTimestamp());
            _gate.Release();
        }
    }
}
