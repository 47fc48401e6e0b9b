namespace Mis.Server.Hosting;

/// <summary>
/// Which parts of the per-call path the gRPC server runs. <c>mis enforcer</c> always runs
/// <see cref="Full"/>; the others exist so that <c>mis bench</c> can measure what each part costs
/// by leaving it out, on the same Kestrel settings and transports.
/// </summary>
public sealed record GrpcPipeline
{
    /// <summary>Everything on: what the enforcer serves.</summary>
    public static GrpcPipeline Full { get; } = new();

    /// <summary>The interceptor (status mapping, metrics, audit line, debug log); off leaves out all four.</summary>
    public bool Interceptor { get; init; } = true;

    /// <summary>The audit line of each call (the interceptor still runs when this is off).</summary>
    public bool Audit { get; init; } = true;

    /// <summary>The per-method latency histogram and call count (the interceptor still runs when this is off).</summary>
    public bool Metrics { get; init; } = true;

    /// <summary>The middleware that refuses oversized messages before they are read.</summary>
    public bool MessageSizeLimit { get; init; } = true;

    /// <summary>What answers the calls.</summary>
    public GrpcHandler Handler { get; init; } = GrpcHandler.Engine;
}

/// <summary>What answers the gRPC calls of a <see cref="GrpcPipeline"/>.</summary>
public enum GrpcHandler
{
    /// <summary>The policy service over the engine: the real handlers.</summary>
    Engine,

    /// <summary>A policy service whose GetStats answers a constant empty response (grpc-dotnet without the engine).</summary>
    EmptyService,

    /// <summary>
    /// Kestrel alone: a middleware ahead of routing and gRPC answers GetStats with a hand-framed
    /// empty message and <c>grpc-status: 0</c> (the floor of HTTP/2 and the transport).
    /// </summary>
    RawKestrel,
}
