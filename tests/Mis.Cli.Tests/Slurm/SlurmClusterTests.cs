using System.Diagnostics;
using Mis.Testing;

namespace Mis.Cli.Tests.Slurm;

/// <summary>
/// A real single-node Slurm cluster (<see cref="SlurmCluster"/>): jobs submitted by an unprivileged
/// user run as that user. Needs root (the daemons) and Debian's slurm-wlm and munge (./mis installs
/// them); under CI=true a missing piece fails the test.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class SlurmClusterTests
{
    // An account every Debian system has, with no rights of its own.
    private const string User = "nobody";

    [Fact]
    public async Task A_job_array_submitted_by_an_unprivileged_user_runs_every_task_as_that_user()
    {
        RequireSlurm();
        var cancel = TestContext.Current.CancellationToken;

        await using var cluster = await SlurmCluster.StartAsync(TimeSpan.FromSeconds(60), cancel);
        TestContext.Current.TestOutputHelper?.WriteLine($"slurm cluster up (node idle) in {cluster.StartupTime.TotalSeconds:F2} s");

        // A script that records its task id, in a directory the user may write.
        string shared = SharedDirectory(cluster);
        string script = Path.Combine(shared, "task.sh");
        File.WriteAllText(script, "#!/bin/sh\nid -u > \"task-$SLURM_ARRAY_TASK_ID.txt\"\necho \"$SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT\" >> \"task-$SLURM_ARRAY_TASK_ID.txt\"\n");
        File.SetUnixFileMode(script, (UnixFileMode)Convert.ToInt32("755", 8));

        var clock = Stopwatch.StartNew();
        string job = cluster.SubmitAs(User, "--array=0-2", $"--chdir={shared}", $"--output={shared}/slurm-%A_%a.out", script);
        var states = await cluster.WaitForJobAsync(job, TimeSpan.FromMinutes(2), cancel);
        TestContext.Current.TestOutputHelper?.WriteLine($"job array {job} (3 tasks) done in {clock.Elapsed.TotalSeconds:F2} s");

        Assert.Equal(["0", "1", "2"], states.Keys.Order(StringComparer.Ordinal));
        Assert.All(states, s => Assert.True(s.Value == "COMPLETED", $"task {s.Key}: {s.Value}{cluster.Logs()}"));
        string uid = Id("-u", User);
        for (int task = 0; task < 3; task++)
        {
            string file = Path.Combine(shared, $"task-{task}.txt");
            Assert.True(File.Exists(file), $"task {task} wrote nothing{cluster.Logs()}");
            Assert.Equal($"{uid}\n{task} of 3\n", File.ReadAllText(file));
            Assert.Equal(uid, Stat(file));
        }
    }

    [Fact]
    public async Task The_sweep_and_merge_scripts_run_a_sharded_sweep_as_an_unprivileged_user_that_merges_to_the_one_machine_summary()
    {
        RequireSlurm();
        var cancel = TestContext.Current.CancellationToken;

        await using var cluster = await SlurmCluster.StartAsync(TimeSpan.FromSeconds(60), cancel);
        string shared = SharedDirectory(cluster);
        // What a site has on shared storage, readable by the user: a built checkout (the build
        // output, the experiments) and deploy/slurm's scripts.
        string misHome = MisHomeFor(shared);
        string runs = Path.Combine(shared, "runs");
        // The flagship experiment cut small (4 feedback modes x 2 seeds x 2 episodes, simulator):
        // 8 (config, seed) runs over 3 shards of unequal size.
        const string Args = "--episodes 2 --seeds 2";
        var environment = new Dictionary<string, string>
        {
            ["MIS_HOME"] = misHome,
            ["RUNS"] = runs,
            ["MIS_GYM_ARGS"] = Args,
        };

        var clock = Stopwatch.StartNew();
        string sweep = cluster.SubmitAs(User, environment, "--array=0-2", $"--chdir={shared}", "--export=ALL,HOME=/tmp",
            Path.Combine(misHome, "deploy", "slurm", "mis-sweep.sbatch"));
        string merge = cluster.SubmitAs(User, environment, $"--dependency=afterany:{sweep}", $"--chdir={shared}", "--export=ALL,HOME=/tmp",
            Path.Combine(misHome, "deploy", "slurm", "merge.sbatch"));
        var sweepStates = await cluster.WaitForJobAsync(sweep, TimeSpan.FromMinutes(3), cancel);
        var mergeStates = await cluster.WaitForJobAsync(merge, TimeSpan.FromMinutes(2), cancel);
        TestContext.Current.TestOutputHelper?.WriteLine($"sweep (3 array tasks: 4 configs x 2 seeds x 2 episodes) and merge done in {clock.Elapsed.TotalSeconds:F1} s");

        string output = string.Join('\n', Directory.GetFiles(shared, "*.out").Select(f => $"--- {Path.GetFileName(f)}\n{File.ReadAllText(f)}"));
        Assert.True(sweepStates.Values.All(s => s == "COMPLETED"), $"sweep: {string.Join(", ", sweepStates)}\n{output}{cluster.Logs()}");
        Assert.True(mergeStates.Values.All(s => s == "COMPLETED"), $"merge: {string.Join(", ", mergeStates)}\n{output}{cluster.Logs()}");
        string summary = Path.Combine(runs, "feedback-modes", "summary.json");
        Assert.True(File.Exists(summary), $"no {summary}\n{output}");
        Assert.True(File.Exists(Path.Combine(runs, "feedback-modes", "report.html")), output);
        Assert.Equal(Id("-u", User), Stat(summary));
        Assert.Contains("mis report:", File.ReadAllText(Directory.GetFiles(shared, "mis-merge-*.out").Single()), StringComparison.Ordinal);
        for (int task = 0; task < 3; task++)
            Assert.Contains($"shard {task}/3", File.ReadAllText(Directory.GetFiles(shared, $"mis-sweep-{sweep}_{task}.out").Single()), StringComparison.Ordinal);

        // The same sweep on one machine, unsharded, from the same files (summary.json names the
        // scenario file by its absolute path): the merged summary is byte for byte the same.
        string alone = Path.Combine(cluster.Root, "one-machine");
        var run = CliRunner.Run("gym", "run", Path.Combine(misHome, "experiments", "feedback-modes.toml"), "--out", alone, "--episodes", "2", "--seeds", "2");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Equal(File.ReadAllText(Path.Combine(alone, "summary.json")), File.ReadAllText(summary));
    }

    [Fact]
    public async Task The_prolog_starts_the_node_daemon_before_the_jobs_and_the_epilog_stops_it_after()
    {
        RequireSlurm();
        var cancel = TestContext.Current.CancellationToken;
        string repo = RepoRoot.Find();

        // deploy/slurm's prolog and epilog as slurmd runs them (root, SLURM_JOB_ID, PrologFlags=Alloc),
        // with the node daemon's settings pointed into the cluster's directory and the stand-in
        // daemon of SlurmScriptTests as `mis`. The wrappers only set those variables.
        string? node = null;
        await using var cluster = await SlurmCluster.StartAsync(TimeSpan.FromSeconds(60), root =>
        {
            node = Path.Combine(root, "node");
            Directory.CreateDirectory(node);
            File.SetUnixFileMode(node, (UnixFileMode)Convert.ToInt32("755", 8));
            string settings =
                $"export MIS_BIN='{Path.Combine(repo, "tests", "Mis.Cli.Tests", "Slurm", "fake_enforcer.py")}' MIS_CONFIG_FILE=/etc/mis/enforcer.toml " +
                $"MIS_SOCKET='{node}/mis.sock' MIS_STATE_LOCK='{node}/enforcer.lock' MIS_UNIT=mis-test-no-such-unit.service " +
                $"MIS_STATE='{node}/state' MIS_LOG='{node}/enforcer.log' FAKE_ENFORCER_STARTS='{node}/starts'\n";
            return PrologWrappers(node, repo, settings);
        }, cancel);
        Assert.NotNull(node);

        string shared = SharedDirectory(cluster);
        string script = Path.Combine(shared, "job.sh");
        // Each task records whether the daemon's socket was there when it ran.
        File.WriteAllText(script, $"#!/bin/sh\nif [ -S '{node}/mis.sock' ]; then echo up; else echo down; fi > \"socket-$SLURM_ARRAY_TASK_ID.txt\"\n");
        File.SetUnixFileMode(script, (UnixFileMode)Convert.ToInt32("755", 8));

        string job = cluster.SubmitAs(User, "--array=0-1", $"--chdir={shared}", $"--output={shared}/slurm-%A_%a.out", script);
        var states = await cluster.WaitForJobAsync(job, TimeSpan.FromMinutes(2), cancel);
        string log = File.Exists(Path.Combine(node, "enforcer.log")) ? File.ReadAllText(Path.Combine(node, "enforcer.log")) : "";
        Assert.True(states.Values.All(s => s == "COMPLETED"), $"{string.Join(", ", states)}\n{log}{cluster.Logs()}");
        for (int task = 0; task < 2; task++)
            Assert.Equal("up\n", File.ReadAllText(Path.Combine(shared, $"socket-{task}.txt")));

        // Every daemon a prolog started was stopped by an epilog once no job needed it.
        var pids = File.ReadAllLines(Path.Combine(node, "starts")).Select(int.Parse).ToList();
        Assert.NotEmpty(pids);
        Assert.All(pids, pid => Assert.False(Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal),
            $"daemon {pid} still runs after the last epilog"));
        Assert.False(File.Exists(Path.Combine(node, "mis.sock")), "the socket outlived the daemon");
        Assert.Empty(Directory.GetFiles(Path.Combine(node, "state", "jobs")));
        TestContext.Current.TestOutputHelper?.WriteLine($"prolog/epilog: {pids.Count} daemon start(s) for 2 array tasks");
    }

    [Fact]
    public async Task The_prolog_runs_the_real_node_daemon_for_a_job_whose_user_reaches_its_socket_and_the_epilog_stops_it_cleanly()
    {
        RequireSlurm();
        var cancel = TestContext.Current.CancellationToken;
        string repo = RepoRoot.Find();

        await using var cluster = await StartWithRealDaemonAsync(repo, cancel);
        string node = Path.Combine(cluster.Root, "node");

        string shared = SharedDirectory(cluster);
        string script = Path.Combine(shared, "job.sh");
        // The job, as nobody, connects to the daemon's socket (SO_PEERCRED then names it to the daemon).
        File.WriteAllText(script,
            "#!/bin/sh\n/usr/bin/python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print(\"connected\")' " +
            $"'{node}/mis.sock' > connect.txt 2>&1\n");
        File.SetUnixFileMode(script, (UnixFileMode)Convert.ToInt32("755", 8));

        var clock = Stopwatch.StartNew();
        string job = cluster.SubmitAs(User, $"--chdir={shared}", $"--output={shared}/slurm-%j.out", script);
        var states = await cluster.WaitForJobAsync(job, TimeSpan.FromMinutes(2), cancel);
        string log = File.Exists(Path.Combine(node, "enforcer.log")) ? File.ReadAllText(Path.Combine(node, "enforcer.log")) : "(no enforcer log)";
        TestContext.Current.TestOutputHelper?.WriteLine($"job with the real daemon started by the prolog and stopped by the epilog: {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(states.Values.All(s => s == "COMPLETED"), $"{string.Join(", ", states)}\n{log}{cluster.Logs()}");
        Assert.Equal("connected\n", File.ReadAllText(Path.Combine(shared, "connect.txt")));

        // The epilog stopped it the clean way: SIGTERM, workloads and cgroups gone, socket removed, exit.
        Assert.Contains("mis enforcer: stopped", log, StringComparison.Ordinal);
        int pid = int.Parse(System.Text.RegularExpressions.Regex.Match(log, @"ready \(pid (\d+)\)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.False(Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal), $"the daemon {pid} still runs\n{log}");
        Assert.False(File.Exists(Path.Combine(node, "mis.sock")), "the daemon's socket outlived it");
        Assert.False(File.Exists(Path.Combine(node, "state", "enforcer.pid")), "the epilog left the pid file");
    }

    [Fact]
    public async Task A_kernel_backend_sweep_submitted_by_an_unprivileged_user_runs_through_the_node_daemon_and_merges_to_the_one_machine_summary()
    {
        RequireSlurm();
        var cancel = TestContext.Current.CancellationToken;
        string repo = RepoRoot.Find();
        await using var cluster = await StartWithRealDaemonAsync(repo, cancel);
        string node = Path.Combine(cluster.Root, "node");
        string shared = SharedDirectory(cluster);
        string misHome = MisHomeFor(shared);
        // A kernel-backend sweep whose runs are exactly repeatable (KernelSweep): 4 (config, seed)
        // runs over a 2-task array, every episode a real process run by the daemon as nobody.
        string experiments = Path.Combine(misHome, "experiments", "kernel");
        Directory.CreateDirectory(experiments);
        string experiment = KernelSweep.Write(experiments);
        Assert.Equal(0, Exec("chmod", "-R", "o+rX", experiments));
        string runs = Path.Combine(shared, "runs");
        var environment = new Dictionary<string, string>
        {
            ["MIS_HOME"] = misHome,
            ["RUNS"] = runs,
            ["EXPERIMENT"] = experiment,
            ["MIS_ENFORCER"] = $"unix:{node}/mis.sock",
        };

        var clock = Stopwatch.StartNew();
        string sweep = cluster.SubmitAs(User, environment, "--array=0-1", $"--chdir={shared}", "--export=ALL,HOME=/tmp",
            Path.Combine(misHome, "deploy", "slurm", "mis-sweep.sbatch"));
        string merge = cluster.SubmitAs(User, environment, $"--dependency=afterany:{sweep}", $"--chdir={shared}", "--export=ALL,HOME=/tmp",
            Path.Combine(misHome, "deploy", "slurm", "merge.sbatch"));
        var sweepStates = await cluster.WaitForJobAsync(sweep, TimeSpan.FromMinutes(4), cancel);
        var mergeStates = await cluster.WaitForJobAsync(merge, TimeSpan.FromMinutes(2), cancel);
        TestContext.Current.TestOutputHelper?.WriteLine($"kernel sweep (2 array tasks, 32 episodes through the daemon) and merge done in {clock.Elapsed.TotalSeconds:F1} s");

        string log = File.Exists(Path.Combine(node, "enforcer.log")) ? File.ReadAllText(Path.Combine(node, "enforcer.log")) : "(no enforcer log)";
        string output = string.Join('\n', Directory.GetFiles(shared, "*.out").Select(f => $"--- {Path.GetFileName(f)}\n{File.ReadAllText(f)}"));
        Assert.True(sweepStates.Values.All(s => s == "COMPLETED"), $"sweep: {string.Join(", ", sweepStates)}\n{output}\n{log}{cluster.Logs()}");
        Assert.True(mergeStates.Values.All(s => s == "COMPLETED"), $"merge: {string.Join(", ", mergeStates)}\n{output}{cluster.Logs()}");
        // The daemon ran them for nobody (and its epilog stopped it).
        Assert.Contains($"opened for uid {Id("-u", User)} ({User})", log, StringComparison.Ordinal);
        Assert.Contains("mis enforcer: stopped", log, StringComparison.Ordinal);

        // The same sweep in-process on one machine, as root: the merged summary byte for byte.
        string summary = Path.Combine(runs, KernelSweep.Name, "summary.json");
        Assert.True(File.Exists(summary), $"no {summary}\n{output}");
        string alone = Path.Combine(cluster.Root, "one-machine");
        var run = CliRunner.Run("gym", "run", experiment, "--out", alone);
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Equal(File.ReadAllText(Path.Combine(alone, "summary.json")), File.ReadAllText(summary));
    }

    /// <summary>
    /// A cluster whose prolog and epilog (deploy/slurm's, as slurmd runs them) start and stop this
    /// build's real `mis enforcer` (no systemd here: the background path with its pid file) in
    /// <c>ROOT/node</c>, on a socket every user may connect to.
    /// </summary>
    private static Task<SlurmCluster> StartWithRealDaemonAsync(string repo, CancellationToken cancel) =>
        SlurmCluster.StartAsync(TimeSpan.FromSeconds(60), root =>
        {
            string node = Path.Combine(root, "node");
            Directory.CreateDirectory(Path.Combine(node, "state-dir"));
            File.SetUnixFileMode(node, (UnixFileMode)Convert.ToInt32("755", 8));
            string dotnet = Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
            File.WriteAllText(Path.Combine(node, "mis"), $"#!/bin/sh\nexec '{dotnet}' '{Path.Combine(AppContext.BaseDirectory, "mis.dll")}' \"$@\"\n");
            File.WriteAllText(Path.Combine(node, "enforcer.toml"),
                $"[paths]\nstate_dir = \"{node}/state-dir\"\n[grpc]\nenabled = true\nport = {FreeTcpPort()}\n" +
                $"unix_socket_path = \"{node}/mis.sock\"\nunix_socket_mode = \"0666\"\n");
            string settings =
                $"export MIS_BIN='{node}/mis' MIS_CONFIG_FILE='{node}/enforcer.toml' MIS_SOCKET='{node}/mis.sock' " +
                $"MIS_STATE_LOCK='{node}/state-dir/enforcer.lock' MIS_UNIT=mis-test-no-such-unit.service " +
                $"MIS_STATE='{node}/state' MIS_LOG='{node}/enforcer.log'\n";
            File.SetUnixFileMode(Path.Combine(node, "mis"), (UnixFileMode)Convert.ToInt32("755", 8));
            return PrologWrappers(node, repo, settings);
        }, cancel);

    private static void RequireSlurm()
    {
        HostRequirements.Root();
        var missing = SlurmCluster.MissingPrograms();
        HostRequirements.That(missing.Count == 0, $"Slurm is not installed (missing {string.Join(", ", missing)}; ./mis installs slurm-wlm and munge)");
    }

    // A directory every user may write (sticky, like /tmp) under the cluster's.
    private static string SharedDirectory(SlurmCluster cluster)
    {
        string shared = Path.Combine(cluster.Root, "shared");
        Directory.CreateDirectory(shared);
        File.SetUnixFileMode(shared, (UnixFileMode)Convert.ToInt32("1777", 8));
        return shared;
    }

    // deploy/slurm's prolog and epilog as slurmd runs them (root, SLURM_JOB_ID, PrologFlags=Alloc):
    // wrappers in node/ that only export settings, and the slurm.conf lines naming them.
    private static IReadOnlyList<string> PrologWrappers(string node, string repo, string settings)
    {
        foreach (string script in new[] { "prolog", "epilog" })
        {
            File.WriteAllText(Path.Combine(node, $"{script}.sh"), $"#!/bin/sh\n{settings}exec '{Path.Combine(repo, "deploy", "slurm", $"{script}.sh")}'\n");
            File.SetUnixFileMode(Path.Combine(node, $"{script}.sh"), (UnixFileMode)Convert.ToInt32("755", 8));
        }
        return [$"Prolog={node}/prolog.sh", "PrologFlags=Alloc", $"Epilog={node}/epilog.sh"];
    }

    private static int FreeTcpPort()
    {
        using var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        return ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
    }

    // A checkout as the job's user may read it: the CLI's build output (hard links where the file
    // system allows, the tests' own output holds mis.dll and everything it loads), the experiments
    // and deploy/slurm, under a directory of the cluster's.
    private static string MisHomeFor(string shared)
    {
        string repo = RepoRoot.Find();
        string home = Path.Combine(shared, "mis-home");
        string bin = Path.Combine(home, "src", "Mis.Cli", "bin", "Release", "net10.0");
        Directory.CreateDirectory(Path.GetDirectoryName(bin)!);
        if (Exec("cp", "-al", AppContext.BaseDirectory.TrimEnd('/'), bin) != 0)
            Assert.Equal(0, Exec("cp", "-a", AppContext.BaseDirectory.TrimEnd('/'), bin));
        Assert.Equal(0, Exec("cp", "-a", Path.Combine(repo, "experiments"), home));
        Directory.CreateDirectory(Path.Combine(home, "deploy"));
        Assert.Equal(0, Exec("cp", "-a", Path.Combine(repo, "deploy", "slurm"), Path.Combine(home, "deploy")));
        Assert.Equal(0, Exec("chmod", "-R", "o+rX", home));
        return home;
    }

    private static int Exec(string program, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(program, args) { RedirectStandardError = true })!;
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode;
    }

    private static string Id(string flag, string user) => Output("id", flag, user);

    private static string Stat(string file) => Output("stat", "-c", "%u", file);

    private static string Output(string program, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(program, args) { RedirectStandardOutput = true })!;
        string text = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{program} {string.Join(' ', args)} failed");
        return text;
    }
}
