using System.Diagnostics;

namespace Mis.Cli.Tests;

/// <summary>Runs the real <c>mis</c> binary (built beside these tests) as a child process.</summary>
internal static class CliRunner
{
    internal sealed record Result(int ExitCode, string Stdout, string Stderr);

    internal static Result Run(params string[] args) => Run(null, args);

    internal static Result Run(IDictionary<string, string>? environment, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "mis.dll") },
        };
        foreach (var arg in args)
            psi.ArgumentList.Add(arg);
        psi.Environment.Remove("MIS_CONFIG");
        if (environment is not null)
            foreach (var (key, value) in environment)
                psi.Environment[key] = value;
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"mis {string.Join(' ', args)} did not finish within 2 minutes");
        }
        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }
}
