using Mis.Gym;
using Mis.Gym.Envs;

namespace Mis.Gym.Server;

/// <summary>Makes an environment: scenario file, backend name, whether to record episode statistics (<see cref="MisGym.Make(string, string, bool)"/>).</summary>
public delegate IEnv<float[], int> GymEnvFactory(string scenarioPath, string backend, bool recordStatistics);

/// <summary>How <c>mis gym serve</c> runs (the command's options).</summary>
public sealed record GymServerOptions
{
    /// <summary>Default cap on open environments.</summary>
    public const int DefaultMaxEnvs = 32;

    /// <summary>Where to listen (default <see cref="GymListenAddress.Default"/>).</summary>
    public GymListenAddress Listen { get; init; } = GymListenAddress.Parse(GymListenAddress.Default);

    /// <summary>
    /// The cgroup tree whose processes may not call (<see cref="Mis.Server.Hosting.WorkloadConnections"/>):
    /// every MIS workload, the kernel environments' among them. Tests name another.
    /// </summary>
    internal string? WorkloadTree { get; init; } = Mis.Server.Hosting.WorkloadConnections.DefaultTree;

    /// <summary>The directory scenario names are resolved in; clients cannot name files outside it.</summary>
    public required string ScenarioDirectory { get; init; }

    /// <summary>
    /// Backends clients may ask for. Default: only <c>sim</c>; the kernel backend starts real
    /// processes in cgroups under BPF programs, so a server offers it only when told to.
    /// </summary>
    public IReadOnlyList<string> AllowedBackends { get; init; } = [MisGym.Sim];

    /// <summary>Open environments at most; a Make beyond it is RESOURCE_EXHAUSTED.</summary>
    public int MaxEnvs
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxEnvs), value, "the cap on open environments must be at least 1");
    } = DefaultMaxEnvs;

    /// <summary>Default <see cref="MaxVectorEnvs"/>.</summary>
    public const int DefaultMaxVectorEnvs = 256;

    /// <summary>
    /// Sub-environments one vector may have at most; a VectorReset asking for more is
    /// INVALID_ARGUMENT. A vector counts once against <see cref="MaxEnvs"/> (vectors are sim only,
    /// and a sim environment holds a few kilobytes, no process or cgroup).
    /// </summary>
    public int MaxVectorEnvs
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxVectorEnvs), value, "the cap on a vector's size must be at least 1");
    } = DefaultMaxVectorEnvs;

    /// <summary>Default <see cref="IdleTimeout"/>.</summary>
    public static readonly TimeSpan DefaultIdleTimeout = TimeSpan.FromMinutes(30);

    /// <summary>
    /// An environment no call used for this long is closed by the server (its id is then NOT_FOUND,
    /// saying so); <see cref="TimeSpan.Zero"/> keeps environments until Close or shutdown.
    /// </summary>
    public TimeSpan IdleTimeout
    {
        get;
        init => field = value >= TimeSpan.Zero ? value : throw new ArgumentOutOfRangeException(nameof(IdleTimeout), value, "the idle timeout cannot be negative");
    } = DefaultIdleTimeout;

    /// <summary>Default <see cref="ClientGoneGrace"/>.</summary>
    public static readonly TimeSpan DefaultClientGoneGrace = TimeSpan.FromSeconds(10);

    /// <summary>
    /// When the connection a client made an environment on closes (the client went away without
    /// Close), the environment is closed once this long has passed with no call on it (a client
    /// that reconnects and goes on using it keeps it); for the kernel backend that kills the
    /// episode's process and removes its cgroup. <see cref="TimeSpan.Zero"/>: only the idle timeout applies.
    /// </summary>
    public TimeSpan ClientGoneGrace
    {
        get;
        init => field = value >= TimeSpan.Zero ? value : throw new ArgumentOutOfRangeException(nameof(ClientGoneGrace), value, "the grace period cannot be negative");
    } = DefaultClientGoneGrace;

    /// <summary>The clock idleness is measured on (tests substitute one).</summary>
    internal TimeProvider Clock { get; init; } = TimeProvider.System;

    /// <summary>How environments are made (tests substitute one; default <see cref="MisGym.Make(string, string, bool)"/>).</summary>
    internal GymEnvFactory MakeEnv { get; init; } = MisGym.Make;
}
