using System.Diagnostics;
using Grpc.Core;
using Mis.Enforcer.Configuration;
using Mis.Policy.V1;
using Mis.Testing;

namespace Mis.Server.Tests;

/// <summary>
/// deploy/systemd: the unit parses as systemd reads it, starts what MIS really provides, and the
/// hardening it asks for (capability bounding set, no-new-privs) leaves the enforcer working; the
/// sample configuration loads and agrees with the directories the unit makes.
/// </summary>
public sealed class SystemdUnitTests
{
    private const string InstallRoot = "/opt/mis/";
    private static readonly string Repo = FindRepo();
    private static readonly string Unit = Path.Combine(Repo, "deploy", "systemd", "mis-enforcer.service");
    private static readonly string SampleConfig = Path.Combine(Repo, "deploy", "systemd", "enforcer.toml");

    [Fact]
    public void The_unit_passes_systemd_analyze_verify_and_runs_the_enforcer_MIS_builds()
    {
        HostRequirements.That(File.Exists("/usr/bin/systemd-analyze"), "systemd-analyze (Debian's systemd) is not installed (./mis installs it)");
        var keys = Keys(File.ReadAllLines(Unit));
        string[] exec = keys["ExecStart"].Single().Split(' ');
        Assert.Equal(["enforcer", "/etc/mis/enforcer.toml"], exec[2..]);
        Assert.StartsWith(InstallRoot, exec[1]);
        // The install root is where the repository is checked out: the path below it is this
        // repository's own build output (what ./mis builds), and the verb and config are MIS's.
        string dll = Path.Combine(Repo, exec[1][InstallRoot.Length..]);
        Assert.True(File.Exists(dll), $"ExecStart names {exec[1]}, but the build makes no {dll}");
        using (var help = MisProcess.Start("enforcer", "--help"))
        {
            Assert.True(help.Process.WaitForExit(TimeSpan.FromSeconds(60)));
            help.Process.WaitForExit();
            Assert.Equal(0, help.Process.ExitCode);
            Assert.Contains("CONFIG", help.Stdout);
        }

        // systemd's own parser, on the unit as installed here (the repository in place of /opt/mis):
        // unknown keys, bad values and a missing executable are all reported.
        string dir = Directory.CreateTempSubdirectory("mis-unit-").FullName;
        try
        {
            string copy = Path.Combine(dir, "mis-enforcer.service");
            File.WriteAllText(copy, File.ReadAllText(Unit).Replace(InstallRoot, Repo.TrimEnd('/') + "/", StringComparison.Ordinal));
            var (exit, output) = LocalUsers.Run("/usr/bin/systemd-analyze", "verify", copy);
            Assert.True(exit == 0 && output.Trim().Length == 0, $"systemd-analyze verify: exit {exit}\n{output}");

            File.AppendAllText(copy, "\n[Service]\nRestart=sometimes\n");
            (_, output) = LocalUsers.Run("/usr/bin/systemd-analyze", "verify", copy);
            Assert.Contains("restart specifier", output); // the check does look at values
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        Assert.Equal("notify", keys["Type"].Single());
        Assert.Equal("on-failure", keys["Restart"].Single());
        Assert.Equal("control-group", keys["KillMode"].Single());
        foreach (string option in new[] { "ProtectSystem", "ProtectHome", "PrivateTmp", "ProtectControlGroups", "ProtectKernelTunables", "RestrictNamespaces", "MemoryDenyWriteExecute" })
            Assert.False(keys.ContainsKey(option), $"{option} would reach the workloads or break the enforcer (see the unit's comment)");
    }

    [Fact]
    public void The_sample_configuration_loads_and_uses_the_directories_the_unit_makes()
    {
        var keys = Keys(File.ReadAllLines(Unit));
        var config = MisConfig.Load(SampleConfig);
        Assert.True(config.Grpc.Enabled);
        Assert.Equal($"/run/{keys["RuntimeDirectory"].Single()}/mis.sock", config.Grpc.UnixSocketPath);
        Assert.Equal($"/var/lib/{keys["StateDirectory"].Single()}", config.Paths.StateDir);
        Assert.StartsWith($"/var/log/{keys["LogsDirectory"].Single()}/", config.Logging.AuditLogPath);
        Assert.True(config.Grpc.UnixSocketOpenToUsers);
        Assert.Equal("auto", config.Access.TcpCallers);
    }

    [Fact]
    public async Task The_enforcer_works_under_the_units_capability_bounding_set_and_no_new_privs()
    {
        HostRequirements.Root();
        var keys = Keys(File.ReadAllLines(Unit));
        Assert.Equal("yes", keys["NoNewPrivileges"].Single());
        string caps = string.Join(',', keys["CapabilityBoundingSet"].Single().Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(c => "+" + c["CAP_".Length..].ToLowerInvariant()));
        string dir = Directory.CreateTempSubdirectory("mis-unit-caps-").FullName;
        string socket = Path.Combine(dir, "mis.sock");
        string denied = Path.Combine(dir, "secret");
        File.WriteAllText(denied, "no\n");
        File.SetUnixFileMode(dir, (UnixFileMode)0x1ED);
        File.SetUnixFileMode(denied, (UnixFileMode)0x1A4);
        File.WriteAllText(Path.Combine(dir, "policy.toml"), $"[[file]]\npath = \"{denied}\"\naction = \"deny\"\n");
        string config = Path.Combine(dir, "enforcer.toml");
        // The socket's group exercises CAP_CHOWN; the workloads run as nobody (SETUID/SETGID).
        File.WriteAllText(config, $"""
            [paths]
            state_dir = "{dir}/state"
            policy_files = ["policy.toml"]
            [grpc]
            enabled = true
            port = {FreePort()}
            unix_socket_path = "{socket}"
            unix_socket_mode = "0660"
            unix_socket_group = "nogroup"
            [watchdog]
            kill_grace_ms = 500
            """);
        // setpriv does to the enforcer what systemd does with the unit's two settings.
        var psi = new ProcessStartInfo("/usr/bin/setpriv") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { $"--bounding-set=-all,{caps}", "--inh-caps=-all", "--no-new-privs", "--",
                     Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "/usr/bin/dotnet", Path.Combine(AppContext.BaseDirectory, "mis.dll"), "enforcer", config })
            psi.ArgumentList.Add(a);
        psi.Environment.Remove("MIS_CONFIG");
        using var enforcer = Process.Start(psi)!;
        var stderr = new System.Text.StringBuilder();
        enforcer.ErrorDataReceived += (_, e) => { lock (stderr) stderr.AppendLine(e.Data); };
        enforcer.BeginErrorReadLine();
        enforcer.BeginOutputReadLine();
        try
        {
            var watch = Stopwatch.StartNew();
            while (!File.Exists(socket) || !Log(stderr).Contains("mis enforcer: ready", StringComparison.Ordinal))
            {
                Assert.False(enforcer.HasExited, $"the enforcer exited under the unit's capabilities:\n{Log(stderr)}");
                Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), Log(stderr));
                await Task.Delay(50, Ct);
            }
            Assert.Contains("CapBnd:\t" + BoundingMask(caps), File.ReadAllText($"/proc/{enforcer.Id}/status"));
            using var channel = NodeDaemonAccessTests.UnixChannel(socket);
            var client = new PolicyService.PolicyServiceClient(channel);

