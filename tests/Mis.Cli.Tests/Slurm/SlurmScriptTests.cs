using System.Diagnostics;
using System.Text.RegularExpressions;
using Mis.Cli.Tests.Deploy;
using Mis.Testing;

namespace Mis.Cli.Tests.Slurm;

/// <summary>
/// deploy/slurm/: the scripts parse and pass shellcheck, their `mis` command lines are ones the CLI
/// accepts, and the node-daemon prolog/epilog pair starts one daemon for the jobs of a node and
/// stops it after the last (against a stand-in daemon, fake_enforcer.py; no Slurm needed).
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed partial class SlurmScriptTests : IDisposable
{
    private static readonly string SlurmDir = Path.Combine(RepoRoot.Find(), "deploy", "slurm");
    private static readonly string[] Scripts = ["mis-sweep.sbatch", "merge.sbatch", "mis-node-daemon.sh", "prolog.sh", "epilog.sh"];

    private readonly string _scratch = Directory.CreateTempSubdirectory("mis-slurm-scripts-").FullName;

    public void Dispose()
    {
        // Whatever a failed test left running: the pids the stand-in recorded.
        string starts = Path.Combine(_scratch, "starts");
        if (File.Exists(starts))
            foreach (string line in File.ReadAllLines(starts))
                if (int.TryParse(line, out int pid) && IsAlive(pid))
                    Process.GetProcessById(pid).Kill();
        Directory.Delete(_scratch, recursive: true);
    }

    [Fact]
    public void Every_script_is_valid_bash_and_passes_shellcheck()
    {
        Assert.Equal(Scripts.Order(StringComparer.Ordinal), Directory.GetFiles(SlurmDir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        foreach (string script in Scripts)
        {
            string path = Path.Combine(SlurmDir, script);
            Assert.True(File.GetUnixFileMode(path).HasFlag(UnixFileMode.UserExecute), $"{script} is not executable");
            var syntax = Run("bash", ["-n", path]);
            Assert.True(syntax.ExitCode == 0, $"bash -n {script}: {syntax.Stderr}");
        }
        HostRequirements.That(Which("shellcheck") is not null, "shellcheck is not installed (./mis installs it)");
        var lint = Run("shellcheck", ["--shell=bash", "--external-sources", .. Scripts.Select(s => Path.Combine(SlurmDir, s))]);
        Assert.True(lint.ExitCode == 0, $"shellcheck:\n{lint.Stdout}{lint.Stderr}");
    }

    [Fact]
    public void The_batch_scripts_run_mis_command_lines_the_CLI_accepts()
    {
        var reached = new List<string>();
        foreach (string script in new[] { "mis-sweep.sbatch", "merge.sbatch" })
        {
            string text = File.ReadAllText(Path.Combine(SlurmDir, script));
            var lines = MisInvocation().Matches(text).Select(m => m.Groups[1].Value).ToList();
            Assert.True(lines.Count == 1, $"{script}: expected one `mis ...` line, found {lines.Count}");
            // Shell words: quotes dropped, a variable stands for one argument, an array for none.
            var args = lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Where(w => !w.Contains("[@]", StringComparison.Ordinal))
                .Select(w => w.Trim('"'))
                .Select(w => w.Contains('$', StringComparison.Ordinal) ? "/placeholder" : w).ToList();
            var (errors, command) = CliCommandLine.Parse(args);
            Assert.True(errors.Count == 0, $"{script}: `mis {lines[0]}`: {string.Join("; ", errors)}");
            reached.Add(command);
            string experiment = Regex.Match(text, @"EXPERIMENT=\$\{EXPERIMENT:-([^}]+)\}").Groups[1].Value;
            Assert.True(File.Exists(Path.Combine(RepoRoot.Find(), experiment)), $"{script}: the default experiment {experiment} is not in the repository");
        }
        Assert.Equal(["gym run", "report"], reached);
    }

    [Fact]
    public void The_sweep_is_a_job_array_that_reaches_the_daemon_on_the_socket_the_prolog_waits_for()
    {
        string sweep = File.ReadAllText(Path.Combine(SlurmDir, "mis-sweep.sbatch"));
        Assert.Matches(@"(?m)^#SBATCH --array=0-\d+$", sweep);
        string enforcer = Regex.Match(sweep, @"MIS_ENFORCER=\$\{MIS_ENFORCER:-([^}]+)\}").Groups[1].Value;
        string daemon = File.ReadAllText(Path.Combine(SlurmDir, "mis-node-daemon.sh"));
        string socket = Regex.Match(daemon, @"MIS_SOCKET=\$\{MIS_SOCKET:-([^}]+)\}").Groups[1].Value;
        Assert.Equal("/run/mis/mis.sock", socket);
        Assert.Equal("unix:" + socket, enforcer);
        // The merge waits for every task whatever its status: a failed shard is named by the report.
        Assert.Contains("--dependency=afterany:", File.ReadAllText(Path.Combine(SlurmDir, "merge.sbatch")), StringComparison.Ordinal);
        Assert.Contains("Prolog=", File.ReadAllText(Path.Combine(SlurmDir, "prolog.sh")), StringComparison.Ordinal);
        Assert.Contains("Epilog=", File.ReadAllText(Path.Combine(SlurmDir, "epilog.sh")), StringComparison.Ordinal);
    }

    [Fact]
    public void Prologs_of_two_jobs_start_one_daemon_and_the_last_epilog_stops_it()
    {
        var first = Prolog("101");
        Assert.True(first.ExitCode == 0, first.Stderr);
        Assert.True(File.Exists(Socket), "the prolog returned before the daemon served its socket");
        // A second job on the node, and the same prolog run again (slurmd may retry): no new daemon.
        Assert.Equal(0, Prolog("102").ExitCode);
        Assert.Equal(0, Prolog("102").ExitCode);
        int pid = Assert.Single(Starts());
        Assert.True(IsAlive(pid));

        Assert.Equal(0, Epilog("101").ExitCode);
        Assert.True(IsAlive(pid), "the first job's epilog stopped the daemon the second job still uses");
        Assert.Equal(0, Epilog("102").ExitCode);
        Assert.False(IsAlive(pid), "the last epilog left the daemon running");
        Assert.False(File.Exists(Socket), "the daemon's socket is still there");
        // Again, after the end: nothing to do, no error.
        Assert.Equal(0, Epilog("102").ExitCode);
        Assert.Single(Starts());
    }

    [Fact]
    public void A_daemon_the_prolog_did_not_start_is_used_and_left_running()
    {
        var psi = new ProcessStartInfo(FakeEnforcer, ["enforcer", "/etc/mis/enforcer.toml"]);
        foreach (var (key, value) in Settings())
            psi.Environment[key] = value;
        using var site = Process.Start(psi)!;
        var until = DateTime.UtcNow.AddSeconds(20);
        while (!File.Exists(Socket) && DateTime.UtcNow < until)
            Thread.Sleep(50);
        Assert.True(File.Exists(Socket), "the stand-in daemon did not start");

        Assert.Equal(0, Prolog("201").ExitCode);
        Assert.Equal(0, Epilog("201").ExitCode);
        Assert.Equal([site.Id], Starts());
        Assert.False(site.HasExited, "the epilog stopped a daemon it had not started");
        site.Kill();
        site.WaitForExit();
    }

    [Fact]
    public void A_daemon_that_cannot_start_fails_the_prolog_with_the_reason()
    {
        // Another holder of the state lock that serves no socket: the stand-in exits at once.
        var env = Settings();
        env["MIS_START_TIMEOUT"] = "5";
        File.WriteAllText(env["MIS_BIN"] + ".broken", "#!/bin/sh\necho 'mis enforcer: needs root' >&2\nexit 1\n");
        File.SetUnixFileMode(env["MIS_BIN"] + ".broken", (UnixFileMode)Convert.ToInt32("755", 8));
        env["MIS_BIN"] += ".broken";
        var r = Run(Path.Combine(SlurmDir, "prolog.sh"), [], env, ("SLURM_JOB_ID", "301"));
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("exited before serving", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("needs root", File.ReadAllText(env["MIS_LOG"]), StringComparison.Ordinal);
    }

    private string Socket => Path.Combine(_scratch, "enforcer.sock");

    private static string FakeEnforcer => Path.Combine(RepoRoot.Find(), "tests", "Mis.Cli.Tests", "Slurm", "fake_enforcer.py");

    // Every site setting of mis-node-daemon.sh pointed into the scratch directory; the unit name is
    // one no machine has, so the scripts take the path without systemd.
    private Dictionary<string, string> Settings() => new()
    {
        ["MIS_BIN"] = Path.Combine(_scratch, "mis"),
        ["MIS_CONFIG_FILE"] = "/etc/mis/enforcer.toml",
        ["MIS_SOCKET"] = Socket,
        ["MIS_STATE_LOCK"] = Path.Combine(_scratch, "enforcer.lock"),
        ["MIS_UNIT"] = "mis-test-no-such-unit.service",
        ["MIS_STATE"] = Path.Combine(_scratch, "state"),
        ["MIS_LOG"] = Path.Combine(_scratch, "enforcer.log"),
        ["FAKE_ENFORCER_STARTS"] = Path.Combine(_scratch, "starts"),
    };

    private Result Prolog(string job) => NodeScript("prolog.sh", job);

    private Result Epilog(string job) => NodeScript("epilog.sh", job);

    private Result NodeScript(string script, string job)
    {
        var env = Settings();
        if (!File.Exists(env["MIS_BIN"]))
            File.CreateSymbolicLink(env["MIS_BIN"], FakeEnforcer);
        return Run(Path.Combine(SlurmDir, script), [], env, ("SLURM_JOB_ID", job));
    }

    private List<int> Starts()
    {
        string file = Path.Combine(_scratch, "starts");
        return File.Exists(file) ? File.ReadAllLines(file).Select(int.Parse).ToList() : [];
    }

    private static bool IsAlive(int pid)
    {
        // A zombie has exited: the stat line's third field is its state.
        string stat = Path.Combine("/proc", pid.ToString(System.Globalization.CultureInfo.InvariantCulture), "stat");
        try
        {
            string text = File.ReadAllText(stat);
            return text[(text.LastIndexOf(')') + 2)] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    private sealed record Result(int ExitCode, string Stdout, string Stderr);

    private static Result Run(string program, string[] args, IDictionary<string, string>? env = null, params (string Key, string Value)[] extra)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        foreach (var (key, value) in env ?? new Dictionary<string, string>())
            psi.Environment[key] = value;
        foreach (var (key, value) in extra)
            psi.Environment[key] = value;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(90)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{program} did not finish within 90 s");
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    private static string? Which(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, program)).FirstOrDefault(File.Exists);

    // A line of the script that runs mis: `mis ARGS` at the start of a line (the scripts' mis function).
    [GeneratedRegex(@"(?m)^mis (.+)$")]
    private static partial Regex MisInvocation();
}
