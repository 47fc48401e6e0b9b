using Mis.Enforcer.Confinement;
using Mis.Enforcer.Policy;
using Mis.Testing;

namespace Mis.Enforcer.Tests;

/// <summary>File decisions: on what is actually opened, whatever name reached it, without a TOCTOU window.</summary>
public sealed class ConfinementFileTests(ITestOutputHelper output)
{
    [Fact]
    public void Allowed_file_is_read_normally()
    {
        using var h = new ConfinementHarness();
        var run = h.Run(["cat", h.Allowed]);
        Assert.Equal(0, run.Exit.ExitCode);
        Assert.Equal("hello from the allowed file\n", run.Stdout);
        Assert.Empty(h.Sink.Reports);
    }

    [Fact]
    public void Denied_file_fails_with_EPERM_no_byte_leaks_and_each_attempt_is_one_violation()
    {
        using var h = new ConfinementHarness();
        var run = h.Sh($"cat {h.Secret}; echo rc=$?; cat {h.Secret}; echo rc=$?; cat /etc/shadow; echo rc=$?");
        Assert.DoesNotContain(ConfinementHarness.SecretMarker, run.Stdout);
        Assert.Equal(3, run.Stdout.Split("rc=1").Length - 1);
        Assert.Equal(3, run.Stderr.Split("Operation not permitted").Length - 1);
        Assert.Equal(3, h.Sink.Reports.Count);
        Assert.Equal(2, h.Sink.Reports.Count(r => r.Target == h.Secret && r.Op == ViolationOp.FileRead));
        Assert.Single(h.Sink.Reports, r => r.Target == "/etc/shadow");
        Assert.All(h.Sink.Reports, r => Assert.True(r.Pid > 0 && r.Tid > 0 && r.CgroupId != 0));
    }

    [Fact]
    public void Memory_devices_opened_before_their_decision_are_still_denied_and_counted()
    {
        // /dev/urandom, /dev/null ... are opened in the resolution's credential scope, before the
        // decision (nothing happens when they are opened): a deny must still refuse and count.
        using var h = new ConfinementHarness();
        h.Decider.DeniedFiles.Add(FakeDecider.IdOf("/dev/urandom"));
        h.Decider.DeniedWritePrefixes.Add("/dev/null");
        var run = h.Sh("head -c 4 /dev/urandom | wc -c; echo x > /dev/null; echo rc=$?; head -c 3 /dev/zero | wc -c; cat /dev/null; echo rc=$?");
        Assert.Equal("0\nrc=2\n3\nrc=0\n", run.Stdout.Replace(" ", ""));
        Assert.Equal(2, h.Sink.Reports.Count);
        Assert.Single(h.Sink.Reports, r => r.Target == "/dev/urandom" && r.Op == ViolationOp.FileRead);
        Assert.Single(h.Sink.Reports, r => r.Target == "/dev/null" && r.Op == ViolationOp.FileWrite);
    }

    [Theory]
    [InlineData("symlink")]
    [InlineData("hardlink")]
    [InlineData("proc-self-root")]
    [InlineData("relative-after-chdir")]
    [InlineData("dot-dot")]
    [InlineData("symlinked-directory")]
    [InlineData("dev-fd-of-a-denied-open")]
    [InlineData("proc-self-cwd")]
    public void Every_other_name_of_the_denied_file_is_denied_too(string alias)
    {
        using var h = new ConfinementHarness();
        string link = Path.Combine(h.Dir, "link");
        string script = alias switch
        {
            "symlink" => Setup(() => File.CreateSymbolicLink(link, h.Secret), $"cat {link}"),
            "hardlink" => Setup(() => Ln(h.Secret, link), $"cat {link}"),
            "proc-self-root" => $"cat /proc/self/root{h.Secret}",
            "relative-after-chdir" => $"cd {h.Dir} && cat ./secret.txt",
            "dot-dot" => $"cat {h.Writable}/../secret.txt",
            "symlinked-directory" => Setup(() => File.CreateSymbolicLink(link, h.Dir), $"cat {link}/secret.txt"),
            "dev-fd-of-a-denied-open" => $"cat /dev/fd/3 3<{h.Secret}",
            "proc-self-cwd" => $"cd {h.Dir} && cat /proc/self/cwd/secret.txt",
            _ => throw new ArgumentOutOfRangeException(nameof(alias)),
        };
        var run = h.Sh(script);
        Assert.DoesNotContain(ConfinementHarness.SecretMarker, run.Stdout);
        Assert.NotEqual(0, run.Exit.ExitCode);
        Assert.Single(h.Sink.Reports);
        // The decision is on the file actually opened: its canonical path (a hard link is a name of its own; the inode is the secret's).
        Assert.Equal(alias == "hardlink" ? link : h.Secret, h.Sink.Reports.Single().Target);
    }

