using System.Diagnostics;

namespace Mis.Cli.Tests;

/// <summary>Runs the real <c>mis</c> binary (built beside these tests) as a child process.</summary>
internal static class CliRunner
{
    internal sealed record Result(int ExitCode, string Stdout, string Stderr);

    internal static Result Run(params string[] args) => Run(null, args);

    /// <summary>
    /// Runs mis as another (unprivileged) account via runuser; the caller must be root. When that
    /// account cannot reach the build output (a checkout under /root, say), the output is first
    /// hard-linked into a world-readable temporary directory.
    /// </summary>
    internal static Result RunAs(string user, params string[] args)
    {
        using var bin = ReadableBy(user);
        return Start(AsUser(user), bin.Path, args, UserEnvironment);
    }

    /// <summary>Starts mis as <paramref name="user"/> without waiting (see <see cref="RunAs"/>); disposing it kills it if it still runs.</summary>
    internal static Background StartAs(string user, params string[] args)
    {
        var bin = ReadableBy(user);
        try
        {
            return new Background(Process.Start(StartInfo(AsUser(user), bin.Path, args, UserEnvironment))!, bin);
        }
        catch
        {
            bin.Dispose();
            throw;
        }
    }

    /// <summary>A mis process started in the background, and the copy of the build output it runs from.</summary>
    internal sealed class Background(Process process, IDisposable bin) : IDisposable
    {
        internal Process Process { get; } = process;

        public void Dispose()
        {
            if (!Process.HasExited)
                Process.Kill(entireProcessTree: true);
            Process.WaitForExit();
            Process.Dispose();
            bin.Dispose();
        }
    }

    private static readonly Dictionary<string, string> UserEnvironment = new() { ["HOME"] = "/tmp", ["DOTNET_CLI_HOME"] = "/tmp" };

    private static ProcessStartInfo AsUser(string user) => new("runuser") { ArgumentList = { "-u", user, "--", Dotnet } };

    /// <summary>The build output where <paramref name="user"/> can read it: where it is, or a hard-linked world-readable copy (removed on dispose).</summary>
    private static BinDirectory ReadableBy(string user)
    {
        string dir = AppContext.BaseDirectory;
        if (Exec("runuser", "-u", user, "--", "test", "-r", Path.Combine(dir, "mis.dll")) == 0)
            return new BinDirectory(dir, null);
        string copy = Path.Combine(Path.GetTempPath(), $"mis-as-{user}-{Guid.NewGuid():N}");
        Assert.True(Exec("cp", "-al", dir.TrimEnd('/'), copy) == 0, $"cannot hard-link {dir} to {copy} for user {user}");
        Exec("chmod", "-R", "o+rX", copy);
        return new BinDirectory(copy, copy);
    }

    private sealed record BinDirectory(string Path, string? Copy) : IDisposable
    {
        public void Dispose()
        {
            if (Copy is not null)
                Directory.Delete(Copy, recursive: true);
        }
    }

    internal static Result Run(IDictionary<string, string>? environment, params string[] args) =>
        Start(new ProcessStartInfo(Dotnet), AppContext.BaseDirectory, args, environment);

    /// <summary>Starts mis without waiting (output redirected; the caller reads it, waits or kills the process).</summary>
    internal static Process StartInBackground(params string[] args)
    {
        var psi = StartInfo(new ProcessStartInfo(Dotnet), AppContext.BaseDirectory, args, null);
        return Process.Start(psi)!;
    }

    private static int Exec(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        return p.ExitCode;
    }

    private static string Dotnet =>
        Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";

    private static ProcessStartInfo StartInfo(ProcessStartInfo psi, string binDir, string[] args, IDictionary<string, string>? environment)
    {
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.ArgumentList.Add(Path.Combine(binDir, "mis.dll"));
        foreach (var arg in args)
            psi.ArgumentList.Add(arg);
        psi.Environment.Remove("MIS_CONFIG");
        // Tests run inside a Slurm array task or an Indexed Job pod would otherwise make every
        // `mis gym run` a shard; a test that wants that sets them itself.
        foreach (var name in new[] { "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_STEP", "JOB_COMPLETION_INDEX", "MIS_SHARD_COUNT" })
            psi.Environment.Remove(name);
        if (environment is not null)
            foreach (var (key, value) in environment)
                psi.Environment[key] = value;
        return psi;
    }

    private static Result Start(ProcessStartInfo psi, string binDir, string[] args, IDictionary<string, string>? environment)
    {
        using var process = Process.Start(StartInfo(psi, binDir, args, environment))!;
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
