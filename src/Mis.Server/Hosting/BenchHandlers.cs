using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Mis.Policy.V1;

namespace Mis.Server.Hosting;

/// <summary>The stand-in handlers of <see cref="GrpcHandler.EmptyService"/> and <see cref="GrpcHandler.RawKestrel"/> (benchmarks only).</summary>
internal static class BenchHandlers
{
    private const string GetStatsPath = "/mis.policy.v1.PolicyService/GetStats";

    // An empty message: no compression flag, length 0.
    private static readonly byte[] EmptyFrame = new byte[5];

    private static readonly Task<GetStatsResponse> Empty = Task.FromResult(new GetStatsResponse());

    /// <summary>GetStats answered by Kestrel alone, without routing or grpc-dotnet; everything else passes on.</summary>
    internal static async Task RawGetStatsAsync(HttpContext http, RequestDelegate next)
    {
        if (!string.Equals(http.Request.Path.Value, GetStatsPath, StringComparison.Ordinal))
        {
            await next(http).ConfigureAwait(false);
            return;
        }
        var reader = http.Request.BodyReader;
        while (true)
        {
            var read = await reader.ReadAsync(http.RequestAborted).ConfigureAwait(false);
            reader.AdvanceTo(read.Buffer.End);
            if (read.IsCompleted)
                break;
        }
        http.Response.ContentType = "application/grpc";
        http.Response.AppendTrailer("grpc-status", "0");
        await http.Response.BodyWriter.WriteAsync(EmptyFrame, http.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>The policy service with a GetStats that does nothing.</summary>
    internal sealed class EmptyPolicyService : PolicyService.PolicyServiceBase
    {
        public override Task<GetStatsResponse> GetStats(GetStatsRequest request, ServerCallContext context) => Empty;
    }
}
