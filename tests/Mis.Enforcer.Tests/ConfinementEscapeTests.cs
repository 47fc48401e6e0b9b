using System.Diagnostics;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Policy;
using Mis.Native;

namespace Mis.Enforcer.Tests;

/// <summary>The escape class, signals and other cross-process calls, the guard, and what confinement costs.</summary>
public sealed class ConfinementEscapeTests(ITestOutputHelper output)
{
    /// <summary>Python snippets making one escape syscall each; every one must print "errno=1".</summary>
    public static TheoryData<string, string> EscapeCalls => new()
    {
        { "unshare", "r = libc.unshare(0x10000000)" }, // CLONE_NEWUSER
        { "mount", "r = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)" },
        { "ptrace", "r = libc.ptrace(16, os.getppid(), 0, 0)" }, // PTRACE_ATTACH
        { "bpf", "r = libc.syscall(321, 0, None, 0)" },
        { "io_uring_setup", "r = libc.syscall(425, 8, ctypes.create_string_buffer(120))" },
        { "setns", "r = libc.setns(os.open('/proc/self/ns/mnt', os.O_RDONLY), 0)" },
        { "process_vm_readv", "r = libc.syscall(310, os.getppid(), None, 0, None, 0, 0)" },
        { "chroot", "r = libc.chroot(b'/tmp')" },
        { "perf_event_open", "r = libc.syscall(298, ctypes.create_string_buffer(128), 0, -1, -1, 0)" },
        { "open_tree", "r = libc.syscall(428, -100, b'/tmp', 1)" },
        { "pidfd_getfd", "r = libc.syscall(438, 0, 0, 0)" },
    };

    [Theory]
    [MemberData(nameof(EscapeCalls))]
    public void Escape_syscalls_fail_with_EPERM_and_are_reported(string name, string call)
    {
        using var h = new ConfinementHarness();
        foreach (var identity in new[] { WorkloadIdentity.Default, WorkloadIdentity.Root })
        {
            var run = h.Python($"import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n{call}\nprint('r=%d errno=%d' % (r, ctypes.get_errno()))", identity);
            Assert.True(run.Stdout.Contains("r=-1 errno=1\n", StringComparison.Ordinal), $"{identity.Name}: {run}");
        }
        Assert.Equal(2, h.Sink.Reports.Count);
        Assert.All(h.Sink.Reports, r => Assert.Equal((ViolationOp.EscapeSyscall, name), (r.Op, r.Target)));
    }

    [Fact]
    public void Namespaces_through_clone_and_clone3_are_unavailable()
    {
        using var h = new ConfinementHarness();
        var run = h.Python("""
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            r = libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0)
            print("clone", r, ctypes.get_errno())
            r = libc.syscall(435, ctypes.create_string_buffer(88), 88)
            print("clone3", r, ctypes.get_errno())
            """);
        Assert.Contains("clone -1 1\n", run.Stdout); // CLONE_NEWUSER: EPERM from the filter itself
        Assert.Contains("clone3 -1 38\n", run.Stdout); // ENOSYS: glibc falls back to clone
        // Ordinary threads and processes still work (glibc: clone3 -> ENOSYS -> clone).
        Assert.Contains("done", h.Python("import threading, subprocess; t = threading.Thread(target=print); t.start(); t.join(); subprocess.run(['true']); print('done')").Stdout);
    }

