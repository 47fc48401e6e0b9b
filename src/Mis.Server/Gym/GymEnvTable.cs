using System.Security.Cryptography;
using Grpc.Core;
using Mis.Gym;

namespace Mis.Server.Gym;

/// <summary>
/// The environments a Gym server holds, by id, up to a cap. Each has a gate so its calls run one at
/// a time (an environment is not thread-safe, and a kernel backend's actuator is one process);
/// different environments run in parallel. <see cref="CloseAllAsync"/> at shutdown closes every one,
/// after the call it is running, if any, has finished.
/// </summary>
internal sealed class GymEnvTable
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, GymEnvSlot> _envs = new(StringComparer.Ordinal);
    // Ids are "<server instance>-<n>": an id from an earlier server process is NOT_FOUND here,
    // never silently someone else's environment.
    private readonly string _instance = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
    private readonly int _max;
    private int _reserved;
    private long _next;
    private bool _closed;

    internal GymEnvTable(int max) => _max = max;

    /// <summary>Environments open now.</summary>
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
    internal GymEnvSlot Add(Func<IEnv<float[], int>> make, string scenario, string backend)
    {
        lock (_lock)
        {
            ThrowIfClosed();
            if (_envs.Count + _reserved >= _max)
                throw new RpcException(new Status(StatusCode.ResourceExhausted,
                    $"this server already has {_max} open environment(s), its cap (--max-envs): close one first"));
            _reserved++;
        }
        IEnv<float[], int> env;
        try
        {
            // Made outside the lock: a kernel backend takes a while (BPF programs, cgroups).
            env = make();
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
                var slot = new GymEnvSlot($"{_instance}-{++_next}", env, scenario, backend);
                _envs.Add(slot.Id, slot);
                return slot;
            }
        }
        env.Close(); // the server began to shut down while it was being made
        throw ShuttingDown();
    }

    /// <summary>The environment <paramref name="id"/>.</summary>
    /// <exception cref="RpcException">INVALID_ARGUMENT for an empty id, NOT_FOUND for an unknown one.</exception>
    internal GymEnvSlot Get(string id)
    {
        if (string.IsNullOrEmpty(id))
            throw new RpcException(new Status(StatusCode.InvalidArgument, "env_id is empty: pass the id Make returned"));
        lock (_lock)
        {
            return _envs.TryGetValue(id, out var slot) ? slot
                : throw new RpcException(new Status(StatusCode.NotFound, $"no environment \"{id}\" on this server (never made, or closed)"));
        }
    }

    /// <summary>Removes <paramref name="id"/> and closes it once its running call, if any, is done.</summary>
    /// <exception cref="RpcException">As <see cref="Get"/>.</exception>
    internal async Task CloseAsync(string id)
    {
        var slot = Get(id);
        lock (_lock)
        {
            if (!_envs.Remove(id))
                throw new RpcException(new Status(StatusCode.NotFound, $"no environment \"{id}\" on this server (never made, or closed)"));
        }
        await slot.CloseAsync().ConfigureAwait(false);
    }

    /// <summary>Refuses new environments and closes every open one.</summary>
    /// <returns>How many were closed.</returns>
    internal async Task<int> CloseAllAsync()
    {
        List<GymEnvSlot> slots;
        lock (_lock)
        {
            _closed = true;
            slots = [.. _envs.Values];
            _envs.Clear();
        }
        foreach (var slot in slots)
            await slot.CloseAsync().ConfigureAwait(false);
        return slots.Count;
    }

    private void ThrowIfClosed()
    {
        if (_closed)
            throw ShuttingDown();
    }

    private static RpcException ShuttingDown() => new(new Status(StatusCode.Unavailable, "the Gym server is shutting down"));
}
