using System.Collections.Concurrent;

namespace Mis.Server.Observability;

/// <summary>
/// Per-method RPC latency histograms (Prometheus style: cumulative buckets in seconds) and call
/// counts per status code. Lock-free: each observation is a few interlocked adds.
/// </summary>
public sealed class RpcMetrics
{
    /// <summary>Bucket upper bounds in seconds: 50 µs (a loopback unary call) up to 10 s (a graceful kill).</summary>
    internal static readonly double[] Buckets = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly ConcurrentDictionary<string, Histogram> _latency = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Method, string Code), long[]> _calls = new();

    /// <summary>Records one finished call.</summary>
    /// <param name="method">The short method name, e.g. <c>GetStats</c>.</param>
    /// <param name="code">The status code as gRPC spells it, e.g. <c>OK</c>.</param>
    /// <param name="elapsed">Time spent in the call.</param>
    public void Observe(string method, string code, TimeSpan elapsed)
    {
        _latency.GetOrAdd(method, _ => new Histogram()).Observe(elapsed.TotalSeconds);
        Interlocked.Increment(ref _calls.GetOrAdd((method, code), _ => new long[1])[0]);
    }

    /// <summary>Histograms by method.</summary>
    internal IEnumerable<(string Method, Histogram Histogram)> Latencies =>
        _latency.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => (kv.Key, kv.Value));

    /// <summary>Call counts by method and status code.</summary>
    internal IEnumerable<(string Method, string Code, long Count)> Calls =>
        _calls.OrderBy(kv => kv.Key.Method, StringComparer.Ordinal).ThenBy(kv => kv.Key.Code, StringComparer.Ordinal)
            .Select(kv => (kv.Key.Method, kv.Key.Code, Interlocked.Read(ref kv.Value[0])));

    /// <summary>One method's latency distribution.</summary>
    public sealed class Histogram
    {
        private readonly long[] _counts = new long[Buckets.Length + 1]; // last: above every bound
        private long _count;
        private long _sumNanos;

        internal void Observe(double seconds)
        {
            int i = 0;
            while (i < Buckets.Length && seconds > Buckets[i])
                i++;
            Interlocked.Increment(ref _counts[i]); // Buckets.Length: above every bound
            Interlocked.Increment(ref _count);
            Interlocked.Add(ref _sumNanos, (long)(seconds * 1e9));
        }

        /// <summary>Cumulative counts for each bound in <see cref="Buckets"/>, then +Inf.</summary>
        internal long[] Cumulative()
        {
            var result = new long[_counts.Length];
            long running = 0;
            for (int i = 0; i < _counts.Length; i++)
                result[i] = running += Interlocked.Read(ref _counts[i]);
            return result;
        }

        internal long Count => Interlocked.Read(ref _count);

        internal double SumSeconds => Interlocked.Read(ref _sumNanos) / 1e9;
    }
}
