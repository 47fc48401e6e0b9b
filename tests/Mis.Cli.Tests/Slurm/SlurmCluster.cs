using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Mis.Cli.Tests.Slurm;

/// <summary>
/// A real single-node Slurm cluster on this machine, from Debian's packages (slurm-wlm, munge; the
/// ./mis script installs them): a munged with a fresh key, slurmctld and slurmd in the foreground
/// with a generated slurm.conf, everything under one temporary directory. It installs nothing and
/// touches no system file: every path (key, sockets, state, spool, logs) is in that directory, and
/// clients find the cluster through <c>SLURM_CONF</c>. Slurm's ports (6817, 6818) are host-wide, so
/// one cluster at a time; the caller holds the machine's kernel-test lock where tests run in
/// parallel sessions. <see cref="DisposeAsync"/> cancels every job, stops the three daemons, kills
/// whatever a job left running and removes the directory, also after a failed start.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal sealed partial class SlurmCluster : IAsyncDisposable
{
    internal const string NodeName = "localhost";
    internal const string Partition = "debug";
    private static readonly int[] Ports = [6817, 6818];
    internal static readonly string[] Programs = ["munged", "slurmctld", "slurmd", "slurmstepd", "sbatch", "sinfo", "squeue", "scontrol", "scancel"];

    private readonly List<Daemon> _daemons = [];
    private int _disposed;

    private SlurmCluster(string root) => Root = root;

    /// <summary>The temporary directory holding the whole cluster (world-readable, so jobs of any user reach the config and the munge socket).</summary>
    internal string Root { get; }

    internal string ConfigPath => Path.Combine(Root, "slurm.conf");

    private string MungeSocket => Path.Combine(Root, "munge", "munge.socket");

    /// <summary>From the first daemon's start to the node reported idle.</summary>
    internal TimeSpan StartupTime { get; private set; }

    /// <summary>Programs of the cluster that are missing from PATH (none when the packages are installed).</summary>
    internal static IReadOnlyList<string> MissingPrograms() =>
        Programs.Where(p => Which(p) is null).ToList();

    /// <summary>Starts munged, slurmctld and slurmd and waits until the node is idle.</summary>
    /// <exception cref="InvalidOperationException">A port is taken or a daemon did not come up (the message has its log).</exception>
    internal static Task<SlurmCluster> StartAsync(TimeSpan timeout, CancellationToken cancel = default) =>
        StartAsync(timeout, _ => [], cancel);

    /// <summary>
    /// As <see cref="StartAsync(TimeSpan, CancellationToken)"/>, with lines of the caller's appended to
    /// slurm.conf (e.g. <c>Prolog=</c>); <paramref name="extraConf"/> gets the cluster's directory, where
    /// files they name may be written first.
    /// </summary>
    internal static async Task<SlurmCluster> StartAsync(TimeSpan timeout, Func<string, IReadOnlyList<string>> extraConf, CancellationToken cancel = default)
    {
        foreach (int port in Ports)
            EnsurePortFree(port);
        var root = Directory.CreateTempSubdirectory("mis-slurm-").FullName;
        var cluster = new SlurmCluster(root);
        try
        {
            await cluster.StartDaemonsAsync(timeout, extraConf, cancel).ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task StartDaemonsAsync(TimeSpan timeout, Func<string, IReadOnlyList<string>> extraConf, CancellationToken cancel)
    {
        const UnixFileMode Shared = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                                    UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        File.SetUnixFileMode(Root, Shared);
        foreach (string dir in new[] { "munge", "state", "spool", "log" })
            Directory.CreateDirectory(Path.Combine(Root, dir), Shared);

        // munge: a fresh 1 KiB key (0600, root's), its socket in a directory every user can reach.
        string key = Path.Combine(Root, "munge", "munge.key");
        File.WriteAllBytes(key, RandomNumberGenerator.GetBytes(1024));
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllText(ConfigPath, SlurmConf() + string.Concat(extraConf(Root).Select(line => line + "\n")));
        File.SetUnixFileMode(ConfigPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var clock = Stopwatch.StartNew();
        var deadline = DateTime.UtcNow + timeout;
        // --force: munged refuses to run as root, or in a directory under sticky /tmp, without it.
        Start("munged", "--foreground", "--force", $"--socket={MungeSocket}", $"--key-file={key}",
            $"--log-file={Path.Combine(Root, "log", "munged.log")}", $"--pid-file={Path.Combine(Root, "munge", "munged.pid")}",
            $"--seed-file={Path.Combine(Root, "munge", "munged.seed")}");
        await WaitAsync("munged's socket", () => File.Exists(MungeSocket), deadline, cancel).ConfigureAwait(false);
        Start("slurmctld", "-D", "-f", ConfigPath);
        Start("slurmd", "-D", "-N", NodeName, "-f", ConfigPath);
        await WaitAsync($"node {NodeName} idle in sinfo", () => NodeState() == "idle", deadline, cancel).ConfigureAwait(false);
        StartupTime = clock.Elapsed;
    }

    // The smallest configuration that schedules batch jobs here: one node with this machine's CPUs
    // and half its memory; processes tracked through /proc (linuxproc), not cgroups, because MIS's
    // own tests manage cgroups on this host and the container may not delegate a cgroup tree to
    // slurmd; no accounting database; every file under Root.
    private string SlurmConf()
    {
        long memoryMb = File.ReadLines("/proc/meminfo").Where(l => l.StartsWith("MemTotal:", StringComparison.Ordinal))
            .Select(l => long.Parse(Regex.Match(l, @"\d+").Value, CultureInfo.InvariantCulture) / 1024).Single();
        var conf = new StringBuilder();
        void Line(string key, object value) => conf.Append(key).Append('=').Append(value).Append('\n');
        Line("ClusterName", "mistest");
        Line("SlurmctldHost", NodeName);
        Line("SlurmUser", "root");
        Line("SlurmdUser", "root");
        Line("AuthType", "auth/munge");
        Line("CredType", "cred/munge");
        Line("AuthInfo", $"socket={MungeSocket}");
        Line("StateSaveLocation", Path.Combine(Root, "state"));
        Line("SlurmdSpoolDir", Path.Combine(Root, "spool"));
        Line("SlurmctldPidFile", Path.Combine(Root, "slurmctld.pid"));
        Line("SlurmdPidFile", Path.Combine(Root, "slurmd.pid"));
        Line("SlurmctldLogFile", Path.Combine(Root, "log", "slurmctld.log"));
        Line("SlurmdLogFile", Path.Combine(Root, "log", "slurmd.log"));
        Line("ProctrackType", "proctrack/linuxproc");
        Line("TaskPlugin", "task/none");
        Line("JobAcctGatherType", "jobacct_gather/none");
        Line("AccountingStorageType", "accounting_storage/none");
        Line("SelectType", "select/cons_tres");
        Line("SelectTypeParameters", "CR_Core");
        Line("SchedulerType", "sched/backfill");
        Line("MpiDefault", "none");
        Line("ReturnToService", 2);
        // Finished jobs stay visible to scontrol for 5 minutes: long enough to read their states.
        Line("MinJobAge", 300);
        Line("KillWait", 5);
        Line("InactiveLimit", 0);
        conf.Append(CultureInfo.InvariantCulture, $"NodeName={NodeName} CPUs={Environment.ProcessorCount} RealMemory={memoryMb / 2} State=UNKNOWN\n");
        conf.Append(CultureInfo.InvariantCulture, $"PartitionName={Partition} Nodes={NodeName} Default=YES MaxTime=INFINITE State=UP\n");
        return conf.ToString();
    }

    /// <summary>The node's state as sinfo reports it ("idle", "mix", "alloc", ...), or null when slurmctld does not answer.</summary>
    internal string? NodeState()
    {
        var r = Client("sinfo", "-h", "-N", "-n", NodeName, "-o", "%t");
        return r.ExitCode == 0 ? r.Stdout.Trim() : null;
    }

    /// <summary>Runs a Slurm client command as root against this cluster.</summary>
    internal ProcessResult Client(string program, params string[] args) => Run(null, program, args, null);

    /// <summary>Runs a Slurm client command (sbatch, squeue, ...) as <paramref name="user"/> (runuser; the caller is root).</summary>
    internal ProcessResult ClientAs(string user, string program, params string[] args) => Run(user, program, args, null);

    /// <summary>Submits a batch script as <paramref name="user"/>; the job id.</summary>
    internal string SubmitAs(string user, params string[] sbatchArgs) => SubmitAs(user, null, sbatchArgs);

    /// <summary>
    /// Submits a batch script as <paramref name="user"/> with <paramref name="environment"/> added to
    /// sbatch's (which the job inherits: sbatch exports its whole environment); the job id.
    /// </summary>
    internal string SubmitAs(string user, IReadOnlyDictionary<string, string>? environment, params string[] sbatchArgs)
    {
        var r = Run(user, "sbatch", ["--parsable", .. sbatchArgs], environment);
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"sbatch {string.Join(' ', sbatchArgs)} as {user} failed ({r.ExitCode}): {r.Stderr}{Logs()}");
        return r.Stdout.Trim().Split(';')[0];
    }

    /// <summary>
    /// Waits until no task of job <paramref name="jobId"/> is pending, running or completing; then
    /// each task's state by task id (an array's "JOBID_N" as N; a plain job as its id).
    /// </summary>
    internal async Task<IReadOnlyDictionary<string, string>> WaitForJobAsync(string jobId, TimeSpan timeout, CancellationToken cancel = default)
    {
        var deadline = DateTime.UtcNow + timeout;
        await WaitAsync($"job {jobId} to leave the queue", () =>
        {
            var q = Client("squeue", "-h", "-j", jobId, "-o", "%i");
            // squeue fails for a job id it no longer knows: that is the end too.
            return q.ExitCode != 0 || q.Stdout.Trim().Length == 0;
        }, deadline, cancel).ConfigureAwait(false);
        var show = Client("scontrol", "-o", "show", "job", jobId);
        if (show.ExitCode != 0)
            throw new InvalidOperationException($"scontrol show job {jobId}: {show.Stderr}");
        var states = new Dictionary<string, string>();
        foreach (string line in show.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string task = ArrayTaskId().Match(line) is { Success: true } m ? m.Groups[1].Value : jobId;
            states[task] = JobState().Match(line).Groups[1].Value;
        }
        return states;
    }

    /// <summary>The daemons' logs, for a failure message.</summary>
    internal string Logs()
    {
        var text = new StringBuilder();
        foreach (string file in Directory.Exists(Path.Combine(Root, "log")) ? Directory.GetFiles(Path.Combine(Root, "log")) : [])
            text.Append(CultureInfo.InvariantCulture, $"\n--- {Path.GetFileName(file)} (last lines)\n")
                .AppendJoin('\n', File.ReadLines(file).TakeLast(15));
        foreach (var d in _daemons)
            text.Append(CultureInfo.InvariantCulture, $"\n--- {d.Name} output (last lines)\n").AppendJoin('\n', d.Output.TakeLast(15));
        return text.ToString();
    }

    /// <summary>Cancels every job, stops the daemons, kills what jobs left behind and removes the directory. Safe to call twice.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        if (_daemons.Any(d => d.Name == "slurmctld" && !d.Process.HasExited))
        {
            var jobs = Client("squeue", "-h", "-o", "%A");
            var ids = jobs.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct().ToArray();
            if (ids.Length > 0)
            {
                Client("scancel", ids);
                var until = DateTime.UtcNow.AddSeconds(15);
                while (DateTime.UtcNow < until && Client("squeue", "-h", "-o", "%A").Stdout.Trim().Length > 0)
                    await Task.Delay(200).ConfigureAwait(false);
            }
        }
        // slurmd, then slurmctld, then munged: each stops on SIGTERM; SIGKILL after 10 s.
        foreach (var daemon in Enumerable.Reverse(_daemons))
            await daemon.StopAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        KillProcessesUnder(Root);
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // A straggler still writing: one more round.
            KillProcessesUnder(Root);
            Thread.Sleep(200);
            Directory.Delete(Root, recursive: true);
        }
    }

    // Job steps (slurmstepd and the job's processes) that outlived their daemons: every process whose
    // working directory or command line names a path under the cluster's directory.
    private static void KillProcessesUnder(string root)
    {
        foreach (string dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid) || pid == Environment.ProcessId)
                continue;
            try
            {
                string cwd = new DirectoryInfo(Path.Combine(dir, "cwd")).LinkTarget ?? "";
                string cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (cwd.StartsWith(root, StringComparison.Ordinal) || cmdline.Contains(root, StringComparison.Ordinal))
                    Process.GetProcessById(pid).Kill(entireProcessTree: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // Gone meanwhile, or a kernel thread: nothing to kill.
            }
        }
    }

    private void Start(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(Which(program) ?? program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            Environment = { ["SLURM_CONF"] = ConfigPath },
        };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        var daemon = new Daemon(program, Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {program}"));
        _daemons.Add(daemon);
    }

    private ProcessResult Run(string? user, string program, string[] args, IReadOnlyDictionary<string, string>? environment)
    {
        string path = Which(program) ?? program;
        var psi = user is null ? new ProcessStartInfo(path) : new ProcessStartInfo("runuser") { ArgumentList = { "-u", user, "--", path } };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.Environment["SLURM_CONF"] = ConfigPath;
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
            psi.Environment[key] = value;
        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {program}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(30)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish within 30 s");
        }
        return new ProcessResult(process.ExitCode, stdout.Result, stderr.Result);
    }

    private async Task WaitAsync(string what, Func<bool> done, DateTime deadline, CancellationToken cancel)
    {
        while (!done())
        {
            if (_daemons.FirstOrDefault(d => d.Process.HasExited) is { } dead)
                throw new InvalidOperationException($"waiting for {what}: {dead.Name} exited with status {dead.Process.ExitCode}{Logs()}");
            if (DateTime.UtcNow > deadline)
                throw new InvalidOperationException($"waiting for {what}: timed out{Logs()}");
            await Task.Delay(100, cancel).ConfigureAwait(false);
        }
    }

    private static void EnsurePortFree(int port)
    {
        try
        {
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            // As slurmctld and slurmd bind: connections of an earlier cluster in TIME_WAIT do not count, a listener does.
            probe.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            probe.Bind(new IPEndPoint(IPAddress.Any, port));
        }
        catch (SocketException e)
        {
            throw new InvalidOperationException($"port {port} is taken ({e.SocketErrorCode}): another Slurm daemon runs on this machine; stop it first", e);
        }
    }

    private static string? Which(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Append("/usr/sbin").Append("/sbin")
            .Select(dir => Path.Combine(dir, program)).FirstOrDefault(File.Exists);

    [GeneratedRegex(@"\bArrayTaskId=(\d+)")]
    private static partial Regex ArrayTaskId();

    [GeneratedRegex(@"\bJobState=(\S+)")]
    private static partial Regex JobState();

    internal sealed record ProcessResult(int ExitCode, string Stdout, string Stderr);

    // One daemon in the foreground: its output kept (bounded) for failure messages.
    private sealed class Daemon
    {
        private readonly Queue<string> _output = new();

        internal Daemon(string name, Process process)
        {
            Name = name;
            Process = process;
            process.OutputDataReceived += (_, e) => Keep(e.Data);
            process.ErrorDataReceived += (_, e) => Keep(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        internal string Name { get; }

        internal Process Process { get; }

        internal IReadOnlyList<string> Output
        {
            get
            {
                lock (_output)
                    return _output.ToList();
            }
        }

        private void Keep(string? line)
        {
            if (line is null)
                return;
            lock (_output)
            {
                _output.Enqueue(line);
                if (_output.Count > 200)
                    _output.Dequeue();
            }
        }

        internal async Task StopAsync(TimeSpan grace)
        {
            if (Process.HasExited)
            {
                Process.Dispose();
                return;
            }
            using (var kill = Process.Start("kill", ["-TERM", Process.Id.ToString(CultureInfo.InvariantCulture)]))
                await kill.WaitForExitAsync().ConfigureAwait(false);
            using var wait = new CancellationTokenSource(grace);
            try
            {
                await Process.WaitForExitAsync(wait.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                Process.Kill(entireProcessTree: true);
                await Process.WaitForExitAsync().ConfigureAwait(false);
            }
            Process.Dispose();
        }
    }
}
