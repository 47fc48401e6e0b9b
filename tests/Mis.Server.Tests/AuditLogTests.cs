using System.Text.Json;
using Mis.Server.Observability;

namespace Mis.Server.Tests;

/// <summary>The audit log: rotation by size, the number of files kept, the JSON-lines fields and the file mode.</summary>
public sealed class AuditLogTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-server-unit-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void The_audit_log_rotates_by_size_and_keeps_max_files()
    {
        string path = Path.Combine(_dir, "audit.jsonl");
        using (var log = new AuditLog(path, maxBytes: 600, maxFiles: 2))
        {
            for (int i = 0; i < 30; i++)
                log.Write(new AuditRecord(DateTimeOffset.UtcNow, "GetStats", "ipv4:127.0.0.1:1", $"{{\"n\":{i}}}", "OK", null, 0.1));
        }

        Assert.Equal(["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"], Directory.GetFiles(_dir).Select(Path.GetFileName).Order());
        Assert.All(Directory.GetFiles(_dir), f => Assert.InRange(new FileInfo(f).Length, 1, 600));
        var newest = File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal("{\"n\":29}", newest[^1].GetProperty("arguments").GetString());
        Assert.False(newest[^1].TryGetProperty("detail", out _)); // null fields are left out
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public void Lines_are_written_in_order_and_an_empty_request_is_summarised_as_the_formatter_writes_it()
    {
        string path = Path.Combine(_dir, "ordered.jsonl");
        using (var log = new AuditLog(path, maxBytes: 1 << 20, maxFiles: 1))
        {
            for (int i = 0; i < 100; i++)
            {
                log.Write(new AuditRecord(DateTimeOffset.UtcNow, "GetStats", "unix:/run/mis.sock", $"{{\"n\":{i}}}", "OK", i % 2 == 0 ? null : "<\"detail\">", i));
                Assert.Equal(i + 1, File.ReadAllLines(path).Length); // in the file when Write returns
            }
        }
        var lines = File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(Enumerable.Range(0, 100).Select(i => $"{{\"n\":{i}}}"), lines.Select(l => l.GetProperty("arguments").GetString()));
        Assert.Contains("\"detail\":\"<\\\"detail\\\">\"", File.ReadAllLines(path)[1]); // quotes escaped, angle brackets kept

        foreach (var message in new Google.Protobuf.IMessage[] { new Mis.Policy.V1.GetStatsRequest(), new Mis.Policy.V1.ListCgroupsRequest(), new Mis.Policy.V1.KillProcessRequest { CgroupId = 7 } })
            Assert.Equal(Google.Protobuf.JsonFormatter.Default.Format(message), Mis.Server.Grpc.AuditInterceptor.Summarize(message));
    }
}
