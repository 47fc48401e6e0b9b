using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Mis.Testing;

namespace Mis.Cli.Tests;

/// <summary>
/// Kernel-backend episodes without root: a real node daemon (<c>mis enforcer</c>, its socket open
/// to every local user) runs them for <c>nobody</c>'s <c>mis gym run</c>, <c>mis gym serve</c>
/// and the Python client. The episodes' processes run as nobody in the daemon's cgroups, take
/// the same steps as the in-process kernel backend (root), and a client that vanishes loses its
/// episodes; another account can touch none of them.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class NodeDaemonEpisodeTests
{
    private const string User = "nobody";
    private const string OtherUser = "daemon";
    private const string Python = "/usr/bin/python3";

    [Fact]
    public async Task An_unprivileged_sweep_through_the_daemon_runs_as_its_user_and_takes_the_in_process_steps()
    {
        HostRequirements.Root();
        var cancel = TestContext.Current.CancellationToken;
        await using var daemon = await DaemonProcess.StartAsync(cancel);
        string experiment = WriteExperiment(daemon.Directory);
        string through = Path.Combine(daemon.Directory, "runs", "through-daemon");
        string inProcess = Path.Combine(daemon.Directory, "runs", "in-process");

        using var watch = new EpisodeWatch(daemon);
        var clock = Stopwatch.StartNew();
        var remote = CliRunner.RunAs(User, "gym", "run", experiment, "--enforcer", daemon.Address, "--out", through);
        var remoteTime = clock.Elapsed;
        Assert.True(remote.ExitCode == 0, $"{remote.Stdout}{remote.Stderr}\n{daemon.Log}");
        clock.Restart();
        var local = CliRunner.Run("gym", "run", experiment, "--out", inProcess);
        Assert.True(local.ExitCode == 0, local.Stdout + local.Stderr);
        TestContext.Current.TestOutputHelper?.WriteLine($"32 kernel episodes: {remoteTime.TotalSeconds:F1} s through the daemon as {User}, {clock.Elapsed.TotalSeconds:F1} s in-process as root");

        // Every actuator the daemon ran was nobody's, and nothing of the sweep is left in its tree.
        Assert.True(watch.ActuatorUids.Count > 0, $"no episode process seen under {daemon.GymCgroupsGlob}");
        Assert.Equal([Id(User)], watch.ActuatorUids);
        Assert.Empty(daemon.GymCgroups());
        Assert.Contains($"opened for uid {Id(User)} ({User})", daemon.Log, StringComparison.Ordinal);

        // The same steps: every trajectory and episode file byte for byte (no slowdown in this
        // scenario, so nothing measured enters the rewards), and the same summary.
        var files = Directory.GetFiles(inProcess, "*.csv", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(inProcess, f)).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(files, Directory.GetFiles(through, "*.csv", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(through, f)).Order(StringComparer.Ordinal));
        Assert.Contains(Path.Combine("deny+slowdown+kill", "seed-1", "trajectory.csv"), files);
        foreach (string file in files)
            Assert.True(File.ReadAllText(Path.Combine(inProcess, file)) == File.ReadAllText(Path.Combine(through, file)), $"{file} differs");
        Assert.Equal(File.ReadAllText(Path.Combine(inProcess, "summary.json")), File.ReadAllText(Path.Combine(through, "summary.json")));
        Assert.Contains(",killed,", File.ReadAllText(Path.Combine(through, "deny+slowdown+kill", "seed-0", "trajectory.csv")) +
                                    File.ReadAllText(Path.Combine(through, "deny+slowdown+kill", "seed-1", "trajectory.csv")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_python_client_steps_kernel_episodes_through_an_unprivileged_gym_server_and_the_daemon()
    {
        RequirePythonGrpc();
        var cancel = TestContext.Current.CancellationToken;
        await using var daemon = await DaemonProcess.StartAsync(cancel);
        WriteExperiment(daemon.Directory);
        string gymSocket = Path.Combine(daemon.Directory, "runs", "gym.sock");
        using var watch = new EpisodeWatch(daemon);
        using var server = CliRunner.StartAs(User, "gym", "serve", "--listen", "unix:" + gymSocket, "--backend-allow", "kernel",
            "--enforcer", daemon.Address, "--scenarios", daemon.Directory);
        await WaitForAsync(() => File.Exists(gymSocket), TimeSpan.FromSeconds(30), () => $"mis gym serve never listened on {gymSocket}", cancel);

        string script = Path.Combine(daemon.Directory, "client.py");
        // Actions by index in the scenario's order: read_schema (2), then the shortcut peek_answers (4).
        File.WriteAllText(script, $"""
            import mis_gym
            with mis_gym.MisEnv("{ScenarioName}", target="unix:{gymSocket}", backend="kernel") as env:
                obs, info = env.reset(seed=3)
                for action in [2, 4, 4, 4, 4]:
                    obs, reward, terminated, truncated, info = env.step(action)
                    print(info["action"], info["result"], info["defcon"], terminated)
                    if terminated:
                        break
            """);
        var (exit, output) = Exec("runuser", "-u", User, "--", "env", $"MIS_PROTO_DIR={daemon.Directory}/proto", "PYTHONDONTWRITEBYTECODE=1",
            $"PYTHONPATH={daemon.Directory}", Python, script);

        Assert.True(exit == 0, $"{output}\n{daemon.Log}");
        // The shortcut is denied, each denial one DEFCON level under the zero-tolerance ladder, the fourth kills.
        Assert.Equal(["read_schema ok 5 False", "peek_answers denied 4 False", "peek_answers denied 3 False", "peek_answers denied 2 False", "peek_answers killed 1 True"],
            output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal([Id(User)], watch.ActuatorUids);
    }

    [Fact]
    public async Task Another_user_cannot_touch_a_backend_and_a_vanished_clients_episodes_are_killed_and_removed()
    {
        RequirePythonGrpc();
        var cancel = TestContext.Current.CancellationToken;
        await using var daemon = await DaemonProcess.StartAsync(cancel);
        WriteExperiment(daemon.Directory);
        string clientScript = Path.Combine(daemon.Directory, "episode_client.py");
        File.Copy(Path.Combine(RepoRoot.Find(), "tests", "Mis.Cli.Tests", "python", "episode_client.py"), clientScript);
        File.SetUnixFileMode(clientScript, (UnixFileMode)Convert.ToInt32("644", 8));
        string proto = Path.Combine(daemon.Directory, "proto");

        // A client that dies without closing: nobody's, holding a backend with an episode running.
        using var holder = Process.Start(new ProcessStartInfo("runuser")
        {
            ArgumentList = { "-u", User, "--", "env", "HOME=/tmp", "PYTHONDONTWRITEBYTECODE=1", Python, clientScript, proto, daemon.Socket, "hold",
                Path.Combine(daemon.Directory, ScenarioName + ".toml") },
            RedirectStandardOutput = true, RedirectStandardError = true,
        })!;
        int? heldBy = null;
        try
        {
            var held = await holder.StandardOutput.ReadLineAsync(cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(60), cancel);
            Assert.True(held is not null, $"the holder printed nothing\n{daemon.Log}");
            var opened = JsonNode.Parse(held)!;
            heldBy = (int)opened["pid"]!;
            string backend = (string)opened["backend_id"]!;
            Assert.Equal(User, (string)opened["user"]!);
            Assert.NotEmpty(daemon.GymCgroups());

            // Another account gets PERMISSION_DENIED on each call naming nobody's backend.
            var (exit, output) = Exec("runuser", "-u", OtherUser, "--", "env", "HOME=/tmp", "PYTHONDONTWRITEBYTECODE=1",
                Python, clientScript, proto, daemon.Socket, "touch", backend);
            Assert.True(exit == 0, output);
            var calls = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
            Assert.Equal(["Begin", "Perform", "Close"], calls.Select(c => (string)c["call"]!));
            Assert.All(calls, c => Assert.Equal("PERMISSION_DENIED", (string)c["code"]!));
            Assert.Contains($"was not opened by uid {Id(OtherUser)} ({OtherUser})", (string)calls[0]["detail"]!);
        }
        finally
        {
            // SIGKILL, no Close: the client itself (nobody's python, which runuser waits for), then runuser.
            if (heldBy is { } pid)
                Exec("kill", "-KILL", pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
            holder.Kill(entireProcessTree: true);
            await holder.WaitForExitAsync(cancel);
        }
        var gone = Stopwatch.StartNew();

        // Its backend closes once the grace period has passed: the episode killed, the cgroups removed.
        // (The log line follows the removal: the daemon's console logger writes in the background.)
        await WaitForAsync(() => daemon.GymCgroups().Count == 0 && OpenBackends(daemon.Log).Count == 0, TimeSpan.FromSeconds(90),
            () => $"cgroups left: {string.Join(", ", daemon.GymCgroups())}\n{daemon.Log}", cancel);
        TestContext.Current.TestOutputHelper?.WriteLine($"the vanished client's backend was closed {gone.Elapsed.TotalSeconds:F1} s after it died");
        Assert.Contains("its client's connection closed", daemon.Log, StringComparison.Ordinal);
        Assert.DoesNotContain(Process.GetProcessesByName("python3"), p => OwnedBy(p.Id, Id(User)) && IsActuator(p.Id));
    }

    private const string ScenarioName = KernelSweep.ScenarioName;

    private static void RequirePythonGrpc()
    {
        HostRequirements.Root();
        HostRequirements.That(File.Exists(Python) && Exec(Python, "-c", "import grpc, grpc_tools").Exit == 0,
            "Debian's python3-grpcio and python3-grpc-tools are not installed (./mis installs them)");
    }

    /// <summary>The sweep (<see cref="KernelSweep"/>) in <paramref name="dir"/>, with the proto and the Python client beside it, all readable by every user.</summary>
    private static string WriteExperiment(string dir)
    {
        string repo = RepoRoot.Find();
        string experiment = KernelSweep.Write(dir);
        CopyTree(Path.Combine(repo, "proto"), Path.Combine(dir, "proto"));
        File.Copy(Path.Combine(repo, "clients", "python", "mis_gym.py"), Path.Combine(dir, "mis_gym.py"));
        Exec("chmod", "-R", "a+rX", dir);
        return experiment;
    }

    /// <summary>The backends the daemon's log shows opened and not closed.</summary>
    private static List<string> OpenBackends(string log)
    {
        var closed = System.Text.RegularExpressions.Regex.Matches(log, @"Kernel backend (\w+) closed").Select(m => m.Groups[1].Value).ToHashSet();
        return System.Text.RegularExpressions.Regex.Matches(log, @"Kernel backend (\w+) opened for").Select(m => m.Groups[1].Value).Where(id => !closed.Contains(id)).ToList();
    }

    private static uint Id(string user) => uint.Parse(Exec("id", "-u", user).Output.Trim(), System.Globalization.CultureInfo.InvariantCulture);

    private static bool OwnedBy(int pid, uint uid)
    {
        try
        {
            return File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal))
                .Split('\t', StringSplitOptions.RemoveEmptyEntries)[1] == uid.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return false;
        }
    }

    // python3 -I -S -u -c SCRIPT, after mis-launch (whose own command line holds the same words) exec'd it.
    private static bool IsActuator(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/comm").Trim() == "python3"
                   && File.ReadAllText($"/proc/{pid}/cmdline").Contains("-I\0-S\0-u\0-c\0", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static async Task WaitForAsync(Func<bool> done, TimeSpan limit, Func<string> why, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        while (!done())
        {
            Assert.True(clock.Elapsed < limit, why());
            await Task.Delay(100, cancel);
        }
    }

    private static void CopyTree(string from, string to)
    {
        foreach (string file in Directory.GetFiles(from, "*.proto", SearchOption.AllDirectories))
        {
            string target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    private static (int Exit, string Output) Exec(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            p.Kill(entireProcessTree: true);
            return (-1, "timed out\n" + stdout.Result + stderr.Result);
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>Samples the uids of the actuators running in the daemon's episode cgroups until disposed.</summary>
    private sealed class EpisodeWatch : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _sampling;
        private readonly HashSet<uint> _uids = [];

        internal EpisodeWatch(DaemonProcess daemon) => _sampling = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                foreach (string cgroup in daemon.GymCgroups())
                {
                    foreach (string procs in SafeFiles(cgroup, "cgroup.procs"))
                    {
                        foreach (string line in SafeLines(procs))
                        {
                            if (int.TryParse(line, out int pid) && IsActuator(pid) && StatusUid(pid) is { } uid)
                            {
                                lock (_uids)
                                    _uids.Add(uid);
                            }
                        }
                    }
                }
                await Task.Delay(5).ConfigureAwait(false);
            }
        });

        internal IReadOnlyList<uint> ActuatorUids
        {
            get
            {
                lock (_uids)
                    return [.. _uids.Order()];
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _sampling.Wait();
            _stop.Dispose();
        }

        private static uint? StatusUid(int pid)
        {
            foreach (string line in SafeLines($"/proc/{pid}/status"))
                if (line.StartsWith("Uid:", StringComparison.Ordinal))
                    return uint.Parse(line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
            return null;
        }

        private static IEnumerable<string> SafeFiles(string dir, string name)
        {
            try
            {
                return Directory.GetFiles(dir, name, SearchOption.AllDirectories);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return [];
            }
        }

        private static IEnumerable<string> SafeLines(string file)
        {
            try
            {
                return File.ReadAllLines(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return [];
            }
        }
    }

    /// <summary>
    /// <c>mis enforcer</c> as a node daemon in a directory of its own: a Unix socket every local
    /// user may connect to, a TCP port nobody uses; stopped with SIGTERM.
    /// </summary>
    private sealed class DaemonProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _log = new();

        private DaemonProcess(string directory, Process process)
        {
            Directory = directory;
            _process = process;
            _process.ErrorDataReceived += (_, e) => Append(e.Data);
            _process.OutputDataReceived += (_, e) => Append(e.Data);
            _process.BeginErrorReadLine();
            _process.BeginOutputReadLine();
        }

        internal string Directory { get; }

        internal string Socket => Path.Combine(Directory, "mis.sock");

        internal string Address => "unix:" + Socket;

        internal string Log
        {
            get
            {
                lock (_log)
                    return _log.ToString();
            }
        }

        /// <summary>Where the daemon's episode sessions live: <c>&lt;cgroup mount&gt;/mis/gym-PID-N</c>.</summary>
        internal string GymCgroupsGlob => Path.Combine(Tree ?? "(not known yet)", $"gym-{_process.Id}-*");

        // From the ready line, which the program writes itself once started (log lines come from a
        // background writer and may follow it, and later ones name episode trees).
        private string? Tree => System.Text.RegularExpressions.Regex.Match(Log, @"mis enforcer: ready \(pid \d+\).*, cgroups under (\S+)/enforcer-\d+") is { Success: true } m
            ? m.Groups[1].Value : null;

        internal List<string> GymCgroups() =>
            Tree is { } tree && System.IO.Directory.Exists(tree) ? [.. System.IO.Directory.GetDirectories(tree, $"gym-{_process.Id}-*")] : [];

        internal static async Task<DaemonProcess> StartAsync(CancellationToken cancel)
        {
            string dir = System.IO.Directory.CreateTempSubdirectory("mis-node-episodes-").FullName;
            File.SetUnixFileMode(dir, (UnixFileMode)Convert.ToInt32("755", 8));
            string runs = Path.Combine(dir, "runs");
            System.IO.Directory.CreateDirectory(runs);
            File.SetUnixFileMode(runs, (UnixFileMode)Convert.ToInt32("1777", 8));
            string config = Path.Combine(dir, "enforcer.toml");
            using (var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0))
            {
                probe.Start();
                File.WriteAllText(config, $"[paths]\nstate_dir = \"{dir}/state\"\n[grpc]\nenabled = true\nport = {((System.Net.IPEndPoint)probe.LocalEndpoint).Port}\n" +
                                          $"unix_socket_path = \"{dir}/mis.sock\"\nunix_socket_mode = \"0666\"\n");
            }
            var daemon = new DaemonProcess(dir, CliRunner.StartInBackground("enforcer", config));
            var clock = Stopwatch.StartNew();
            while (!daemon.Log.Contains("mis enforcer: ready", StringComparison.Ordinal))
            {
                if (daemon._process.HasExited || clock.Elapsed > TimeSpan.FromSeconds(60))
                {
                    await daemon.DisposeAsync();
                    Assert.Fail($"the daemon did not start:\n{daemon.Log}");
                }
                await Task.Delay(50, cancel);
            }
            return daemon;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                Exec("kill", "-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
                using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                try
                {
                    await _process.WaitForExitAsync(limit.Token);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill(entireProcessTree: true);
                }
            }
            _process.Dispose();
            System.IO.Directory.Delete(Directory, recursive: true);
        }

        private void Append(string? line)
        {
            if (line is null)
                return;
            lock (_log)
                _log.AppendLine(line);
        }
    }
}