    [Fact]
    public void Foreign_syscall_abis_are_refused()
    {
        using var h = new ConfinementHarness();
        string probe = h.Compile("abi_probe");
        Assert.Contains("x32 r=-1 errno=38\n", h.Run([probe]).Stdout); // ENOSYS
        // int 0x80: killed by the filter (SIGSYS) where the kernel has IA-32 emulation, SIGSEGV where it has none.
        var i386 = h.Run([probe, "i386"]);
        Assert.DoesNotContain("i386 r=", i386.Stdout);
        Assert.Contains(i386.Exit.Signal, new int?[] { 31, 11 });
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Workload_cannot_signal_the_enforcer_even_as_root(bool asRoot)
    {
        using var h = new ConfinementHarness();
        int me = Environment.ProcessId;
        // SIGCONT and signal 0 are harmless should the check ever fail; kill -0 -1 is the broadcast form.
        var run = h.Sh($"kill -CONT {me}; echo rc=$?; kill -0 {me}; echo rc=$?; kill -0 -1; echo rc=$?; kill -0 0; echo rc=$?",
            asRoot ? WorkloadIdentity.Root : null);
        Assert.Equal(4, run.Stdout.Split("rc=1").Length - 1);
        Assert.Equal(4, h.Sink.Reports.Count);
        Assert.All(h.Sink.Reports, r => Assert.Equal((ViolationOp.EscapeSyscall, "kill"), (r.Op, r.Target)));
        // prlimit64 on another process (here only reading the limit) is refused the same way.
        var prlimit = h.Python($"import resource\ntry:\n    resource.prlimit({me}, resource.RLIMIT_CORE)\nexcept OSError as e:\n    print('errno', e.errno)",
            asRoot ? WorkloadIdentity.Root : null);
        Assert.Contains("errno 1", prlimit.Stdout);
        Assert.Equal("prlimit64", h.Sink.Reports.Last().Target);
    }

    [Fact]
    public void Workload_signals_its_own_processes()
    {
        using var h = new ConfinementHarness();
        var run = h.Sh("sleep 30 & kill $!; wait $!; echo rc=$?; kill -0 $$; echo self=$?");
        Assert.Contains("rc=143\n", run.Stdout);
        Assert.Contains("self=0\n", run.Stdout);
        Assert.Contains("ESRCH", Errno.Name(3));
        Assert.Contains("No such process", h.Sh("kill -0 2147483; echo rc=$?").Stderr); // a missing pid is ESRCH, no violation
        Assert.Empty(h.Sink.Reports);
    }

    [Fact]
    public async Task Guard_kills_and_removes_the_workload_cgroups_when_the_enforcer_goes()
    {
        using var h = new ConfinementHarness();
        string parent = Path.Combine(h.Mount, "mis", $"test-conf-guard-{Environment.ProcessId}");
        string child = Path.Combine(parent, "work");
        Directory.CreateDirectory(child);
        try
        {
            using var guard = CgroupGuard.Start(parent);
            using var workload = h.Launcher.Launch(new LaunchSpec { CgroupPath = child, Command = ["sh", "-c", "sleep 1000 & sleep 1000"] });
            using var supervisor = SeccompSupervisor.Start(workload, h.Decider, h.Sink, h.Log.Enqueue);
            workload.Go();
            WaitUntil(() => File.ReadAllText(Path.Combine(child, "cgroup.procs")).Split('\n', StringSplitOptions.RemoveEmptyEntries).Length >= 2);
            Assert.Null(workload.WaitForExit(TimeSpan.FromMilliseconds(200)));

            // The enforcer "dies": the guard's stdin reaches EOF.
            Assert.Equal(0, guard.Release(TimeSpan.FromSeconds(20)));
            Assert.Equal(new WorkloadExit(null, 9), workload.WaitForExit(TimeSpan.FromSeconds(10)));
            Assert.False(Directory.Exists(child));
            Assert.False(Directory.Exists(parent)); // the enforcer's own directory goes too
            await supervisor.Completion.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken); // ends with its workload
        }
        finally
        {
            ConfinementHarness.RemoveCgroup(child);
            ConfinementHarness.RemoveCgroup(parent);
        }
    }

    [Fact]
    public void Overhead_of_an_allowed_open_is_measured()
    {
        using var h = new ConfinementHarness();
        string bench = h.Compile("bench_open");
        const string n = "10000";
        string bare = RunBare(bench, h.Allowed, n);
        var confined = h.Run([bench, h.Allowed, n]);
        Assert.Equal(0, confined.Exit.ExitCode);
        output.WriteLine($"unconfined: {bare}");
        output.WriteLine($"confined:   {confined.Stdout.Trim()}");
        double perOpen = double.Parse(confined.Stdout.Split(' ')[0].Split('=')[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(perOpen < 1_000_000, $"an allowed open took {perOpen} ns under the supervisor");
    }

    private static string RunBare(string bench, string file, string n)
    {
        var psi = new ProcessStartInfo(bench, [file, n]) { RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        string text = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        return text;
    }

    private static void WaitUntil(Func<bool> condition)
    {
        for (int i = 0; i < 500 && !condition(); i++)
            Thread.Sleep(10);
        Assert.True(condition());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Sockets_of_families_no_rule_decides_are_refused_and_counted(bool asRoot)
    {
        // AF_VSOCK reaches the hypervisor, past every network rule; IP, Unix and netlink stay.
        using var h = new ConfinementHarness();
        var run = h.Python("""
            import socket
            for name, family, kind in [("vsock", 40, socket.SOCK_STREAM), ("vsock-pair", 40, socket.SOCK_STREAM),
                                       ("inet", socket.AF_INET, socket.SOCK_STREAM), ("unix", socket.AF_UNIX, socket.SOCK_STREAM),
                                       ("netlink", socket.AF_NETLINK, socket.SOCK_RAW)]:
                try:
                    if name.endswith("-pair"):
                        socket.socketpair(family, kind)
                    else:
                        socket.socket(family, kind).close()
                    print(name, "ok", flush=True)
                except OSError as e:
                    print(name, "errno=%d" % e.errno, flush=True)
            """, asRoot ? WorkloadIdentity.Root : null);
        Assert.Contains("vsock errno=1\n", run.Stdout);
        Assert.Contains("vsock-pair errno=1\n", run.Stdout);
        Assert.Contains("inet ok\n", run.Stdout);
        Assert.Contains("unix ok\n", run.Stdout);
        Assert.Contains("netlink ok\n", run.Stdout);
        Assert.Equal(["socket", "socketpair"], h.Sink.Reports.Select(r => r.Target).ToArray());
        Assert.All(h.Sink.Reports, r => Assert.Equal(ViolationOp.EscapeSyscall, r.Op));
    }
}
