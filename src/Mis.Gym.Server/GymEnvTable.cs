using System.Security.Cryptography;
using Grpc.Core;
using Mis.Gym;
using Mis.Gym.Vector;

namespace Mis.Gym.Server;

/// <summary>
/// The environments and vectors a Gym server holds, by id, up to a cap (a vector counts once).
/// Each has a gate so its calls run one at a time (an environment is not thread-safe, and a kernel
/// backend's actuator is one process); different ones run in parallel. <see cref="CloseAllAsync"/> at shutdown closes every one,
/// after the call it is running, if any, has finished.
/// </summary>
public sealed class GymEnvTable
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, GymSlot> _envs = new(StringComparer.Ordinal);
    // Ids are "<server instance>-<n>": an id from an earlier server process is NOT_FOUND here,
    // never silently someone else's environment.
    private readonly string _instance = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
    private readonly int _max;
    private readonly TimeProvider _clock;
    // Ids closed for idleness, so a client coming back learns why its id is unknown (the most recent ones).
    private readonly Queue<string> _expiredOrder = new();
    private readonly HashSet<string> _expired = new(StringComparer.Ordinal);
    private const int ExpiredRemembered = 1024;
    private int _reserved;
    private long _next;
    private bool _closed;

    internal GymEnvTable(int max, TimeProvider? clock = null) => (_max, _clock) = (max, clock ?? TimeProvider.System);

    /// <summary>Environments and vectors open now.</summary>
    internal int Count
    {
        get
        {
            lock (_lock)
                return _envs.Count;
        }
    }

    /// <summary>Makes an environment with <paramref name="make"/> and adds it, within the cap.</summary>
    /// <exception cref="RpcException">RESOURCE_EXHAUSTED at the cap; UNAVAILABLE when shutting down.</exception>
    internal GymEnvSlot Add(Func<IEnv<float[], int>> make, string scenario, string backend) =>
        Add(make, (id, env) => new GymEnvSlot(id, env, scenario, backend, _clock), env => env.Close());

    /// <summary>Makes a vector with <paramref name="make"/> and adds it, within the cap (where it counts once).</summary>
    /// <exception cref="RpcException">As <see cref="Add(Func{IEnv{float[], int}}, string, string)"/>.</exception>
    internal GymVectorSlot AddVector(Func<SyncVectorEnv<float[], int>> make, string scenario, string backend) =>
        Add(make, (id, vector) => new GymVectorSlot(id, vector, scenario, backend, _clock), vector => vector.Close());

    private TSlot Add<T, TSlot>(Func<T> make, Func<string, T, TSlot> slotOf, Action<T> close)
        where TSlot : GymSlot
    {
        lock (_lock)
        {
            ThrowIfClosed();
            if (_envs.Count + _reserved >= _max)
                throw new RpcException(new Status(StatusCode.ResourceExhausted,
                    $"this server already has {_max} open environment(s), its cap (--max-envs): close one first"));
            _reserved++;
        }
        T made;
        try
        {
            // Made outside the lock: a kernel backend takes a while (BPF programs, cgroups).
            made = make();
        }
        catch
        {
            lock (_lock)
                _reserved--;
            throw;
        }
        lock (_lock)
        {
            _reserved--;
            if (!_closed)
            {
                var slot = slotOf($"{_instance}-{++_next}", made);
                _envs.Add(slot.Id, slot);
                return slot;
            }
        }
        close(made); // the server began to shut down while it was being made
        throw ShuttingDown();
    }

    /// <summary>The environment <paramref name="id"/>.</summary>
    /// <exception cref="RpcException">INVALID_ARGUMENT for an empty id or a vector's, NOT_FOUND for an unknown one.</exception>
    internal GymEnvSlot Get(string id) => GetSlot(id) as GymEnvSlot
        ?? throw new RpcException(new Status(StatusCode.InvalidArgument,
            $"\"{id}\" is a vector (VectorReset made it): step it with VectorStep and reset it with VectorReset"));

    /// <summary>The vector <paramref name="id"/>.</summary>
    /// <exception cref="RpcException">INVALID_ARGUMENT for an empty id or a single environment's, NOT_FOUND for an unknown one.</exception>
    internal GymVectorSlot GetVector(string id) => GetSlot(id, "vector_id", "VectorReset") as GymVectorSlot
        ?? throw new RpcException(new Status(StatusCode.InvalidArgument,
            $"\"{id}\" is a single environment (Make made it): step it with Step and reset it with Reset"));

    /// <summary>The environment or vector <paramref name="id"/>.</summary>
    /// <exception cref="RpcException">INVALID_ARGUMENT for an empty id, NOT_FOUND for an unknown one.</exception>
    internal GymSlot GetSlot(string id, string field = "env_id", string maker = "Make")
    {
        if (string.IsNullOrEmpty(id))
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"{field} is empty: pass the id {maker} returned"));
        lock (_lock)
        {
            return _envs.TryGetValue(id, out var slot) ? slot : throw NotFound(id);
        }
    }

    /// <summary>Removes <paramref name="id"/> and closes it once its running call, if any, is done.</summary>
    /// <exception cref="RpcException">As <see cref="Get"/>.</exception>
    internal async Task CloseAsync(string id)
    {
        var slot = GetSlot(id);
        lock (_lock)
        {
            if (!_envs.Remove(id))
                throw NotFound(id);
        }
        await slot.CloseAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Closes the environments no call has used for <paramref name="limit"/> or longer (a client
    /// that went away without Close would otherwise hold them, and for the kernel backend a cgroup
    /// and a process, until the server stops). One in the middle of a call is never idle.
    /// </summary>
    /// <returns>The ids closed, each with the error its close raised, if any.</returns>
    internal async Task<IReadOnlyList<(string Id, Exception? Error)>> CloseIdleAsync(TimeSpan limit)
    {
        List<GymSlot> idle;
        lock (_lock)
        {
            idle = [.. _envs.Values.Where(s => s.Idle >= limit)];
            foreach (var slot in idle)
            {
                _envs.Remove(slot.Id);
                _expired.Add(slot.Id);
                _expiredOrder.Enqueue(slot.Id);
                if (_expiredOrder.Count > ExpiredRemembered)
                    _expired.Remove(_expiredOrder.Dequeue());
            }
        }
        return await CloseEachAsync(idle).ConfigureAwait(false);
    }

    /// <summary>Refuses new environments and closes every open one.</summary>
    /// <returns>The ids closed, each with the error its close raised, if any.</returns>
    internal async Task<IReadOnlyList<(string Id, Exception? Error)>> CloseAllAsync()
    {
        List<GymSlot> slots;
        lock (_lock)
        {
            _closed = true;
            slots = [.. _envs.Values];
            _envs.Clear();
        }
        return await CloseEachAsync(slots).ConfigureAwait(false);
    }

    // Every one is closed even when one fails (a kernel backend whose cleanup hit an error must
    // not keep the others' cgroups and processes alive).
    private static async Task<IReadOnlyList<(string Id, Exception? Error)>> CloseEachAsync(IEnumerable<GymSlot> slots)
    {
        var closed = new List<(string, Exception?)>();
        foreach (var slot in slots)
        {
            try
            {
                await slot.CloseAsync().ConfigureAwait(false);
                closed.Add((slot.Id, null));
            }
            catch (Exception e)
            {
                closed.Add((slot.Id, e));
            }
        }
        return closed;
    }

    private void ThrowIfClosed()
    {
        if (_closed)
            throw ShuttingDown();
    }

    // Called under the lock.
    private RpcException NotFound(string id) => new(new Status(StatusCode.NotFound, _expired.Contains(id)
        ? $"environment \"{id}\" was closed by the server after no call used it for the idle limit (mis gym serve --idle-timeout): make a new one"
        : $"no environment \"{id}\" on this server (never made, or closed)"));

    private static RpcException ShuttingDown() => new(new Status(StatusCode.Unavailable, "the Gym server is shutting down"));
}