    [Fact]
    public void Openat2_is_decided_with_its_own_how_struct()
    {
        using var h = new ConfinementHarness();
        string link = Path.Combine(h.Dir, "link");
        File.CreateSymbolicLink(link, h.Allowed);
        // openat2(AT_FDCWD, path, {flags, mode, resolve}, 24) through ctypes.
        string code = $$"""
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            class How(ctypes.Structure):
                _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]
            def openat2(path, resolve=0):
                how = How(0, 0, resolve)
                fd = libc.syscall(437, -100, path.encode(), ctypes.byref(how), ctypes.sizeof(how))
                if fd < 0:
                    return "errno=%d" % ctypes.get_errno()
                data = os.read(fd, 100).decode()
                os.close(fd)
                return "read=" + data.split()[0]
            print("secret", openat2("{{h.Secret}}"))
            print("allowed", openat2("{{h.Allowed}}"))
            print("nosymlinks", openat2("{{link}}", 4))
            print("symlink", openat2("{{link}}"))
            """;
        var run = h.Python(code);
        Assert.Contains("secret errno=1\n", run.Stdout);
        Assert.Contains("allowed read=hello\n", run.Stdout);
        Assert.Contains("nosymlinks errno=40\n", run.Stdout); // RESOLVE_NO_SYMLINKS kept: ELOOP, as the kernel says
        Assert.Contains("symlink read=hello\n", run.Stdout);
        Assert.Single(h.Sink.Reports);
    }

