using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using Grpc.Net.Client;
using Wire = Mis.Gym.V1;

namespace Mis.Server.Tests;

/// <summary>The real <c>mis gym serve</c> (mis.dll beside these tests) as its own process.</summary>
public sealed partial class GymServeProcessTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-gym-serve-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Help_documents_every_option_and_the_contract()
    {
        var (exit, stdout, _) = RunToEnd("gym", "serve", "--help");
        Assert.Equal(0, exit);
        foreach (string text in new[] { "--listen", "unix:PATH", "--scenarios", "--backend-allow", "--max-envs", "--max-vector-envs", "--idle-timeout", "--client-gone-grace", "mis.gym.v1.GymService", "no autoreset", "VectorStep autoresets", "SIGTERM" })
            Assert.Contains(text, stdout);
    }

    [Fact]
    public void Wrong_options_exit_2_saying_what_to_fix()
    {
        var (exit, _, stderr) = RunToEnd("gym", "serve", "--listen", "localhost");
        Assert.Equal(2, exit);
        Assert.Contains("expected HOST:PORT", stderr);

        (exit, _, stderr) = RunToEnd("gym", "serve", "--listen", "127.0.0.1:0", "--scenarios", Path.Combine(_dir, "absent"));
        Assert.Equal(2, exit);
        Assert.Contains($"--scenarios: the scenarios directory {Path.Combine(_dir, "absent")} does not exist", stderr);

        (exit, _, stderr) = RunToEnd("gym", "serve", "--listen", "127.0.0.1:0", "--idle-timeout", "-5");
        Assert.Equal(2, exit);
        Assert.Contains("--idle-timeout -5", stderr);

        (exit, _, stderr) = RunToEnd("gym", "serve", "--listen", "127.0.0.1:0", "--client-gone-grace", "-1");
        Assert.Equal(2, exit);
        Assert.Contains("--client-gone-grace -1", stderr);

        (exit, _, stderr) = RunToEnd("gym", "serve", "--listen", "127.0.0.1:0", "--max-vector-envs", "0");
        Assert.Equal(2, exit);
        Assert.Contains("--max-vector-envs 0: allow at least 1 environment per vector", stderr);

        (exit, _, stderr) = RunToEnd("gym", "serve", "--listen", "127.0.0.1:0", "--backend-allow", "sim,gpu");
        Assert.Equal(2, exit);
        Assert.Contains("unknown backend \"gpu\"", stderr);
    }

    [Fact]
    public async Task It_serves_and_on_SIGTERM_closes_its_envs_and_exits_0()
    {
        using var server = MisProcess.Start("gym", "serve", "--listen", "127.0.0.1:0");
        try
        {
            string ready = await server.WaitForAsync("mis gym serve: ready", TimeSpan.FromSeconds(60));
            var address = ReadyAddress().Match(ready);
            Assert.True(address.Success, ready);
            using var channel = GrpcChannel.ForAddress(address.Groups[1].Value);
            var client = new Wire.GymService.GymServiceClient(channel);
            var made = await client.MakeAsync(new Wire.MakeRequest { Scenario = "data-shortcut" }, cancellationToken: Ct);
            await client.ResetAsync(new Wire.ResetRequest { EnvId = made.EnvId }, cancellationToken: Ct);

            server.Terminate();
            Assert.True(server.Process.WaitForExit(TimeSpan.FromSeconds(30)), "mis gym serve did not stop on SIGTERM");
            Assert.Equal(0, server.Process.ExitCode);
            Assert.Contains("1 open environment(s) closed", server.Stderr);
            Assert.Contains("mis gym serve: stopped", server.Stderr);
        }
        finally
        {
            if (!server.Process.HasExited)
                server.Process.Kill();
        }
    }

    [GeneratedRegex(@"GymService on (http://[^,\s]+)")]
    private static partial Regex ReadyAddress();

    private static (int Exit, string Stdout, string Stderr) RunToEnd(params string[] args)
    {
        using var run = MisProcess.Start(args);
        Assert.True(run.Process.WaitForExit(TimeSpan.FromSeconds(60)), $"mis {string.Join(' ', args)} did not finish");
        run.Process.WaitForExit();
        return (run.Process.ExitCode, run.Stdout, run.Stderr);
    }
}