            // A denial from the policy, a DEFCON change, a graceful kill: the kernel programs,
            // the supervisor and the cgroups all work.
            var cat = await client.RunWorkloadAsync(new RunWorkloadRequest { Command = "cat", Args = { denied } }, cancellationToken: Ct);
            var done = await WaitExitedAsync(client, cat.CgroupId);
            Assert.Equal(1, done.ExitStatus);
            Assert.Equal(1UL, done.Violations);
            Assert.Equal("nobody", done.User);
            var sleeper = await client.RunWorkloadAsync(new RunWorkloadRequest { Command = "sleep", Args = { "60" } }, cancellationToken: Ct);
            await TestEnforcer.WaitAsleepAsync(sleeper.Pid);
            Assert.Equal(4, (await client.SetDefconAsync(new SetDefconRequest { CgroupId = sleeper.CgroupId, Level = 4 }, cancellationToken: Ct)).Defcon);
            var killed = await client.KillProcessAsync(new KillProcessRequest { CgroupId = sleeper.CgroupId, Graceful = true }, cancellationToken: Ct);
            Assert.True(killed.Success, killed.Message);

            Assert.Equal(0, Mis.Native.Signals.Send(enforcer.Id, Mis.Native.Signals.SIGTERM));
            Assert.True(enforcer.WaitForExit(TimeSpan.FromSeconds(30)), "no stop on SIGTERM");
            Assert.True(enforcer.ExitCode == 0, Log(stderr));
        }
        finally
        {
            if (!enforcer.HasExited)
                enforcer.Kill();
            enforcer.WaitForExit();
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Every <c>Key=Value</c> of a unit file, comments and section headers left out.</summary>
    private static Dictionary<string, List<string>> Keys(IEnumerable<string> lines)
    {
        var keys = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (string line in lines.Select(l => l.Trim()).Where(l => l.Length > 0 && l[0] is not ('#' or ';' or '[')))
        {
            int eq = line.IndexOf('=', StringComparison.Ordinal);
            Assert.True(eq > 0, $"not Key=Value: {line}");
            (keys.TryGetValue(line[..eq], out var values) ? values : keys[line[..eq]] = []).Add(line[(eq + 1)..]);
        }
        return keys;
    }

    private static async Task<CgroupInfo> WaitExitedAsync(PolicyService.PolicyServiceClient client, ulong cgroupId)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var info = await client.GetCgroupAsync(new GetCgroupRequest { CgroupId = cgroupId }, cancellationToken: Ct);
            if (info.State == WorkloadState.Exited)
                return info;
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"cgroup {cgroupId} still running");
            await Task.Delay(20, Ct);
        }
    }

    // The bounding set as /proc/PID/status shows it (CapBnd, 16 hex digits), from setpriv's names:
    // the unit's, less what this process's own bounding set lacks (a container may withhold some).
    private static string BoundingMask(string caps)
    {
        string[] names = LocalUsers.Run("/usr/bin/setpriv", "--list-caps").Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        ulong mask = caps.Split(',').Aggregate(0UL, (m, c) => m | (1UL << Array.IndexOf(names, c[1..])));
        string own = File.ReadAllLines("/proc/self/status").First(l => l.StartsWith("CapBnd:", StringComparison.Ordinal))["CapBnd:".Length..].Trim();
        mask &= ulong.Parse(own, System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
        return mask.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
    }

    private static string Log(System.Text.StringBuilder stderr)
    {
        lock (stderr)
            return stderr.ToString();
    }

    private static int FreePort()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private static string FindRepo()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MIS.sln")))
                return dir.FullName;
        throw new InvalidOperationException($"no MIS.sln above {AppContext.BaseDirectory}");
    }
}
