using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Win32.SafeHandles;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Defcon;
using Mis.Enforcer.Policy;
using Mis.Native;
using Mis.Testing;

namespace Mis.Enforcer.Tests;

/// <summary>Denies what a real policy would: the test's secret and /etc/shadow (by inode, so every name of them), writes below chosen prefixes, exec of chosen inodes.</summary>
internal sealed class FakeDecider : IFileDecider
{
    internal readonly HashSet<(ulong Dev, ulong Ino)> DeniedFiles = [];
    internal readonly HashSet<(ulong Dev, ulong Ino)> DeniedExecs = [];
    internal readonly List<string> DeniedWritePrefixes = [];
    internal readonly ConcurrentQueue<FileRequest> Seen = new();

    public Verdict Decide(FileRequest access, int defcon)
    {
        Seen.Enqueue(access);
        var id = (access.Device, access.Inode);
        if (access.Op == FileOp.Exec)
            return DeniedExecs.Contains(id) ? Verdict.Deny : Verdict.Allow;
        if (DeniedFiles.Contains(id))
            return Verdict.Deny;
        if (access.Op == FileOp.Write && DeniedWritePrefixes.Any(p => access.Path == p || access.Path.StartsWith(p + "/", StringComparison.Ordinal)))
            return Verdict.Deny;
        return Verdict.Allow;
    }

    internal static (ulong, ulong) IdOf(string path)
    {
        unsafe
        {
            Libc.Stat st;
            byte[] p = System.Text.Encoding.UTF8.GetBytes(path + "\0");
            fixed (byte* b = p)
                Assert.Equal(0, Libc.StatPath(b, &st));
            return (st.Dev, st.Ino);
        }
    }
}

/// <summary>Counts reports; DEFCON stays 5.</summary>
internal sealed class FakeSink : IViolationSink
{
    internal readonly ConcurrentQueue<ViolationReport> Reports = new();

    public ViolationOutcome Report(ViolationReport report)
    {
        Reports.Enqueue(report);
        return new ViolationOutcome((ulong)Reports.Count, DefconLevel.Normal, DefconLevel.Normal);
    }

    public DefconLevel Defcon(ulong cgroupId) => DefconLevel.Normal;
}

internal sealed record RunResult(WorkloadExit Exit, string Stdout, string Stderr)
{
    /// <summary>The supervisor's threads at their most, and whether all of them had ended once the workload had.</summary>
    internal (int PeakThreads, int IdleRetired, bool ExtraThreadsAllowed, bool Ended) Supervisor { get; init; }

    public override string ToString() => $"{Exit}; stdout: {Stdout}; stderr: {Stderr}";
}

/// <summary>
/// A scratch cgroup "&lt;mount&gt;/mis/test-conf-&lt;pid&gt;-&lt;n&gt;", a scratch directory in /tmp readable by
/// everyone (with an allowed file, a secret the decider denies, and a directory the workload may
/// write), the fakes, and a helper that runs one confined command to its end.
/// </summary>
internal sealed class ConfinementHarness : IDisposable
{
    private static int s_counter;

    internal const string SecretMarker = "TOPSECRET";
    internal readonly string Mount;
    internal readonly string Cgroup;
    internal readonly string Dir;
    internal readonly string Allowed;
    internal readonly string Secret;
    internal readonly string Writable;
    internal readonly FakeDecider Decider = new();
    internal readonly FakeSink Sink = new();
    internal readonly ConcurrentQueue<string> Log = new();
    internal readonly WorkloadLauncher Launcher = new();

    /// <summary>Decides instead of <see cref="Decider"/> when set (a real policy).</summary>
    internal IFileDecider? Policy { get; set; }

