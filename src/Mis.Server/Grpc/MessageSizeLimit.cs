using System.Buffers;
using System.Buffers.Binary;
using Microsoft.AspNetCore.Http;
using Mis.Server.Observability;

namespace Mis.Server.Grpc;

/// <summary>
/// Refuses a gRPC request whose message is larger than <c>[grpc] max_message_bytes</c> with
/// INVALID_ARGUMENT and the reason, before anything reads it. gRPC's own limit (also set, as the
/// backstop for compressed messages) would answer RESOURCE_EXHAUSTED after buffering it; the
/// length prefix of the message (1 flag byte, 4 bytes big-endian length) is enough to decide, and
/// nothing is consumed, so the gRPC handler reads the request as if this middleware were not there.
/// </summary>
public sealed class MessageSizeLimit(int maxBytes, RpcMetrics metrics, AuditSink audit)
{
    internal async Task InvokeAsync(HttpContext http, RequestDelegate next)
    {
        if (http.Request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) != true)
        {
            await next(http).ConfigureAwait(false);
            return;
        }
        var reader = http.Request.BodyReader;
        var read = await reader.ReadAtLeastAsync(5, http.RequestAborted).ConfigureAwait(false);
        long length = -1;
        if (read.Buffer.Length >= 5)
        {
            Span<byte> prefix = stackalloc byte[5];
            read.Buffer.Slice(0, 5).CopyTo(prefix);
            length = BinaryPrimitives.ReadUInt32BigEndian(prefix[1..]);
        }
        reader.AdvanceTo(read.Buffer.Start);
        if (length <= maxBytes)
        {
            await next(http).ConfigureAwait(false);
            return;
        }

        string method = AuditInterceptor.ShortName(http.Request.Path.Value ?? "");
        string detail = $"request message of {length} bytes exceeds [grpc] max_message_bytes ({maxBytes})";
        metrics.Observe(method, "INVALID_ARGUMENT", TimeSpan.Zero);
        audit.Write(new AuditRecord(DateTimeOffset.UtcNow, method, AuditInterceptor.Peer(http), $"<{length} bytes, not read>", "INVALID_ARGUMENT", detail, 0)
        {
            Uid = http.Features.Get<PeerCredentialsFeature>()?.Credentials.Uid,
            Pid = http.Features.Get<PeerCredentialsFeature>()?.Credentials.Pid,
        });
        // A trailers-only response: the status travels in the headers, with no message.
        http.Response.StatusCode = StatusCodes.Status200OK;
        http.Response.ContentType = "application/grpc";
        http.Response.Headers["grpc-status"] = "3";
        http.Response.Headers["grpc-message"] = Uri.EscapeDataString(detail);
        await http.Response.CompleteAsync().ConfigureAwait(false);
    }
}
