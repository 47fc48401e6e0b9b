using System.Diagnostics;
using System.Text;
using Mis.Native;

namespace Mis.Server.Tests;

/// <summary>The real <c>mis</c> (mis.dll beside these tests) started as its own process, its output collected as it comes.</summary>
internal sealed class MisProcess : IDisposable
{
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();

    private MisProcess(Process process)
    {
        Process = process;
        process.OutputDataReceived += (_, e) => { lock (_stdout) _stdout.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (_stderr) _stderr.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    /// <summary>Starts <c>mis ARGS</c> with the dotnet running these tests, without the caller's MIS_CONFIG.</summary>
    internal static MisProcess Start(params string[] args) => Start(new Dictionary<string, string>(), args);

    /// <summary>Starts <c>mis ARGS</c> as <see cref="Start(string[])"/> does, with <paramref name="environment"/> added.</summary>
    internal static MisProcess Start(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "mis.dll"));
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        psi.Environment.Remove("MIS_CONFIG");
        foreach (var (name, value) in environment)
            psi.Environment[name] = value;
        return new MisProcess(Process.Start(psi)!);
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

    /// <summary>Waits for a line of stderr containing <paramref name="text"/> and returns it; fails if mis exits first or the limit passes.</summary>
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

    /// <summary>Sends SIGTERM (what a service manager sends to stop it).</summary>
    internal void Terminate() => Assert.Equal(0, Signals.Send(Process.Id, Signals.SIGTERM));

    public void Dispose() => Process.Dispose();
}
