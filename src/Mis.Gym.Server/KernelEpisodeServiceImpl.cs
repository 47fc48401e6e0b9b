using System.Collections.Concurrent;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Mis.Enforcer.Configuration;
using Mis.Episodes.V1;
using Mis.Gym.Envs;
using Mis.Gym.Scenarios;
using Mis.Server.Grpc;
using Mis.Server.Hosting;

namespace Mis.Gym.Server;

/// <summary>
/// The node daemon's kernel episodes (mis.episodes.v1.KernelEpisodeService): a
/// <see cref="KernelBackend"/> per Open, its episodes run as the caller. See
/// proto/mis/episodes/v1/episodes.proto for the contract.
/// </summary>
public static class KernelEpisodes
{
    /// <summary>Open backends one caller may hold (each is an enforcement session of its own: BPF programs, a cgroup tree).</summary>
    internal const int PerCaller = 64;

    /// <summary>How long a backend outlives the connection that opened it when no other connection uses it meanwhile.</summary>
    internal static readonly TimeSpan DefaultClientGoneGrace = TimeSpan.FromSeconds(30);

    /// <summary>The service for <c>mis enforcer</c> to host (<see cref="EnforcerProgram.RunAsync"/>).</summary>
    public static HostedGrpcService Hosted { get; } = Hosting(DefaultClientGoneGrace);

    /// <summary>The service with another grace period for a vanished client (tests).</summary>
    internal static HostedGrpcService Hosting(TimeSpan clientGoneGrace) => new(
        services => services.AddSingleton(provider => new KernelEpisodeTable(clientGoneGrace, provider.GetRequiredService<ILogger<KernelEpisodeTable>>())),
        app => app.MapGrpcService<KernelEpisodeServiceImpl>());
}

/// <summary>The handlers: who may, what the request means; the table keeps the backends.</summary>
internal sealed class KernelEpisodeServiceImpl(KernelEpisodeTable table, ControlPlaneAccess access) : KernelEpisodeService.KernelEpisodeServiceBase
{
    public override async Task<OpenResponse> Open(OpenRequest request, ServerCallContext context)
    {
        var caller = access.Authorize(context);
        var scenario = Scenario(request);
        table.ReserveFor(caller);
        KernelEpisodeTable.Entry entry;
        try
        {
            // Loading the scenario's enforcer takes a while: not on the request's thread.
            var backend = await Task.Run(() => new KernelBackend(scenario, !request.ModelledSlowdown, request.Learning, caller.Identity)).ConfigureAwait(false);
            entry = table.Add(caller, backend, scenario.Name);
        }
        catch (BackendUnavailableException e)
        {
            table.Release(caller);
            throw new RpcException(new Status(StatusCode.FailedPrecondition, e.Message));
        }
        catch
        {
            table.Release(caller);
            throw;
        }
        return new OpenResponse { BackendId = entry.Id, CgroupsRoot = entry.Backend.CgroupsRoot, User = caller.Identity.Name };
    }

    public override Task<Episodes.V1.BackendState> Begin(BackendRef request, ServerCallContext context)
    {
        var entry = table.Get(request.BackendId, access.Authorize(context));
        return Task.Run(() => ToProto(entry.Run(b => b.BeginEpisode())));
    }

    public override Task<PerformResponse> Perform(PerformRequest request, ServerCallContext context)
    {
        var entry = table.Get(request.BackendId, access.Authorize(context));
        if (request.Action < 0 || request.Action >= entry.Actions)
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"action {request.Action} is not one of the scenario's 0..{entry.Actions - 1}"));
        return Task.Run(() => entry.Run(b =>
        {
            ActionOutcome outcome;
            try
            {
                outcome = b.Perform(request.Action, request.FailsByItself);
            }
            catch (InvalidOperationException e)
            {
                throw new RpcException(new Status(StatusCode.FailedPrecondition, e.Message));
            }
            return new PerformResponse
            {
                Result = (Episodes.V1.ActionResult)(int)outcome.Result,
                Reason = outcome.Reason,
                State = ToProto(outcome.State),
                LatencyNs = b.LastLatencyNs,
                CgroupPath = b.CgroupPath ?? "",
            };
        }));
    }

    public override Task<CloseResponse> Close(BackendRef request, ServerCallContext context)
    {
        table.Close(request.BackendId, access.Authorize(context));
        return Task.FromResult(new CloseResponse());
    }

    /// <summary>The request's scenario, parsed here from its text (the caller's files are never opened) with the caller's DEFCON response.</summary>
    private static ActionScenario Scenario(OpenRequest request)
    {
        if (request.ScenarioFile.Length == 0 || !Path.IsPathRooted(request.ScenarioFile))
            throw Invalid($"scenario_file \"{request.ScenarioFile}\": expected the scenario's absolute path (it names the scenario in messages and anchors its policy path)");
        Scenario parsed;
        try
        {
            parsed = ScenarioFile.Parse(request.ScenarioText, request.ScenarioFile, _ => request.PolicyText.Length > 0 ? request.PolicyText : null);
        }
        catch (ConfigException e)
        {
            throw Invalid(e.Message);
        }
        if (parsed is not ActionScenario scenario)
            throw Invalid($"scenario {parsed.Name} runs a command ([workload]); the node daemon runs action scenarios' episodes (run a command scenario as root, in-process)");
        if (request.SlowdownUs.Count != 3 || request.SlowdownUs.Any(us => us > 1_000_000))
            throw Invalid($"slowdown_us: expected 3 delays (DEFCON 4, 3, 2) of 0..1000000 µs, got [{string.Join(", ", request.SlowdownUs)}]");
        return scenario with { Defcon = scenario.Defcon with { SlowdownUs = request.SlowdownUs.Select(us => (int)us).ToArray(), KillAtLevel1 = request.KillAtLevel1 } };
    }

    private static RpcException Invalid(string reason) => new(new Status(StatusCode.InvalidArgument, reason));

    private static Episodes.V1.BackendState ToProto(Envs.BackendState s) =>
        new() { Defcon = s.Defcon, Violations = s.Violations, SlowdownNs = s.SlowdownNs, ElapsedNs = s.ElapsedNs };
}