    [Fact]
    public void Open_semantics_match_the_kernels_without_a_supervisor()
    {
        // Differential: the same probes as nobody, once unconfined (setpriv) and once confined;
        // every answer (errno, cloexec, fd type) must be identical. Nothing here is policy-denied.
        using var h = new ConfinementHarness();
        string link = Path.Combine(h.Dir, "link");
        File.CreateSymbolicLink(link, h.Allowed);
        File.CreateSymbolicLink(Path.Combine(h.Dir, "dangling"), Path.Combine(h.Writable, "made-through-dangling"));
        // Symlinks the kernel may follow for the supervisor (SeccompSupervisor's second try), and
        // one into /proc/self, which it must not: "self" would be the enforcer.
        Directory.CreateDirectory(Path.Combine(h.Dir, "sub"));
        File.CreateSymbolicLink(Path.Combine(h.Dir, "sublink"), "sub");
        File.CreateSymbolicLink(Path.Combine(h.Dir, "selfstatus"), "/proc/self/status");
        string script = $$"""
            import ctypes, errno, os, fcntl
            libc = ctypes.CDLL(None, use_errno=True)
            def t(name, flags, path, mode=0o644):
                fd = libc.open(path.encode(), flags, mode)
                if fd < 0:
                    print(name, errno.errorcode[ctypes.get_errno()]); return
                st = os.fstat(fd)
                print(name, "ok", "cloexec=%d" % (fcntl.fcntl(fd, fcntl.F_GETFD) & 1), "fl=%o" % (fcntl.fcntl(fd, fcntl.F_GETFL) & ~0o100000), oct(st.st_mode))
                os.close(fd)
            t("read", os.O_RDONLY, "{{h.Allowed}}")
            t("read-cloexec", os.O_RDONLY | os.O_CLOEXEC, "{{h.Allowed}}")
            t("excl-existing", os.O_CREAT | os.O_EXCL | os.O_WRONLY, "{{h.Allowed}}")
            t("write-readonly-file", os.O_WRONLY, "{{h.Allowed}}")
            t("nofollow-symlink", os.O_RDONLY | os.O_NOFOLLOW, "{{link}}")
            t("opath-nofollow-symlink", os.O_PATH | os.O_NOFOLLOW, "{{link}}")
            t("directory-on-file", os.O_RDONLY | os.O_DIRECTORY, "{{h.Allowed}}")
            t("write-dir", os.O_WRONLY, "{{h.Dir}}")
            t("creat-dir", os.O_RDONLY | os.O_CREAT, "{{h.Dir}}")
            t("creat-directory-flag", os.O_CREAT | os.O_DIRECTORY | os.O_WRONLY, "{{h.Writable}}/x")
            t("tmpfile", os.O_TMPFILE | os.O_WRONLY, "{{h.Writable}}", 0o600)
            t("tmpfile-readonly", os.O_TMPFILE | os.O_RDONLY, "{{h.Writable}}", 0o600)
            t("missing", os.O_RDONLY, "{{h.Dir}}/nope")
            t("notdir", os.O_RDONLY, "{{h.Allowed}}/x")
            t("trailing-slash-file", os.O_RDONLY, "{{h.Allowed}}/")
            t("create-in-readonly-dir", os.O_CREAT | os.O_WRONLY, "{{h.Dir}}/new")
            t("create-through-dangling-symlink", os.O_CREAT | os.O_WRONLY, "{{h.Dir}}/dangling")
            t("append-nonblock", os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | os.O_CREAT, "{{h.Writable}}/appended")
            t("dotdot-past-root", os.O_RDONLY, "/../../etc/hostname")
            t("proc-self-status", os.O_RDONLY, "/proc/self/status")
            t("dev-null-rw", os.O_RDWR, "/dev/null")
            t("noatime-not-owner", os.O_RDONLY | os.O_NOATIME, "{{h.Allowed}}")
            t("name-too-long", os.O_RDONLY, "/" + "a" * 5000)
            t("symlink-loop", os.O_RDONLY, "{{h.Dir}}/loop-a")
            t("fifo-nonblock-write-no-reader", os.O_WRONLY | os.O_NONBLOCK, "{{h.Dir}}/fifo")
            t("fifo-nonblock-read", os.O_RDONLY | os.O_NONBLOCK, "{{h.Dir}}/fifo")
            t("dev-urandom", os.O_RDONLY, "/dev/urandom")
            t("dev-null-creat-trunc", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "/dev/null")
            t("dev-zero-excl", os.O_RDONLY | os.O_CREAT | os.O_EXCL, "/dev/zero")
            t("dotdot-after-symlinked-dir", os.O_RDONLY, "{{h.Dir}}/sublink/../public.txt")
            t("absolute-symlinked-dirs", os.O_RDONLY, "/lib/x86_64-linux-gnu/libc.so.6")
            def whose(name, path):
                fd = libc.open(path.encode(), os.O_RDONLY, 0)
                if fd < 0:
                    print(name, errno.errorcode[ctypes.get_errno()]); return
                pid = [l.split()[1] for l in os.read(fd, 8192).decode().splitlines() if l.startswith("Pid:")]
                os.close(fd)
                print(name, "own" if pid == [str(os.getpid())] else "another process's")
            whose("symlink-to-proc-self", "{{h.Dir}}/selfstatus")
            class How(ctypes.Structure):
                _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]
            def at(name, dirpath, path, resolve=None):
                dfd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY)
                if resolve is None:
                    fd = libc.openat(dfd, path.encode(), os.O_RDONLY)
                else:
                    how = How(os.O_RDONLY, 0, resolve)
                    fd = libc.syscall(437, dfd, path.encode(), ctypes.byref(how), ctypes.sizeof(how))
                print(name, errno.errorcode.get(ctypes.get_errno(), "-") if fd < 0 else "ok " + os.readlink("/proc/self/fd/%d" % fd).replace("/%d/" % os.getpid(), "/SELF/"))
                os.close(dfd)
            at("openat-dirfd", "{{h.Dir}}", "public.txt")
            at("openat-proc-self", "/proc", "self/comm")
            at("openat-proc-dir-thread-self", "/proc", "thread-self/comm")
            at("beneath-escape", "{{h.Dir}}", "../../etc/hostname", 0x08)
            at("beneath-inside", "{{h.Dir}}", "pub/../public.txt", 0x08)
            at("in-root-absolute", "{{h.Dir}}", "/public.txt", 0x10)
            at("no-magiclinks", "/proc/self/fd", "0", 0x02)
            at("no-xdev", "/", "proc/self/comm", 0x01)
            """;
        File.CreateSymbolicLink(Path.Combine(h.Dir, "loop-a"), Path.Combine(h.Dir, "loop-b"));
        File.CreateSymbolicLink(Path.Combine(h.Dir, "loop-b"), Path.Combine(h.Dir, "loop-a"));
        Exec("mkfifo", "-m", "0666", Path.Combine(h.Dir, "fifo"));
        string file = Path.Combine(h.Dir, "probe.py");
        File.WriteAllText(file, script);
        string bare = Bare("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", file);
        foreach (string made in new[] { "made-through-dangling", "appended" })
            File.Delete(Path.Combine(h.Writable, made));
        var confined = h.Run(["/usr/bin/python3", file]);
        output.WriteLine(confined.Stdout);
        Assert.Equal(bare, confined.Stdout);
        Assert.Empty(h.Sink.Reports);
    }

