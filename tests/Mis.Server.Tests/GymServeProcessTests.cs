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
    private const int SIGTERM = 15;
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-gym-serve-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Help_documents_every_option_and_the_contract()
    {
        var (exit, stdout, _) = RunToEnd("gym", "serve", "--help");
        Assert.Equal(0, exit);
        foreach (string text in new[] { "--listen", "unix:PATH", "--scenarios", "--backend-allow", "--max-envs", "--idle-timeout", "mis.gym.v1.GymService", "no autoreset", "SIGTERM" })
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

        (exit, _, stderr) = RunToEnd("gym", "serve", "--listen", "127.0.0.1:0", "--backend-allow", "sim,gpu");
        Assert.Equal(2, exit);
        Assert.Contains("unknown backend \"gpu\"", stderr);
    }

    [Fact]
    public async Task It_serves_and_on_SIGTERM_closes_its_envs_and_exits_0()
    {
        using var server = Start("gym", "serve", "--listen", "127.0.0.1:0");
        try
        {
            string ready = await server.WaitForAsync("mis gym serve: ready", TimeSpan.FromSeconds(60));
            var address = ReadyAddress().Match(ready);
            Assert.True(address.Success, ready);
            using var channel = GrpcChannel.ForAddress(address.Groups[1].Value);
            var client = new Wire.GymService.GymServiceClient(channel);
            var made = await client.MakeAsync(new Wire.MakeRequest { Scenario = "data-shortcut" }, cancellationToken: Ct);
            await client.ResetAsync(new Wire.ResetRequest { EnvId = made.EnvId }, cancellationToken: Ct);

            Assert.Equal(0, Kill(server.Process.Id, SIGTERM));
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
        using var run = Start(args);
        Assert.True(run.Process.WaitForExit(TimeSpan.FromSeconds(60)), $"mis {string.Join(' ', args)} did not finish");
        run.Process.WaitForExit();
        return (run.Process.ExitCode, run.Stdout, run.Stderr);
    }

    private static Running Start(params string[] args)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "mis.dll"));
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        return new Running(Process.Start(psi)!);
    }

    /// <summary>A started mis process whose output is collected as it comes.</summary>
    private sealed class Running : IDisposable
    {
        private readonly StringBuilder _stdout = new();
        private readonly StringBuilder _stderr = new();

        internal Running(Process process)
        {
            Process = process;
            process.OutputDataReceived += (_, e) => { lock (_stdout) _stdout.AppendLine(e.Data); };
            process.ErrorDataReceived += (_, e) => { lock (_stderr) _stderr.AppendLine(e.Data); };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        internal Process Process { get; }

        internal string Stdout
        {
            get
            {
                lock (_stdout)
                    return _stdout.ToString();
            }
        }

        internal string Stderr
        {
            get
            {
                lock (_stderr)
                    return _stderr.ToString();
            }
        }

        /// <summary>Waits for a line of stderr containing <paramref name="text"/> and returns it.</summary>
        internal async Task<string> WaitForAsync(string text, TimeSpan limit)
        {
            var watch = Stopwatch.StartNew();
            while (true)
            {
                if (Stderr.Split('\n').FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal)) is { } line)
                    return line;
                if (Process.HasExited)
                    Assert.Fail($"mis exited ({Process.ExitCode}) before '{text}':\n{Stderr}");
                Assert.True(watch.Elapsed < limit, $"no '{text}' within {limit}:\n{Stderr}");
                await Task.Delay(50, Ct);
            }
        }

        public void Dispose() => Process.Dispose();
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
