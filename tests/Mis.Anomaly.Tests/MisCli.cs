using System.Diagnostics;

namespace Mis.Anomaly.Tests;

/// <summary>Runs the real <c>mis</c> binary (built beside these tests) as a child process; finds the repository.</summary>
internal static class MisCli
{
    internal sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}";
    }

    internal static Result Run(params string[] args)
    {
        var psi = new ProcessStartInfo(Dotnet) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "mis.dll"));
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        psi.Environment.Remove("MIS_CONFIG");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"mis {string.Join(' ', args)} did not finish within 2 minutes");
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    private static string Dotnet =>
        Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";

    internal static string RepoRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "global.json")))
                    return dir.FullName;
            throw new InvalidOperationException($"no global.json above {AppContext.BaseDirectory}");
        }
    }

    /// <summary>The committed corpus sample (experiments/anomaly/corpus).</summary>
    internal static string Corpus => Path.Combine(RepoRoot, "experiments", "anomaly", "corpus");
}
