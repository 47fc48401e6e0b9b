using Grpc.Core;
using Microsoft.Extensions.Logging;
using Mis.Enforcer.Configuration;
using Mis.Gym.Envs;
using Mis.Gym.Scenarios;
using Mis.Gym.Spaces;
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
        string backend = request.Backend.Length == 0 ? MisGym.Sim : request.Backend;
        if (!MisGym.Backends.Contains(backend))
            throw Refuse(StatusCode.InvalidArgument, $"unknown backend \"{backend}\"; expected one of: {string.Join(", ", MisGym.Backends)}");
        if (!options.AllowedBackends.Contains(backend))
            throw Refuse(StatusCode.PermissionDenied,
                $"this server does not offer the {backend} backend (it allows: {string.Join(", ", options.AllowedBackends)}; see `mis gym serve --backend-allow`)");
        var (path, name) = catalog.Resolve(request.Scenario);
        var slot = envs.Add(() => MakeEnv(path, backend, request.RecordEpisodeStatistics), name, backend);
        log.GymEnvMade(slot.Id, name, backend, context.Peer);
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
        var slot = envs.Get(request.EnvId);
        return Task.FromResult(new Wire.SpacesResponse { ObservationSpace = slot.ObservationSpace, ActionSpace = slot.ActionSpaceMessage });
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