    internal ConfinementHarness()
    {
        HostRequirements.Root();
        Mount = CgroupV2.FindMount() ?? throw new InvalidOperationException("cgroup v2 is not mounted");
        int n = Interlocked.Increment(ref s_counter);
        Directory.CreateDirectory(Path.Combine(Mount, "mis"));
        Cgroup = Path.Combine(Mount, "mis", $"test-conf-{Environment.ProcessId}-{n}");
        Directory.CreateDirectory(Cgroup);
        Dir = $"/tmp/mis-conf-{Environment.ProcessId}-{n}";
        Directory.CreateDirectory(Dir);
        Chmod(Dir, 0x1ED); // 0755
        Allowed = Path.Combine(Dir, "public.txt");
        Secret = Path.Combine(Dir, "secret.txt"); // same length as Allowed, for the race test
        File.WriteAllText(Allowed, "hello from the allowed file\n");
        File.WriteAllText(Secret, SecretMarker + " do not read\n");
        Chmod(Allowed, 0x1A4); // 0644: DAC lets everyone read both
        Chmod(Secret, 0x1A4);
        Writable = Path.Combine(Dir, "pub");
        Directory.CreateDirectory(Writable);
        Chmod(Writable, 0x1FF); // 0777
        Decider.DeniedFiles.Add(FakeDecider.IdOf(Secret));
        Decider.DeniedFiles.Add(FakeDecider.IdOf("/etc/shadow"));
        Decider.DeniedWritePrefixes.Add(Mount); // as policy would: no workload writes cgroupfs
        if (Cgroups.PidsCap.FindV1PidsMount() is string pids)
            Decider.DeniedWritePrefixes.Add(pids); // the v1 pids hierarchy holding the task cap: as /sys/** in policy
    }

    internal static void Chmod(string path, int mode)
    {
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException();
        File.SetUnixFileMode(path, (UnixFileMode)mode);
    }

    internal int Violations(ViolationOp op) => Sink.Reports.Count(r => r.Op == op);

    internal RunResult Run(IReadOnlyList<string> command, WorkloadIdentity? identity = null, string? cwd = null, TimeSpan? timeout = null,
        MountNamespace? mountNamespace = null, int maxTasks = Cgroups.PidsCap.DefaultMaxTasks, Action<Workload>? beforeGo = null)
    {
        var (outRead, outWrite) = Pipe();
        var (errRead, errWrite) = Pipe();
        Workload workload;
        using (outWrite)
        using (errWrite)
            workload = Launcher.Launch(new LaunchSpec
            {
                CgroupPath = Cgroup, Command = command, Identity = identity, WorkingDirectory = cwd ?? Dir,
                Stdout = outWrite, Stderr = errWrite, MountNamespace = mountNamespace, MaxTasks = maxTasks,
            });
        using (workload)
        using (var supervisor = SeccompSupervisor.Start(workload, Policy ?? Decider, Sink, Log.Enqueue))
        {
            var stdout = ReadAll(outRead);
            var stderr = ReadAll(errRead);
            beforeGo?.Invoke(workload);
            workload.Go();
            var exit = workload.WaitForExit(timeout ?? TimeSpan.FromSeconds(60));
            if (exit is null)
            {
                workload.Kill();
                Assert.Fail($"{string.Join(' ', command)} did not end in time; stderr so far: {(stderr.IsCompleted ? stderr.Result : "")}");
            }
            Assert.True(Task.WaitAll([stdout, stderr], TimeSpan.FromSeconds(30)), "the workload's output did not close");
            // The workload's last process is gone: every supervisor thread sees the hang-up and ends.
            bool ended = supervisor.Completion.Wait(TimeSpan.FromSeconds(10));
            return new RunResult(exit!, stdout.Result, stderr.Result)
            {
                Supervisor = (supervisor.Stats.PeakThreads, supervisor.Stats.IdleRetired, supervisor.ExtraThreadsAllowed, ended),
            };
        }
    }

    internal RunResult Sh(string script, WorkloadIdentity? identity = null, string? cwd = null) => Run(["/bin/sh", "-c", script], identity, cwd);

    internal RunResult Python(string code, WorkloadIdentity? identity = null) => Run(["/usr/bin/python3", "-c", code], identity);

    internal static unsafe (SafeFileHandle Read, SafeFileHandle Write) Pipe()
    {
        int* fds = stackalloc int[2];
        Assert.Equal(0, Libc.Pipe2(fds, Libc.O_CLOEXEC));
        return (new SafeFileHandle(fds[0], true), new SafeFileHandle(fds[1], true));
    }

