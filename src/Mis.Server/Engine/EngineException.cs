namespace Mis.Server.Engine;

/// <summary>Why the engine refused a request; the gRPC layer maps each kind to one status code.</summary>
public enum EngineError
{
    /// <summary>The request itself is wrong (zero id, unknown action, TTL too long, empty command, ...).</summary>
    InvalidArgument,

    /// <summary>The cgroup is not one this enforcer manages; nothing was done to it.</summary>
    NotFound,

    /// <summary>The request does not fit the current state (workload exited, policy file broken, ...).</summary>
    FailedPrecondition,

    /// <summary>The caller may not do this (an unprivileged caller outside its own workloads, runtime rules, ...).</summary>
    PermissionDenied,

    /// <summary>The engine is shutting down, or the kernel backend cannot run here.</summary>
    Unavailable,
}

/// <summary>A request the engine refused, with the reason a caller can act on.</summary>
public sealed class EngineException(EngineError error, string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>What kind of refusal this is.</summary>
    internal EngineError Error { get; } = error;

    internal static EngineException Invalid(string message) => new(EngineError.InvalidArgument, message);

    internal static EngineException NotManaged(ulong cgroupId) =>
        new(EngineError.NotFound, $"cgroup {cgroupId} is not managed by this enforcer; nothing was done to it");
}
