using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mis.Anomaly.Corpus;

/// <summary>
/// The servers the corpus's network workloads talk to, all on 127.0.0.1 with ports the kernel
/// picks: an HTTP server, a reverse-shell "attacker" listener, and a sink. Nothing leaves the
/// machine. Every connection is bounded in time; Dispose stops them all.
/// </summary>
public sealed class LoopbackServers : IDisposable
{
    private static readonly TimeSpan ConnectionLimit = TimeSpan.FromSeconds(15);

    private readonly TcpListener _http = new(IPAddress.Loopback, 0);
    private readonly TcpListener _shell = new(IPAddress.Loopback, 0);
    private readonly TcpListener _sink = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops = [];

    internal LoopbackServers()
    {
        foreach (var (listener, serve) in new (TcpListener, Func<TcpClient, CancellationToken, Task>)[] { (_http, ServeHttp), (_shell, ServeShell), (_sink, ServeSink) })
        {
            listener.Start();
            _loops.Add(Task.Run(() => Accept(listener, serve)));
        }
    }

    internal int HttpPort => ((IPEndPoint)_http.LocalEndpoint).Port;

    internal int ShellPort => ((IPEndPoint)_shell.LocalEndpoint).Port;

    internal int SinkPort => ((IPEndPoint)_sink.LocalEndpoint).Port;

    /// <summary>Bytes the sink and the HTTP server received (the exfiltration really happened).</summary>
    internal long BytesReceived => Interlocked.Read(ref _received);

    private long _received;

    private async Task Accept(TcpListener listener, Func<TcpClient, CancellationToken, Task> serve)
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = Task.Run(async () =>
            {
                using var c = client;
                using var limit = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                limit.CancelAfter(ConnectionLimit);
                try
                {
                    await serve(c, limit.Token);
                }
                catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
                {
                    // The workload went away (or was killed): nothing to do.
                }
            });
        }
    }

    private async Task ServeHttp(TcpClient client, CancellationToken stop)
    {
        var stream = client.GetStream();
        var buffer = new byte[64 * 1024];
        var request = new StringBuilder();
        int headerEnd;
        while ((headerEnd = request.ToString().IndexOf("\r\n\r\n", StringComparison.Ordinal)) < 0)
        {
            int n = await stream.ReadAsync(buffer, stop);
            if (n == 0)
                return;
            request.Append(Encoding.Latin1.GetString(buffer, 0, n));
        }
        string head = request.ToString();
        string[] first = head[..head.IndexOf('\r')].Split(' ');
        long length = head.Split("\r\n").Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Trim().Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            .Select(p => long.TryParse(p[1].Trim(), out long v) ? v : 0).FirstOrDefault();
        long body = request.Length - headerEnd - 4;
        while (body < length)
        {
            int n = await stream.ReadAsync(buffer, stop);
            if (n == 0)
                break;
            body += n;
        }
        Interlocked.Add(ref _received, body);
        (int status, string type, string content) = first.Length > 1 ? (first[0], first[1]) switch
        {
            ("GET", "/page") => (200, "text/html", "<html><body>" + string.Concat(Enumerable.Repeat("<p>hello from the loopback server</p>", 40)) + "</body></html>\n"),
            ("GET", "/tool.sh") => (200, "text/x-sh", CorpusWorkloads.DroppedScript),
            ("POST", _) => (200, "text/plain", "ok\n"),
            _ => (404, "text/plain", "not found\n"),
        } : (400, "text/plain", "bad request\n");
        byte[] bytes = Encoding.UTF8.GetBytes(content);
        string reply = $"HTTP/1.1 {status} {(status == 200 ? "OK" : "Error")}\r\nContent-Type: {type}\r\nContent-Length: {bytes.Length}\r\nConnection: close\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(reply), stop);
        await stream.WriteAsync(bytes, stop);
    }

    // The "attacker": types a command, reads what comes back for a moment, types the next.
    private async Task ServeShell(TcpClient client, CancellationToken stop)
    {
        var stream = client.GetStream();
        var drain = Task.Run(async () =>
        {
            var buffer = new byte[16 * 1024];
            int n;
            while ((n = await stream.ReadAsync(buffer, stop)) > 0)
                Interlocked.Add(ref _received, n);
        }, stop);
        foreach (var command in CorpusWorkloads.ShellCommands)
        {
            await Task.Delay(150, stop);
            await stream.WriteAsync(Encoding.ASCII.GetBytes(command + "\n"), stop);
        }
        await Task.WhenAny(drain, Task.Delay(2000, stop));
    }

    private async Task ServeSink(TcpClient client, CancellationToken stop)
    {
        var stream = client.GetStream();
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await stream.ReadAsync(buffer, stop)) > 0)
            Interlocked.Add(ref _received, n);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_stop.IsCancellationRequested)
            return;
        _stop.Cancel();
        _http.Stop();
        _shell.Stop();
        _sink.Stop();
        Task.WaitAll([.. _loops], TimeSpan.FromSeconds(2));
        _stop.Dispose();
    }
}
