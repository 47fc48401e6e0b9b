using Grpc.Core;

namespace Mis.Gym.Server;

/// <summary>
/// What a Gym server's table holds under an id: one environment (<see cref="GymEnvSlot"/>) or a
/// vector of them (<see cref="GymVectorSlot"/>). The slot owns the gate that runs its calls one at
/// a time (neither kind is thread-safe), knows how long it has been idle, and closes what it holds
/// once, after the call it is running.
/// </summary>
public abstract class GymSlot
{
    private readonly TimeProvider _clock;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private long _lastUsed;
    private bool _closed;
    private CancellationTokenRegistration _clientGone;

    private protected GymSlot(string id, string scenario, string backend, TimeProvider clock)
    {
        (Id, Scenario, Backend, _clock) = (id, scenario, backend, clock);
        _lastUsed = clock.GetTimestamp();
    }

    internal string Id { get; }

    internal string Scenario { get; }

    internal string Backend { get; }

    /// <summary>One environment's observation space (immutable: read without the gate).</summary>
    internal abstract Mis.Gym.V1.Space ObservationSpace { get; }

    /// <summary>One environment's action space, as its message.</summary>
    internal abstract Mis.Gym.V1.Space ActionSpaceMessage { get; }

    /// <summary>How long since a call on this slot last began or ended; zero while one runs.</summary>
    internal TimeSpan Idle => _gate.CurrentCount == 0 ? TimeSpan.Zero : _clock.GetElapsedTime(Interlocked.Read(ref _lastUsed));

    /// <summary>Whether a call ran on this slot after <paramref name="timestamp"/> (of <see cref="TimeProvider.GetTimestamp"/>), or runs now.</summary>
    internal bool UsedSince(long timestamp) => _gate.CurrentCount == 0 || Interlocked.Read(ref _lastUsed) > timestamp;

    /// <summary>
    /// Runs <paramref name="callback"/> when <paramref name="closed"/> (the maker's connection) is
    /// cancelled, unless the slot was closed first: a connection that makes many environments holds
    /// no callback for the ones already closed.
    /// </summary>
    internal void OnClientGone(CancellationToken closed, Action callback) => _clientGone = closed.Register(callback);

    /// <summary>Closes what the slot holds after the call it is running, if any. Safe to call twice.</summary>
    internal async Task CloseAsync()
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_closed)
                return;
            _closed = true;
            _clientGone.Dispose();
            CloseCore();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Releases what the slot holds; called once, under the gate.</summary>
    private protected abstract void CloseCore();

    /// <summary>
    /// Runs <paramref name="call"/> under the gate. An exception other than an <see cref="RpcException"/>
    /// is the backend failing: it becomes INTERNAL, saying which call of which slot failed and why.
    /// </summary>
    private protected async Task<T> RunAsync<T>(Func<T> call, string what, CancellationToken cancel)
    {
        await _gate.WaitAsync(cancel).ConfigureAwait(false);
        Interlocked.Exchange(ref _lastUsed, _clock.GetTimestamp());
        try
        {
            if (_closed)
                throw new RpcException(new Status(StatusCode.NotFound, $"environment {Id} was closed"));
            try
            {
                return call();
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