    private static Task<string> ReadAll(SafeFileHandle read) => Task.Run(() =>
    {
        using var stream = new FileStream(read, FileAccess.Read, 1);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    /// <summary>Compiles tests/Mis.Enforcer.Tests/native/NAME.c into the scratch dir (readable and executable by the workload).</summary>
    internal string Compile(string name)
    {
        string source = Path.Combine(RepoRoot(), "tests", "Mis.Enforcer.Tests", "native", name + ".c");
        string output = Path.Combine(Dir, name);
        var psi = new ProcessStartInfo("cc", ["-O2", "-pthread", "-o", output, source]) { RedirectStandardError = true };
        using var cc = Process.Start(psi)!;
        string errors = cc.StandardError.ReadToEnd();
        cc.WaitForExit();
        Assert.True(cc.ExitCode == 0, $"cc {name}.c failed: {errors}");
        return output;
    }

    internal static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MIS.sln")))
                return dir.FullName;
        throw new InvalidOperationException("repository root (MIS.sln) not found above " + AppContext.BaseDirectory);
    }

    public void Dispose()
    {
        RemoveCgroup(Cgroup);
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    internal static void RemoveCgroup(string cgroup)
    {
        try
        {
            RemoveV2Cgroup(cgroup);
        }
        finally
        {
            Cgroups.PidsCap.RemoveMirror(cgroup);
        }
    }

    private static void RemoveV2Cgroup(string cgroup)
    {
        if (!Directory.Exists(cgroup))
            return;
        File.WriteAllText(Path.Combine(cgroup, "cgroup.kill"), "1");
        for (int i = 0; i < 500; i++)
        {
            try
            {
                Directory.Delete(cgroup);
                return;
            }
            catch (IOException)
            {
                Thread.Sleep(10); // EBUSY until the killed processes have left
            }
        }
    }
}

/// <summary>The launcher and the workload handle: identity, capabilities, cgroup, exit status, setup errors.</summary>
public sealed class ConfinementTests
{
    [Fact]
    public void Workload_runs_unprivileged_without_capabilities_and_with_no_new_privs()
    {
        using var h = new ConfinementHarness();
        var run = h.Run(["cat", "/proc/self/status"]);
        Assert.Equal(0, run.Exit.ExitCode);
        var status = Fields(run.Stdout);
        Assert.Equal("65534\t65534\t65534\t65534", status["Uid"]);
        Assert.Equal("65534\t65534\t65534\t65534", status["Gid"]);
        foreach (var set in new[] { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" })
            Assert.Equal("0000000000000000", status[set]);
        Assert.Equal("1", status["NoNewPrivs"]);
        Assert.Equal("2", status["Seccomp"]);
    }

    [Fact]
    public void As_root_workload_is_uid_0_without_capabilities_and_with_locked_securebits()
    {
        using var h = new ConfinementHarness();
        // PR_GET_SECUREBITS = 27
        var run = h.Run(["/usr/bin/python3", "-c",
            "import ctypes; print(open('/proc/self/status').read()); print('securebits', ctypes.CDLL(None).prctl(27, 0, 0, 0, 0))"],
            WorkloadIdentity.Root);
        Assert.True(run.Exit.ExitCode == 0, run.ToString());
        var status = Fields(run.Stdout);
        Assert.Equal("0\t0\t0\t0", status["Uid"]);
        foreach (var set in new[] { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" })
            Assert.Equal("0000000000000000", status[set]);
        // NOROOT, NO_SETUID_FIXUP, NO_CAP_AMBIENT_RAISE and their locks, KEEP_CAPS off and locked.
        Assert.Contains("securebits 239", run.Stdout);
    }

    [Fact]
    public void Workload_is_in_its_cgroup_from_its_first_instruction()
    {
        using var h = new ConfinementHarness();
        string member = $"0::{h.Cgroup[h.Mount.Length..]}\n";
        string? parkedExe = null, parkedCgroup = null;
        // Launch returns with the task parked in mis-launch, waiting for go: the command is not yet
        // exec'd, so what is read from outside now holds before its first instruction. Read from
        // inside after exec, as the workload sees it, a join made only after go could still pass.
        var run = h.Run(["cat", "/proc/self/cgroup"], beforeGo: w =>
        {
            parkedExe = new FileInfo($"/proc/{w.Pid}/exe").LinkTarget;
            parkedCgroup = File.ReadAllText($"/proc/{w.Pid}/cgroup");
        });
        Assert.Equal(PosixFiles.RealPath(h.Launcher.LauncherPath), parkedExe);
        Assert.Contains(member, parkedCgroup);
        Assert.Contains(member, run.Stdout);
    }

    [Fact]
    public void Exit_status_and_killing_signal_propagate()
    {
        using var h = new ConfinementHarness();
        Assert.Equal(new WorkloadExit(3, null), h.Sh("exit 3").Exit);
        Assert.Equal(new WorkloadExit(null, 9), h.Sh("kill -9 $$").Exit);
    }

    [Fact]
    public void Exit_status_survives_dotnets_own_child_handling_and_a_foreign_reaper()
    {
        using var h = new ConfinementHarness();
        using (var workload = h.Launcher.Launch(new LaunchSpec { CgroupPath = h.Cgroup, Command = ["sh", "-c", "sleep 0.3; exit 7"] }))
        using (SeccompSupervisor.Start(workload, h.Decider, h.Sink, h.Log.Enqueue))
        {
            workload.Go();
            // System.Diagnostics.Process installs .NET's SIGCHLD handling and reaps its own children meanwhile.
            for (int i = 0; i < 5; i++)
                using (var p = Process.Start("true")!)
                    p.WaitForExit();
            Assert.Equal(new WorkloadExit(7, null), workload.WaitForExit(TimeSpan.FromSeconds(30)));
        }
        using (var workload = h.Launcher.Launch(new LaunchSpec { CgroupPath = h.Cgroup, Command = ["sh", "-c", "exit 5"] }))
        using (SeccompSupervisor.Start(workload, h.Decider, h.Sink, h.Log.Enqueue))
        {
            workload.Go();
            unsafe
            {
                int status; // someone else reaps it first (wait4 by pid): the pidfd still knows
                Assert.Equal(workload.Pid, (int)Libc.Syscall(61, workload.Pid, (long)&status, 0, 0));
            }
            Assert.Equal(new WorkloadExit(5, null), workload.WaitForExit(TimeSpan.FromSeconds(30)));
        }
    }

    [Fact]
    public void Workload_outlives_the_thread_that_launched_it()
    {
        // PDEATHSIG follows the parent *thread*: launching from a thread that then exits must not kill the workload.
        using var h = new ConfinementHarness();
        Workload? workload = null;
        var thread = new Thread(() => workload = h.Launcher.Launch(new LaunchSpec { CgroupPath = h.Cgroup, Command = ["sh", "-c", "sleep 0.5; exit 4"] }));
        thread.Start();
        thread.Join();
        Assert.NotNull(workload);
        using (workload)
        using (SeccompSupervisor.Start(workload, h.Decider, h.Sink, h.Log.Enqueue))
        {
            workload.Go();
            Assert.Equal(new WorkloadExit(4, null), workload.WaitForExit(TimeSpan.FromSeconds(30)));
        }
    }

    [Fact]
    public void Setup_failure_carries_the_launchers_message()
    {
        using var h = new ConfinementHarness();
        var e = Assert.Throws<WorkloadLaunchException>(() =>
            h.Launcher.Launch(new LaunchSpec { CgroupPath = h.Cgroup, Command = ["true"], WorkingDirectory = "/nonexistent-dir" }));
        Assert.Equal("chdir /nonexistent-dir: No such file or directory", e.LauncherMessage);
        Assert.Throws<ArgumentException>(() => WorkloadIdentity.User("no-such-user-mis"));
    }

    [Fact]
    public void Denied_exec_fails_with_EPERM_and_is_reported()
    {
        using var h = new ConfinementHarness();
        string tool = Path.Combine(h.Dir, "tool");
        File.Copy("/usr/bin/id", tool);
        h.Decider.DeniedExecs.Add(FakeDecider.IdOf(tool));
        var run = h.Sh($"{tool}; echo rc=$?; ln -s {tool} {h.Writable}/alias; {h.Writable}/alias; echo rc=$?");
        Assert.Equal(2, run.Stdout.Split("rc=126").Length - 1);
        Assert.Equal(2, h.Violations(ViolationOp.Exec));
        Assert.All(h.Sink.Reports, r => Assert.Equal(tool, r.Target));
        // The very first exec (the command itself) is decided too.
        var direct = h.Run([tool]);
        Assert.Equal(127, direct.Exit.ExitCode);
        Assert.Contains("Operation not permitted", direct.Stderr);
        Assert.Equal(3, h.Violations(ViolationOp.Exec));
    }

    internal static Dictionary<string, string> Fields(string status) => status
        .Split('\n', StringSplitOptions.RemoveEmptyEntries)
        .Select(l => l.Split(':', 2))
        .Where(p => p.Length == 2)
        .GroupBy(p => p[0]).ToDictionary(g => g.Key, g => g.First()[1].Trim());
}
