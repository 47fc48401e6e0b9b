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
}
