using Grpc.Core;
using Microsoft.Extensions.Logging;
using Mis.Enforcer.Configuration;
using Mis.Gym.Envs;
using Mis.Gym.Scenarios;
using Mis.Gym.Spaces;
using Mis.Gym.Vector;
using Wire = Mis.Gym.V1;

namespace Mis.Gym.Server;

/// <summary>
/// mis.gym.v1.GymService: scenarios from the <see cref="ScenarioCatalog"/>, environments in the
/// <see cref="GymEnvTable"/>. Refusals are <see cref="RpcException"/>s carrying the status and the
/// reason (the contract's error table is in proto/mis/gym/v1/gym.proto).
/// </summary>
public sealed class GymServiceImpl(GymServerOptions options, ScenarioCatalog catalog, GymEnvTable envs, ILogger<GymServiceImpl> log)
    : Wire.GymService.GymServiceBase
{
    /// <inheritdoc />
    public override Task<Wire.ListScenariosResponse> ListScenarios(Wire.ListScenariosRequest request, ServerCallContext context)
    {
        var response = new Wire.ListScenariosResponse { Directory = catalog.Directory, Backends = { options.AllowedBackends } };
        foreach (string name in catalog.Names())
            response.Scenarios.Add(Describe(name));
        return Task.FromResult(response);
    }

    /// <inheritdoc />
    public override Task<Wire.MakeResponse> Make(Wire.MakeRequest request, ServerCallContext context)
    {
        string backend = AllowedBackend(request.Backend);
        var (path, name) = catalog.Resolve(request.Scenario);
        var slot = envs.Add(() => MakeEnv(path, backend, request.RecordEpisodeStatistics), name, backend);
        log.GymEnvMade(slot.Id, name, backend, context.Peer);
        WatchClient(slot, context);
        return Task.FromResult(new Wire.MakeResponse
        {
            EnvId = slot.Id,
            Scenario = name,
            Backend = backend,
            ObservationSpace = slot.ObservationSpace,
            ActionSpace = slot.ActionSpaceMessage,
        });
    }

    /// <inheritdoc />
    public override async Task<Wire.ResetResponse> Reset(Wire.ResetRequest request, ServerCallContext context)
    {
        var slot = envs.Get(request.EnvId);
        int? seed = GymMapping.ToSeed(request);
        var reset = await slot.ResetAsync(seed, GymMapping.ToOptions(request.Options), context.CancellationToken).ConfigureAwait(false);
        return new Wire.ResetResponse { Observation = { reset.Observation }, Info = GymMapping.ToProto(reset.Info) };
    }

    /// <inheritdoc />
    public override async Task<Wire.StepResponse> Step(Wire.StepRequest request, ServerCallContext context)
    {
        var slot = envs.Get(request.EnvId);
        int action = GymMapping.ToDiscreteAction(request.Action, slot.ActionSpace);
        var step = await slot.StepAsync(action, context.CancellationToken).ConfigureAwait(false);
        return new Wire.StepResponse
        {
            Observation = { step.Observation },
            Reward = step.Reward,
            Terminated = step.Terminated,
            Truncated = step.Truncated,
            Info = GymMapping.ToProto(step.Info),
        };
    }

    /// <inheritdoc />
    public override async Task<Wire.CloseResponse> Close(Wire.CloseRequest request, ServerCallContext context)
    {
        try
        {
            await envs.CloseAsync(request.EnvId).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not RpcException)
        {
            // It is out of the table either way: the id is unknown from now on.
            log.GymEnvCloseFailed(request.EnvId, $"{e.GetType().Name}: {e.Message}");
            throw Refuse(StatusCode.Internal, $"environment {request.EnvId} was removed, but closing it failed: {e.GetType().Name}: {e.Message}");
        }
        log.GymEnvClosed(request.EnvId);
        return new Wire.CloseResponse();
    }

    /// <inheritdoc />
    public override Task<Wire.SpacesResponse> Spaces(Wire.SpacesRequest request, ServerCallContext context)
    {
        var slot = envs.GetSlot(request.EnvId);
        return Task.FromResult(new Wire.SpacesResponse { ObservationSpace = slot.ObservationSpace, ActionSpace = slot.ActionSpaceMessage });
    }

    /// <inheritdoc />
    public override async Task<Wire.VectorResetResponse> VectorReset(Wire.VectorResetRequest request, ServerCallContext context)
    {
        bool made = request.VectorId.Length == 0;
        if (!made && (request.Scenario.Length != 0 || request.Backend.Length != 0 || request.NumEnvs != 0 || request.RecordEpisodeStatistics))
            throw Refuse(StatusCode.InvalidArgument,
                "vector_id is set, so leave scenario, backend, num_envs and record_episode_statistics unset: a vector keeps what it was made with " +
                "(an empty vector_id makes a new vector)");
        // The seed is checked before a new vector is made, so a bad one leaves nothing behind.
        int? seed = GymMapping.ToVectorSeed(request.Seed, made ? CheckedVectorSize(request.NumEnvs) : envs.GetVector(request.VectorId).NumEnvs);
        var vector = made ? MakeVector(request, context) : envs.GetVector(request.VectorId);
        VectorResetResult<float[]> reset;
        try
        {
            reset = await vector.ResetAsync(seed, context.CancellationToken).ConfigureAwait(false);
        }
        catch when (made)
        {
            await envs.CloseAsync(vector.Id).ConfigureAwait(false); // the client never learnt its id
            throw;
        }
        var response = new Wire.VectorResetResponse
        {
            VectorId = vector.Id,
            Scenario = vector.Scenario,
            Backend = vector.Backend,
            NumEnvs = vector.NumEnvs,
            ObservationSpace = vector.ObservationSpace,
            ActionSpace = vector.ActionSpaceMessage,
            Observations = GymMapping.ToPackedFloats(reset.Observations),
        };
        if (request.Infos)
            response.Infos.AddRange(reset.Infos.Select(GymMapping.ToProto));
        return response;
    }

    /// <inheritdoc />
    public override async Task<Wire.VectorStepResponse> VectorStep(Wire.VectorStepRequest request, ServerCallContext context)
    {
        var vector = envs.GetVector(request.VectorId);
        int[] actions = GymMapping.ToVectorActions(request.Actions, vector.ActionSpace, vector.NumEnvs);
        var step = await vector.StepAsync(actions, context.CancellationToken).ConfigureAwait(false);
        // Flat arrays: the client decodes a few contiguous blocks, not N messages.
        var response = new Wire.VectorStepResponse { Observations = GymMapping.ToPackedFloats(step.Observations) };
        response.Rewards.AddRange(step.Rewards);
        response.Terminated.AddRange(step.Terminated);
        response.Truncated.AddRange(step.Truncated);
        if (request.Infos)
            response.Infos.AddRange(step.Infos.Select(GymMapping.ToProto));
        for (int i = 0; i < step.Infos.Length; i++)
        {
            if ((step.Terminated[i] || step.Truncated[i]) && GymMapping.EpisodeOf(step.Infos[i]) is { } episode)
                response.Episodes.Add(new Wire.VectorEpisode { Env = i, Statistics = episode });
        }
        return response;
    }

    // A new vector of N sim environments; the backend is checked as Make checks it, then refused
    // unless it is sim (a kernel environment is a cgroup and a process: N of them per call would
    // be N real workloads, not a batch).
    private GymVectorSlot MakeVector(Wire.VectorResetRequest request, ServerCallContext context)
    {
        string backend = AllowedBackend(request.Backend);
        if (backend != MisGym.Sim)
            throw Refuse(StatusCode.InvalidArgument,
                $"vectors run on the {MisGym.Sim} backend only, not {backend}: make {backend} environments one at a time with Make");
        int n = CheckedVectorSize(request.NumEnvs);
        var (path, name) = catalog.Resolve(request.Scenario);
        bool record = request.RecordEpisodeStatistics;
        var vector = envs.AddVector(
            () => new SyncVectorEnv<float[], int>([.. Enumerable.Repeat<Func<Mis.Gym.IEnv<float[], int>>>(() => MakeEnv(path, backend, record), n)]),
            name, backend);
        log.GymVectorMade(vector.Id, n, name, backend, context.Peer);
        WatchClient(vector, context);
        return vector;
    }

    // A client that disappears without Close (its process died, its host went away) would leave its
    // environments, and for the kernel backend a process and a cgroup each, until the idle
    // timeout. So when the connection it made them on closes, they are closed after a grace
    // period in which no call used them: a client that reconnects and goes on keeps them.
    private void WatchClient(GymSlot slot, ServerCallContext context)
    {
        if (options.ClientGoneGrace <= TimeSpan.Zero || context.GetHttpContext().Features.Get<ClientConnection>() is not { } connection)
            return;
        slot.OnClientGone(connection.Closed, () => _ = CloseIfAbandonedAsync(slot, options.Clock.GetTimestamp()));
    }

    private async Task CloseIfAbandonedAsync(GymSlot slot, long goneAt)
    {
        await Task.Delay(options.ClientGoneGrace, options.Clock).ConfigureAwait(false);
        if (slot.UsedSince(goneAt))
            return;
        try
        {
            await envs.CloseAsync(slot.Id).ConfigureAwait(false);
            log.GymEnvClientGone(slot.Id, options.ClientGoneGrace.TotalSeconds);
        }
        catch (RpcException)
        {
            // closed meanwhile (Close, the idle timeout or shutdown)
        }
        catch (Exception e)
        {
            log.GymEnvCloseFailed(slot.Id, $"{e.GetType().Name}: {e.Message}");
        }
    }

    private int CheckedVectorSize(int numEnvs) => numEnvs >= 1 && numEnvs <= options.MaxVectorEnvs ? numEnvs
        : throw Refuse(StatusCode.InvalidArgument, $"num_envs {numEnvs} is out of range: a vector on this server has 1..{options.MaxVectorEnvs} sub-environments");

    // The backend a request names ("" is sim), if it exists and this server offers it.
    private string AllowedBackend(string requested)
    {
        string backend = requested.Length == 0 ? MisGym.Sim : requested;
        if (!MisGym.Backends.Contains(backend))
            throw Refuse(StatusCode.InvalidArgument, $"unknown backend \"{backend}\"; expected one of: {string.Join(", ", MisGym.Backends)}");
        if (!options.AllowedBackends.Contains(backend))
            throw Refuse(StatusCode.PermissionDenied,
                $"this server does not offer the {backend} backend (it allows: {string.Join(", ", options.AllowedBackends)}; see `mis gym serve --backend-allow`)");
        return backend;
    }

    // The factory's failures as the contract's statuses: a scenario file that does not load names
    // file:line:column and key; a backend that cannot run here says why.
    private Mis.Gym.IEnv<float[], int> MakeEnv(string path, string backend, bool record)
    {
        try
        {
            return options.MakeEnv(path, backend, record);
        }
        catch (ConfigException e)
        {
            throw Refuse(StatusCode.InvalidArgument, e.Message);
        }
        catch (BackendUnavailableException e)
        {
            throw Refuse(StatusCode.FailedPrecondition, $"the {backend} backend cannot run on this host: {e.Message}");
        }
        catch (Exception e) when (e is not RpcException)
        {
            // Anything else is the host failing (a cgroup or scenario file the backend could not
            // set up): the client sees what, not gRPC's bare "exception was thrown by handler".
            throw Refuse(StatusCode.Internal, $"making a {backend} environment of {path} failed: {e.GetType().Name}: {e.Message}");
        }
    }

    // A scenario's entry: its description, spaces and action names (the same for every backend,
    // so no env is made), or the reason it does not load.
    private Wire.ScenarioEntry Describe(string name)
    {
        var entry = new Wire.ScenarioEntry { Name = name };
        try
        {
            var (path, _) = catalog.Resolve(name);
            var scenario = ScenarioFile.Load(path);
            entry.Description = scenario.Description;
            var spaces = MisGym.Spaces(scenario);
            entry.ObservationSpace = GymMapping.ToProto(spaces.Observation);
            entry.ActionSpace = GymMapping.ToProto(spaces.Action);
            entry.ActionNames.AddRange(spaces.ActionNames);
        }
        catch (ConfigException e)
        {
            entry.Error = e.Message;
        }
        return entry;
    }

    private static RpcException Refuse(StatusCode code, string message) => new(new Status(code, message));
}
