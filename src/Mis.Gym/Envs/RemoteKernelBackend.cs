using System.Collections.Concurrent;
using System.Net.Sockets;
using Grpc.Core;
using Grpc.Net.Client;
using Mis.Episodes.V1;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Envs;

/// <summary>
/// The kernel backend run by the node daemon (<c>mis enforcer</c> on a Unix socket) for a caller
/// that is not root: the same <see cref="KernelBackend"/>, in the daemon, with the episode's
/// workload running as the caller (proto/mis/episodes/v1/episodes.proto). The env stays here, so
/// task, reward, observations and randomness are computed as with the in-process backend and the
/// two take the same steps.
/// </summary>
internal sealed class RemoteKernelBackend : IScenarioBackend
{
    private static readonly ConcurrentDictionary<string, GrpcChannel> Channels = new(StringComparer.Ordinal);

    private readonly KernelEpisodeService.KernelEpisodeServiceClient _client;
    private readonly string _address;
    private readonly string _id;
    private bool _disposed;

    /// <summary>Opens a backend for <paramref name="scenario"/> in the daemon at <paramref name="address"/>.</summary>
    /// <exception cref="BackendUnavailableException">The daemon cannot be reached or refused the scenario (its reason in the message).</exception>
    internal RemoteKernelBackend(string address, ActionScenario scenario, bool measuredSlowdown, bool learning)
    {
        _address = address;
        try
        {
            _client = new KernelEpisodeService.KernelEpisodeServiceClient(Channel(address));
        }
        catch (ArgumentException e)
        {
            throw new BackendUnavailableException($"{NodeDaemon.EnvironmentVariable}: {e.Message}", e);
        }
        var request = new OpenRequest
        {
            ScenarioFile = Path.GetFullPath(scenario.File),
            ScenarioText = scenario.Texts.Scenario ?? throw new ArgumentException($"scenario {scenario.Name} was not read from a file", nameof(scenario)),
            PolicyText = scenario.Texts.Policy ?? "",
            SlowdownUs = { scenario.Defcon.SlowdownUs.Select(us => (uint)us) },
            KillAtLevel1 = scenario.Defcon.KillAtLevel1,
            Learning = learning,
            ModelledSlowdown = !measuredSlowdown,
        };
        var opened = Call(() => _client.Open(request));
        _id = opened.BackendId;
        CgroupsRoot = opened.CgroupsRoot;
    }

    /// <inheritdoc />
    public string Name => MisGym.Kernel;

    /// <summary>Where the daemon keeps this backend's episode cgroups.</summary>
    internal string CgroupsRoot { get; }

    /// <summary>The running episode's cgroup, as the last action reported it.</summary>
    internal string? CgroupPath { get; private set; }

    /// <inheritdoc />
    public BackendState BeginEpisode()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CgroupPath = null;
        return ToState(Call(() => _client.Begin(new BackendRef { BackendId = _id })));
    }

    /// <inheritdoc />
    public ActionOutcome Perform(int action, bool failsByItself)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var done = Call(() => _client.Perform(new PerformRequest { BackendId = _id, Action = action, FailsByItself = failsByItself }));
        CgroupPath = done.CgroupPath;
        return new ActionOutcome((ActionResult)(int)done.Result, done.Reason, ToState(done.State));
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        try
        {
            _client.Close(new BackendRef { BackendId = _id }, deadline: DateTime.UtcNow.AddSeconds(30));
        }
        catch (RpcException)
        {
            // The daemon is gone or already dropped it: either way its episode was killed there.
        }
    }

    private static BackendState ToState(Episodes.V1.BackendState s) => new(s.Defcon, s.Violations, s.SlowdownNs, s.ElapsedNs);

    private T Call<T>(Func<T> call)
    {
        try
        {
            return call();
        }
        catch (RpcException e)
        {
            string message = $"the node daemon at {_address}: {e.Status.Detail}";
            throw e.StatusCode switch
            {
                StatusCode.InvalidArgument or StatusCode.FailedPrecondition or StatusCode.PermissionDenied
                    or StatusCode.ResourceExhausted or StatusCode.Unavailable or StatusCode.Unimplemented
                    => new BackendUnavailableException(message, e),
                _ => new InvalidOperationException($"{message} ({e.StatusCode})", e),
            };
        }
    }

    /// <summary>One channel (one HTTP/2 connection) per daemon per process: many envs share it.</summary>
    private static GrpcChannel Channel(string address) => Channels.GetOrAdd(address, a =>
    {
        string path = NodeDaemon.SocketPath(a);
        return GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                ConnectCallback = async (_, cancel) =>
                {
                    var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    try
                    {
                        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancel).ConfigureAwait(false);
                        return new NetworkStream(socket, ownsSocket: true);
                    }
                    catch
                    {
                        socket.Dispose();
                        throw;
                    }
                },
            },
        });
    });
}

/// <summary>
/// Where kernel-backend episodes run: in this process (root), or in the node daemon named by
/// <c>MIS_ENFORCER</c> (<c>unix:PATH</c>; <c>--enforcer</c> on the command line sets it), so
/// every env made in this process and in the processes it starts uses the daemon.
/// </summary>
public static class NodeDaemon
{
    /// <summary>The environment variable naming the daemon: <c>unix:PATH</c>.</summary>
    public const string EnvironmentVariable = "MIS_ENFORCER";

    /// <summary>The daemon's socket of a systemd or Kubernetes install (deploy/).</summary>
    public const string DefaultAddress = "unix:/run/mis/mis.sock";

    /// <summary>The daemon named by <see cref="EnvironmentVariable"/>, or null: in-process.</summary>
    public static string? Address => Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } a ? a : null;

    /// <summary>Checks <paramref name="address"/> and makes it this process's (and its children's) daemon.</summary>
    /// <exception cref="ArgumentException">Not <c>unix:PATH</c>.</exception>
    public static void Use(string address)
    {
        SocketPath(address);
        Environment.SetEnvironmentVariable(EnvironmentVariable, address);
    }

    /// <summary>The socket path of <c>unix:PATH</c>.</summary>
    /// <exception cref="ArgumentException">Not <c>unix:PATH</c> with an absolute path.</exception>
    internal static string SocketPath(string address) =>
        address.StartsWith("unix:/", StringComparison.Ordinal) && address.Length > "unix:/".Length
            ? address["unix:".Length..]
            : throw new ArgumentException(
                $"enforcer address \"{address}\": expected unix:PATH with an absolute path, e.g. {DefaultAddress} (the node daemon's socket; " +
                "its callers are known by their kernel credentials, which TCP does not carry)", nameof(address));

    /// <summary>The kernel backend for <paramref name="scenario"/>: the daemon's when one is named, else in-process.</summary>
    internal static IScenarioBackend KernelBackend(ActionScenario scenario, bool measuredSlowdown = true, bool learning = false, SyscallWatch? watch = null) =>
        Address is not { } address ? new Envs.KernelBackend(scenario, measuredSlowdown, learning, watch: watch)
        : watch is null ? new RemoteKernelBackend(address, scenario, measuredSlowdown, learning)
        : throw new BackendUnavailableException(
            $"syscall traces and the anomaly scorer (anomaly-kill, [anomaly]) run only in-process on the kernel backend: run as root without {EnvironmentVariable}/--enforcer, or on the simulator (backend = \"sim\"); the node daemon does not carry them yet");
}
