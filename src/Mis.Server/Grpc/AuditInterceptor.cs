using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Mis.Policy.V1;
using Mis.Server.Engine;
using Mis.Server.Hosting;
using Mis.Server.Observability;

namespace Mis.Server.Grpc;

/// <summary>
/// Wraps every RPC: maps engine refusals to status codes, records the latency histogram and
/// the call count, and writes the audit line (time, method, peer, the caller's uid and role, arguments, status).
/// </summary>
public sealed class AuditInterceptor(RpcMetrics metrics, AuditSink audit, GrpcPipeline pipeline, ILogger<AuditInterceptor> log) : Interceptor
{
    private readonly bool _metrics = pipeline.Metrics;

    private const int MaxArgumentChars = 1024;
    private const string EmptyMessage = "{ }";

    /// <inheritdoc />
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        long start = Stopwatch.GetTimestamp();
        Status status = Status.DefaultSuccess;
        try
        {
            return await continuation(request, context).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            var mapped = Map(e, context.Method);
            status = mapped.Status;
            throw mapped;
        }
        finally
        {
            Done(context, request, status, start);
        }
    }

    /// <inheritdoc />
    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        long start = Stopwatch.GetTimestamp();
        Status status = Status.DefaultSuccess;
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            var mapped = Map(e, context.Method);
            status = mapped.Status;
            throw mapped;
        }
        finally
        {
            Done(context, request, status, start);
        }
    }

    /// <summary>The status code as gRPC spells it (INVALID_ARGUMENT), for the audit log and metric labels.</summary>
    internal static string CodeName(StatusCode code) => code switch
    {
        StatusCode.OK => "OK",
        StatusCode.InvalidArgument => "INVALID_ARGUMENT",
        StatusCode.NotFound => "NOT_FOUND",
        StatusCode.FailedPrecondition => "FAILED_PRECONDITION",
        StatusCode.PermissionDenied => "PERMISSION_DENIED",
        StatusCode.Unavailable => "UNAVAILABLE",
        StatusCode.Cancelled => "CANCELLED",
        StatusCode.DeadlineExceeded => "DEADLINE_EXCEEDED",
        StatusCode.ResourceExhausted => "RESOURCE_EXHAUSTED",
        StatusCode.Unimplemented => "UNIMPLEMENTED",
        StatusCode.Internal => "INTERNAL",
        _ => code.ToString().ToUpperInvariant(),
    };

    /// <summary>The short method name: <c>/mis.policy.v1.PolicyService/GetStats</c> gives <c>GetStats</c>.</summary>
    internal static string ShortName(string method) => method[(method.LastIndexOf('/') + 1)..];

    /// <summary>Who called; under mutual TLS also the client certificate's subject.</summary>
    internal static string Peer(ServerCallContext context) => Peer(context.GetHttpContext());

    /// <summary>
    /// <c>ipv4:ADDRESS:PORT</c> / <c>ipv6:[ADDRESS]:PORT</c> as gRPC spells peers, <c>unix:PATH</c>
    /// for the Unix socket (which has no remote address), plus the client certificate's subject.
    /// </summary>
    internal static string Peer(HttpContext http)
    {
        var connection = http.Connection;
        string peer = connection.RemoteIpAddress is { } ip
            ? ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"ipv6:[{ip}]:{connection.RemotePort}" : $"ipv4:{ip}:{connection.RemotePort}"
            : $"unix:{http.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionEndPointFeature>()?.LocalEndPoint}";
        return connection.ClientCertificate?.Subject is { } subject ? $"{peer} ({subject})" : peer;
    }

    private RpcException Map(Exception e, string method) => e switch
    {
        RpcException rpc => rpc,
        EngineException engine => new RpcException(new Status(engine.Error switch
        {
            EngineError.InvalidArgument => StatusCode.InvalidArgument,
            EngineError.NotFound => StatusCode.NotFound,
            EngineError.FailedPrecondition => StatusCode.FailedPrecondition,
            EngineError.PermissionDenied => StatusCode.PermissionDenied,
            _ => StatusCode.Unavailable,
        }, engine.Message)),
        OperationCanceledException => new RpcException(new Status(StatusCode.Cancelled, "the call was cancelled")),
        _ => Unexpected(e, method),
    };

    private RpcException Unexpected(Exception e, string method)
    {
        log.RpcFailed(e, ShortName(method));
        return new RpcException(new Status(StatusCode.Internal, $"{e.GetType().Name}: {e.Message}"));
    }

    private void Done(ServerCallContext context, object request, Status status, long start)
    {
        var elapsed = Stopwatch.GetElapsedTime(start);
        string method = ShortName(context.Method);
        string code = CodeName(status.StatusCode);
        string peer = Peer(context);
        if (_metrics)
            metrics.Observe(method, code, elapsed);
        // The caller as it was authorized; a call refused before that (a refused TCP caller) is
        // still named by its peer, and a Unix-socket call by the credentials of its connection.
        var caller = ControlPlaneAccess.KnownCaller(context);
        var credentials = context.GetHttpContext().Features.Get<PeerCredentialsFeature>()?.Credentials;
        audit.Write(new AuditRecord(DateTimeOffset.UtcNow, method, peer, Summarize(request), code,
            status.StatusCode == StatusCode.OK ? null : status.Detail, Math.Round(elapsed.TotalMilliseconds, 3))
        {
            Uid = credentials?.Uid,
            Pid = credentials?.Pid,
            Role = caller?.Role,
        });
        log.RpcDone(method, peer, code, elapsed.TotalMilliseconds);
    }

    /// <summary>The request as compact JSON, environment values redacted (they may hold secrets), cut to a bounded length.</summary>
    /// <param name="request">The request message.</param>
    public static string Summarize(object request)
    {
        // A message with every field at its default (GetStats, ListCgroups without flags) is
        // what the formatter writes for it, without running the formatter's reflection.
        if (request is IMessage { } empty && empty.CalculateSize() == 0)
            return EmptyMessage;
        if (request is RunWorkloadRequest run && run.Env.Count > 0)
        {
            var copy = run.Clone();
            for (int i = 0; i < copy.Env.Count; i++)
                copy.Env[i] = copy.Env[i][..(copy.Env[i].IndexOf('=', StringComparison.Ordinal) + 1)] + "[redacted]";
            request = copy;
        }
        string text = request is IMessage message ? JsonFormatter.Default.Format(message) : request.ToString() ?? "";
        return text.Length <= MaxArgumentChars ? text : text[..MaxArgumentChars] + "…";
    }
}

/// <summary>The optional audit log as a service: writes go nowhere when <c>[logging] audit_log_path</c> is empty.</summary>
public sealed class AuditSink(AuditLog? log, ILogger<AuditSink> logger)
{
    private int _failed;

    internal AuditLog? Log => log;

    internal void Write(AuditRecord record)
    {
        if (log is null)
            return;
        try
        {
            log.Write(record);
        }
        catch (IOException e)
        {
            // Log the first failure only: a full disk would otherwise double every RPC's output.
            if (Interlocked.Exchange(ref _failed, 1) == 0)
                logger.AuditWriteFailed(log.Path, e.Message);
        }
    }
}