    [Fact]
    public void Racing_thread_never_gets_the_denied_file()
    {
        using var h = new ConfinementHarness();
        string race = h.Compile("race_open");
        var run = h.Run([race, h.Allowed, h.Secret, "5000", ConfinementHarness.SecretMarker]);
        output.WriteLine(run.Stdout);
        Assert.Equal(0, run.Exit.ExitCode);
        var counts = run.Stdout.Trim().Split(' ').Select(kv => kv.Split('=')).ToDictionary(kv => kv[0], kv => int.Parse(kv[1], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(0, counts["denied"]);
        Assert.True(counts["allowed"] > 0, run.Stdout);
        Assert.True(h.Violations(ViolationOp.FileRead) > 0, "the flipper never hit the secret: the race was not exercised");
    }

    [Fact]
    public void A_multi_threaded_workload_gets_more_supervisor_threads_and_they_end_with_it()
    {
        using var h = new ConfinementHarness();
        string threads = h.Compile("threads_open");
        // Four threads opening at once, then one thread opening without a pause for well over
        // SeccompSupervisor.IdleRetireMs: every open wakes every polling supervisor thread, and the
        // extra ones should retire (they are not needed); everything must still be served.
        var run = h.Sh($"{threads} {h.Allowed} 4 2000 && {threads} {h.Allowed} 1 20000");
        output.WriteLine($"{run.Stdout.Trim()}; supervisor threads at most {run.Supervisor.PeakThreads}, {run.Supervisor.IdleRetired} retired idle");
        Assert.Equal(0, run.Exit.ExitCode);
        Assert.Equal("opened=8000 failed=0\nopened=20000 failed=0", run.Stdout.Trim());
        Assert.Empty(h.Sink.Reports);
        Assert.True(run.Supervisor.Ended, "a supervisor thread outlived the workload");
        if (!run.Supervisor.ExtraThreadsAllowed)
        {
            output.WriteLine("this kernel has no synchronous seccomp wake-ups (6.6+): one supervisor thread by design");
            return;
        }
        Assert.True(run.Supervisor.PeakThreads > 1, "four threads opening at once were served by one supervisor thread");
        // Retirement is reported, not asserted. Here 3 of 3 usually retire in the one-thread phase
        // (0 with the old poll-timeout rule), but a phase shorter than the retirement window under
        // load retires none (one CI run; 4,000 opens do it here), and with 80,000 opens on a quiet
        // machine one run kept one extra thread: not understood yet.
    }

    [Fact]
    public void Handing_an_open_over_on_the_supervisors_CPU_leaves_the_workloads_own_CPU_mask_as_it_was()
    {
        // The hand-off holds the opening thread to the supervisor's CPU while it installs the fd
        // (SeccompSupervisor.ReplyFdOnThisCpu); what the thread chose for itself must be what it
        // has after every open, whether or not that choice includes the supervisor's CPU.
        using var h = new ConfinementHarness();
        string code = $$"""
            import os
            cpus = sorted(os.sched_getaffinity(0))
            masks = [set(cpus)] + [{c} for c in cpus]
            for mask in masks:
                os.sched_setaffinity(0, mask)
                for _ in range(200):
                    with open('{{h.Allowed}}') as f:
                        f.read()
                    assert os.sched_getaffinity(0) == mask, (mask, os.sched_getaffinity(0))
            print('ok', len(masks))
            """;
        var run = h.Python(code);
        Assert.True(run.Exit.ExitCode == 0, run.ToString());
        Assert.Equal($"ok {Environment.ProcessorCount + 1}", run.Stdout.Trim());
        Assert.Empty(h.Sink.Reports);
    }

    [Fact]
    public void Self_means_the_workload_through_every_symlink()
    {
        using var h = new ConfinementHarness();
        const string script = "echo via-dev-stdout > /dev/stdout; echo via-proc-self-fd > /proc/self/fd/1; cat /dev/stdin < ";
        // The output pipe is the test's (root's, mode 0600): reopening it through /dev/stdout is the
        // owner's right, so uid 0 (even without capabilities) may...
        var root = h.Sh(script + h.Allowed, WorkloadIdentity.Root);
        Assert.Equal("via-dev-stdout\nvia-proc-self-fd\nhello from the allowed file\n", root.Stdout);
        // ...and nobody may not: EACCES, exactly what the kernel says to nobody without a supervisor.
        var nobody = h.Sh(script + h.Allowed);
        Assert.Equal("hello from the allowed file\n", nobody.Stdout);
        Assert.Equal(2, nobody.Stderr.Split("Permission denied").Length - 1);
        // /proc/mounts is a symlink to self/mounts: the workload's own (same mount namespace).
        Assert.Contains("cgroup2", h.Run(["cat", "/proc/mounts"]).Stdout);
        Assert.Empty(h.Sink.Reports);
    }

    [Fact]
    public void Enforcers_own_proc_entries_are_not_lent_to_the_workload()
    {
        using var h = new ConfinementHarness();
        int me = Environment.ProcessId;
        var run = h.Sh($"cat /proc/{me}/environ; echo rc=$?; ls /proc/{me}/fd/; echo rc=$?; cat /proc/{me}/status | head -1");
        Assert.Contains("rc=1", run.Stdout);
        Assert.Contains("rc=2", run.Stdout); // ls: cannot open directory
        Assert.Contains("Name:", run.Stdout); // what ps reads stays readable
        Assert.Equal(2, h.Sink.Reports.Count);
    }

    [Fact]
    public void Named_fifo_opens_do_not_stall_the_supervisor()
    {
        using var h = new ConfinementHarness();
        var run = h.Sh("mkfifo p && (echo through-the-fifo > p &) && cat p && cat p < /dev/null & sleep 0.2; echo unblocked > p; wait", cwd: h.Writable);
        Assert.Contains("through-the-fifo\n", run.Stdout);
        Assert.Contains("unblocked\n", run.Stdout);
    }

    [Fact]
    public void Create_is_decided_before_the_file_exists_and_made_as_the_workload()
    {
        using var h = new ConfinementHarness();
        string forbidden = Path.Combine(h.Writable, "forbidden-new");
        h.Decider.DeniedWritePrefixes.Add(forbidden);
        var run = h.Sh("echo x > forbidden-new; echo rc=$?; umask 077; echo y > ok-new; echo rc=$?", cwd: h.Writable);
        Assert.Contains("rc=2\nrc=0\n", run.Stdout); // dash: a failed redirection is status 2
        Assert.Contains("Operation not permitted", run.Stderr);
        Assert.False(File.Exists(forbidden));
        var write = Assert.Single(h.Sink.Reports);
        Assert.Equal((ViolationOp.FileWrite, forbidden), (write.Op, write.Target));
        var decided = h.Decider.Seen.First(r => r.Path == forbidden);
        Assert.Equal((0UL, 0UL), (decided.Device, decided.Inode));
        string ok = Path.Combine(h.Writable, "ok-new");
        Assert.Equal("y\n", File.ReadAllText(ok));
        if (OperatingSystem.IsLinux())
            Assert.Equal((UnixFileMode)0x180, File.GetUnixFileMode(ok)); // 0600: the workload's umask 077
        Assert.Equal("65534", Stat(ok, "%u"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Workload_cannot_move_itself_out_of_its_cgroup(bool asRoot)
    {
        using var h = new ConfinementHarness();
        var run = h.Sh($"echo $$ > {h.Mount}/cgroup.procs; echo rc=$?; cat /proc/self/cgroup", asRoot ? WorkloadIdentity.Root : null);
        Assert.Contains("rc=2", run.Stdout);
        Assert.Contains("Operation not permitted", run.Stderr);
        Assert.Contains($"0::{h.Cgroup[h.Mount.Length..]}\n", run.Stdout);
        var write = Assert.Single(h.Sink.Reports);
        Assert.Equal((ViolationOp.FileWrite, $"{h.Mount}/cgroup.procs"), (write.Op, write.Target));
    }

    [Fact]
    public void A_bad_notification_is_answered_and_the_supervisor_carries_on()
    {
        using var h = new ConfinementHarness();
        var run = h.Python("""
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            r = libc.syscall(257, -100, ctypes.c_void_p(16), 0)
            print("bad-pointer", r, ctypes.get_errno())
            r = libc.syscall(257, 12345, b"relative", 0)
            print("bad-dirfd", r, ctypes.get_errno())
            print(open("/proc/self/comm").read().strip())
            """);
        Assert.Contains("bad-pointer -1 14\n", run.Stdout); // EFAULT, as the kernel would
        Assert.Contains("bad-dirfd -1 9\n", run.Stdout); // EBADF
        Assert.Contains("python3\n", run.Stdout);
    }

    private static string Setup(Action action, string script)
    {
        action();
        return script;
    }

    private static void Ln(string target, string link) => Exec("ln", target, link);

    private static string Stat(string path, string format) => Exec("stat", "-c", format, path).Trim();

    private static string Bare(params string[] argv)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(argv[0], argv[1..]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        string text = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return text;
    }

    private static string Exec(params string[] argv)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(argv[0], argv[1..]) { RedirectStandardOutput = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        string text = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return text;
    }
}