/// <summary>
/// The open backends, by id, each with its owner; one call at a time per backend. A backend whose
/// connection closed is closed after the grace period unless a call from another connection used
/// it meanwhile (a client that reconnected keeps it). Disposing the table (the daemon stopping)
/// closes every backend: episodes killed, cgroups removed.
/// </summary>
internal sealed class KernelEpisodeTable(TimeSpan clientGoneGrace, ILogger<KernelEpisodeTable> log) : IDisposable
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _perCaller = new(StringComparer.Ordinal);
    private int _disposed;

    /// <summary>One open backend.</summary>
    internal sealed class Entry(string id, HostedCaller owner, KernelBackend backend)
    {
        private readonly Lock _gate = new();

        internal string Id { get; } = id;

        internal uint? Owner { get; } = owner.Uid;

        /// <summary>Whose cap it counts against.</summary>
        internal string OwnerKey { get; } = KeyOf(owner);

        internal KernelBackend Backend { get; } = backend;

        internal int Actions { get; } = backend.ActionCount;

        internal bool Closed { get; private set; }

        /// <summary>The connection of the last call (its closing starts the grace period).</summary>
        internal CancellationToken Connection { get; set; }

        /// <summary>Runs <paramref name="work"/> on the backend, alone.</summary>
        internal T Run<T>(Func<KernelBackend, T> work)
        {
            lock (_gate)
            {
                if (Closed)
                    throw new RpcException(new Status(StatusCode.NotFound, $"kernel backend {Id} was closed"));
                return work(Backend);
            }
        }

        internal bool Close()
        {
            lock (_gate)
            {
                if (Closed)
                    return false;
                Closed = true;
                Backend.Dispose();
                return true;
            }
        }
    }

    /// <summary>Counts one more backend against <paramref name="caller"/>'s cap.</summary>
    /// <exception cref="RpcException">RESOURCE_EXHAUSTED at the cap; UNAVAILABLE when the daemon stops.</exception>
    internal void ReserveFor(HostedCaller caller)
    {
        if (Volatile.Read(ref _disposed) != 0)
            throw new RpcException(new Status(StatusCode.Unavailable, "the enforcer is shutting down"));
        int held = _perCaller.AddOrUpdate(KeyOf(caller), 1, (_, n) => n + 1);
        if (held > KernelEpisodes.PerCaller)
        {
            Release(caller);
            throw new RpcException(new Status(StatusCode.ResourceExhausted,
                $"{caller.Name} holds {KernelEpisodes.PerCaller} kernel backends, the most one caller may; close one first"));
        }
    }

    internal void Release(HostedCaller caller) => Release(KeyOf(caller));

    private void Release(string key) => _perCaller.AddOrUpdate(key, 0, (_, n) => Math.Max(0, n - 1));

    private static string KeyOf(HostedCaller caller) => caller.Uid?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "tcp";

    internal Entry Add(HostedCaller caller, KernelBackend backend, string scenario)
    {
        var entry = new Entry(Guid.NewGuid().ToString("N"), caller, backend);
        _entries[entry.Id] = entry;
        Watch(entry, caller);
        log.KernelBackendOpened(entry.Id, caller.Name, scenario, backend.CgroupsRoot);
        if (Volatile.Read(ref _disposed) != 0)
            Close(entry, "the daemon stopping");
        return entry;
    }

    /// <summary>The backend <paramref name="id"/>, if <paramref name="caller"/> may use it.</summary>
    /// <exception cref="RpcException">NOT_FOUND, PERMISSION_DENIED.</exception>
    internal Entry Get(string id, HostedCaller caller)
    {
        if (!_entries.TryGetValue(id, out var entry))
            throw new RpcException(new Status(StatusCode.NotFound, $"no kernel backend {id} (closed, dropped after its client went away, or never opened)"));
        if (!caller.IsAdmin && entry.Owner != caller.Uid)
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"kernel backend {id} was not opened by {caller.Name}"));
        Watch(entry, caller);
        return entry;
    }

    internal void Close(string id, HostedCaller caller) => Close(Get(id, caller), "Close by " + caller.Name);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        foreach (var entry in _entries.Values)
            Close(entry, "the daemon stopping");
    }

    private void Close(Entry entry, string why)
    {
        _entries.TryRemove(entry.Id, out _);
        if (entry.Close())
        {
            Release(entry.OwnerKey);
            log.KernelBackendClosed(entry.Id, why);
        }
    }

    private void Watch(Entry entry, HostedCaller caller)
    {
        if (entry.Connection == caller.ConnectionClosed || !caller.ConnectionClosed.CanBeCanceled)
            return;
        entry.Connection = caller.ConnectionClosed;
        var connection = caller.ConnectionClosed;
        connection.Register(() => _ = CloseIfAbandonedAsync(entry, connection));
    }

    private async Task CloseIfAbandonedAsync(Entry entry, CancellationToken connection)
    {
        await Task.Delay(clientGoneGrace).ConfigureAwait(false);
        if (entry.Connection == connection && !entry.Closed)
            Close(entry, $"its client's connection closed {clientGoneGrace.TotalSeconds} s ago and no other used it since");
    }
}
