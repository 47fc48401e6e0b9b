using Grpc.Core;
using Grpc.Core.Interceptors;
using Mis.Server.Hosting;

namespace Mis.Gym.Server;

/// <summary>
/// Answers PERMISSION_DENIED, with why, to every call on a connection a MIS-managed workload made
/// (<see cref="WorkloadConnections"/>): a command scenario's agent program must not reset, step
/// or close its own episode, or any other, from inside it.
/// </summary>
internal sealed class RefuseWorkloadCalls : Interceptor
{
    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, responseStream, context);
    }

    private static void Check(ServerCallContext context)
    {
        if (WorkloadConnections.Refusal(context.GetHttpContext()) is { } refusal)
            throw new RpcException(new Status(StatusCode.PermissionDenied, refusal));
    }
}
