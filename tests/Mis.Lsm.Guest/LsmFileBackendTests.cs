using Mis.Enforcer.Confinement;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;
using Mis.Enforcer.Session;

namespace Mis.Lsm.Guest;

/// <summary>
/// The in-kernel file backend on a kernel that allows BPF LSM: chosen by default here, and held to
/// the seccomp backend's decisions workload for workload — exit status and output, violation
/// count, the violations' operations and targets, and the DEFCON trajectory. Runs only inside
/// the test VM (tests/Mis.Lsm.Tests boots it).
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class LsmFileBackendTests(LsmFileBackendTests.Backends backends) : IClassFixture<LsmFileBackendTests.Backends>
{
    private const string Dir = "/tmp/mis-lsm";

    /// <summary>
    /// One session per backend for every case, each with the policy installed: opening one
    /// loads and verifies the BPF object, which takes seconds in the emulated VM.
    /// </summary>
    public sealed class Backends : IDisposable
    {
        private readonly Dictionary<FileBackend, (EnforcementSession Session, PolicySlot Policy)> _open = [];

        public Backends()
        {
            InTheVm.Require();
            MakeFiles();
            foreach (var backend in new[] { FileBackend.Seccomp, FileBackend.Lsm })
            {
                var session = EnforcementSession.Open(new SessionOptions { FileBackend = backend });
                _open[backend] = (session, session.Install(Policy()));
            }
        }

        internal (EnforcementSession Session, PolicySlot Policy) this[FileBackend backend] => _open[backend];

        public void Dispose()
        {
            foreach (var (session, policy) in _open.Values)
            {
                policy.Dispose();
                session.Dispose();
            }
            if (Directory.Exists(Dir))
                Directory.Delete(Dir, recursive: true);
        }
    }

    private static void MakeFiles()
    {
        // World-readable files, so that only the policy refuses: a file the workload could not
        // open anyway is refused by the kernel's permission check before any LSM hook runs.
        Directory.CreateDirectory($"{Dir}/secret/empty");
        Directory.CreateDirectory($"{Dir}/allowed");
        foreach (string file in Protected.Concat(["traced.txt", "plain.txt", "read-only-rule.txt", "allowed/c.txt"]))
        {
            File.WriteAllText($"{Dir}/{file}", file + "\n");
            File.SetUnixFileMode($"{Dir}/{file}", (UnixFileMode)0b110_110_110);
        }
        foreach (string dir in new[] { Dir, $"{Dir}/secret", $"{Dir}/secret/empty", $"{Dir}/allowed" })
            File.SetUnixFileMode(dir, (UnixFileMode)0b111_111_111);
        Relink($"{Dir}/exact.txt", $"{Dir}/hard-exact");
        Relink($"{Dir}/secret/b.txt", $"{Dir}/hard-b");
        Relink($"{Dir}/secret/d.txt", $"{Dir}/hard-d"); // b and d: the cases share the sessions, and what one follows stays followed
        File.Delete($"{Dir}/sym-a");
        File.CreateSymbolicLink($"{Dir}/sym-a", $"{Dir}/secret/a.txt");
        foreach (var (script, text) in new[] { ("reads-exact.sh", $"#!/bin/sh\ncat {Dir}/exact.txt\n"), ("runs-id", "#!/usr/bin/id\n") })
        {
            File.WriteAllText($"{Dir}/{script}", text);
            File.SetUnixFileMode($"{Dir}/{script}", (UnixFileMode)0b111_101_101);
        }
    }

    /// <summary>Files a rule protects from writing: whatever a case does, each must be there, unchanged, afterwards.</summary>
    private static readonly string[] Protected = ["exact.txt", "secret/a.txt", "secret/b.txt", "secret/d.txt"];

    private static void Relink(string target, string link)
    {
        File.Delete(link);
        Host("/bin/ln", target, link);
    }

    /// <summary>Runs a command here, outside any workload, and requires it to succeed.</summary>
    private static void Host(string program, params string[] arguments)
    {
        using var process = System.Diagnostics.Process.Start(program, arguments);
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{program} {string.Join(' ', arguments)} exited with {process.ExitCode}");
    }

    private const int DeniedPort = 9;

    private static FileRule Rule(string pattern, FileOps ops, Verdict action) =>
        new(PathGlob.TryParse(pattern, out var glob, out var error) ? glob! : throw new ArgumentException(error), ops, action, pattern);

    /// <summary>The cases' policy; <paramref name="first"/>, if given, decides before its rules.</summary>
    private static WorkloadPolicy Policy(FileRule? first = null)
    {
        return new WorkloadPolicy("lsm-differential", Verdict.Allow,
        [
            .. first is null ? [] : new[] { first },
            Rule($"{Dir}/allowed/**", FileOps.All, Verdict.Allow),
            Rule($"{Dir}/secret/**", FileOps.Read | FileOps.Write, Verdict.Deny),
            Rule($"{Dir}/exact.txt", FileOps.All, Verdict.Deny),
            Rule($"{Dir}/traced.txt", FileOps.Read, Verdict.Trace),
            Rule($"{Dir}/later.txt", FileOps.Read, Verdict.Deny),
            Rule($"{Dir}/read-only-rule.txt", FileOps.Read, Verdict.Deny),
            Rule("/usr/bin/id", FileOps.Exec, Verdict.Deny),
            Rule("/bin/cat", FileOps.Exec, Verdict.Allow),
            Rule("/usr/bin/cat", FileOps.Exec, Verdict.Allow),
            .. BuiltinPolicy.Rules(),
        ], [new NetRule(System.Net.IPAddress.Loopback, 32, DeniedPort, NetProtocol.Tcp, Verdict.Deny, "no port 9")], []);
    }

    /// <summary>Workloads an agent could use to reach a protected file, and what the ladder does to them.</summary>
    public static TheoryData<string, string> Workloads => new()
    {
        { "builtin deny, as root", "cat /etc/shadow >/dev/null; echo $?" },
        { "glob tree", $"cat {Dir}/secret/a.txt; cat {Dir}/allowed/c.txt; cat {Dir}/plain.txt" },
        { "exact path", $"cat {Dir}/exact.txt; echo $?" },
        { "exact path of a file made during the run", $"echo made >{Dir}/later.txt; cat {Dir}/later.txt; echo $?; rm -f {Dir}/later.txt" },
        { "hard link to an exact path", $"cat {Dir}/hard-exact; echo $?" },
        { "hard link met after its protected name", $"cat {Dir}/secret/b.txt; cat {Dir}/hard-b; echo $?" },
        { "hard link met before its protected name", $"cat {Dir}/hard-d; cat {Dir}/secret/d.txt; cat {Dir}/hard-d; echo $?" },
        { "symlink", $"cat {Dir}/sym-a; echo $?" },
        { "/proc/self/root", $"cat /proc/self/root{Dir}/exact.txt; echo $?" },
        { "relative path", $"cd {Dir}/secret && cat ./a.txt ../exact.txt; echo $?" },
        { "open for writing without creating", $"dd if=/dev/null of={Dir}/exact.txt conv=notrunc,nocreat 2>/dev/null; echo $?" },
        { "trace rule", $"cat {Dir}/traced.txt" },
        { "exec of a denied binary", "/usr/bin/id; echo $?" },
        { "a script whose program is denied reading", $"{Dir}/reads-exact.sh; echo $?" },
        { "a script whose interpreter is a denied binary", $"{Dir}/runs-id; echo $?" },
        { "a network rule", $"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {DeniedPort}))\" 2>/dev/null; echo $?" },
        { "the ladder to DEFCON 1", "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do cat /etc/shadow >/dev/null 2>&1; done; echo survived" },
        { "exec at DEFCON 3", $"for i in 1 2 3 4 5 6; do cat {Dir}/exact.txt 2>/dev/null; done; /bin/true; echo $?; cat {Dir}/plain.txt" },
        // Changes to the file tree: decided as writes on every name and object they touch.
        { "a file created in a denied tree", $"echo x >{Dir}/secret/new.txt; echo $?; test -e {Dir}/secret/new.txt && echo made" },
        { "creat(2) in a denied tree", $"python3 -c \"import ctypes; print(ctypes.CDLL(None).creat(b'{Dir}/secret/creat.txt', 0o644))\"" },
        { "a file created and written where allowed", $"echo kept >{Dir}/allowed/new.txt; cat {Dir}/allowed/new.txt; rm {Dir}/allowed/new.txt; echo $?" },
        // What a build or git does, where the policy allows it: each must work on both (the
        // supervisor does these itself, with syscalls the kernel here may lack).
        { "everyday changes where allowed", $"cd {Dir}/allowed && mkdir -p t/u && echo x >t/u/f && ln -s f t/u/s && ln t/u/f t/u/h && chmod 600 t/u/f && " +
            "chown 0:0 t/u/f && touch t/u/f && mv t/u/f t/u/g && python3 -c \"import os; os.truncate('t/u/g', 0)\" && rm -r t; echo $?" },
        { "overwriting a protected file", $"echo overwritten >{Dir}/exact.txt; echo $?" },
        { "unlink of a protected file", $"rm -f {Dir}/secret/a.txt; echo $?" },
        { "rmdir in a denied tree", $"rmdir {Dir}/secret/empty; echo $?" },
        { "mkdir in a denied tree", $"mkdir {Dir}/secret/made; echo $?" },
        { "mknod of a fifo in a denied tree", $"mkfifo {Dir}/secret/fifo; echo $?" },
        { "a symlink in a denied tree", $"ln -s /etc/passwd {Dir}/secret/sym; echo $?" },
        { "a hard link to a protected file", $"ln {Dir}/secret/a.txt {Dir}/link-a; echo $?; cat {Dir}/link-a; echo $?" },
        { "a hard link made to a file a rule protects from reading only", $"ln {Dir}/read-only-rule.txt {Dir}/ro-link; echo $?; cat {Dir}/ro-link; echo $?; rm -f {Dir}/ro-link" },
        { "chmod of a protected file", $"chmod 600 {Dir}/exact.txt; echo $?" },
        { "chown of a protected file", $"chown 0:0 {Dir}/secret/a.txt; echo $?" },
        { "truncate(2) of a protected file", $"python3 -c \"import os; os.truncate('{Dir}/exact.txt', 0)\" 2>/dev/null; echo $?" },
        { "ftruncate of a file opened where allowed", $"python3 -c \"import os; fd = os.open('{Dir}/allowed/c.txt', os.O_RDWR); os.ftruncate(fd, 14); print(os.read(fd, 100))\"" },
        // /proc: another cgroup's process (pid 1 here) is out of reach, the workload's own is not.
        { "another cgroup's process memory", "cat /proc/1/mem >/dev/null 2>&1; echo $?" },
        { "a write to another cgroup's process's /proc entry", "echo 0 >/proc/1/oom_score_adj; echo $?" },
        { "its own /proc entries", "cat /proc/self/comm; echo renamed >/proc/self/comm; echo $?; cat /proc/$$/comm" },
        // Signals: only to the workload's own processes.
        { "a signal to another cgroup's process", "kill -0 1; echo $?" },
        { "a signal within the workload", "sleep 5 & kill $!; wait $!; echo $?" },
        { "a signal to a process group (the supervisor decides it on both)", "kill -0 -1; echo $?" },
        { "openat2 (the supervisor decides it on both)", $"python3 -c \"{Openat2} print(openat2(b'{Dir}/secret/a.txt'), openat2(b'{Dir}/plain.txt') >= 0)\"" },
        { "rename of a protected file (the supervisor decides it on both)", $"mv {Dir}/secret/b.txt {Dir}/moved; echo $?" },
    };

    /// <summary>openat2(AT_FDCWD, path, {flags=O_RDONLY}) through ctypes: the fd, or -errno.</summary>
    private const string Openat2 =
        "import ctypes; libc = ctypes.CDLL(None, use_errno=True); how = (ctypes.c_uint64 * 3)(0, 0, 0); " +
        "openat2 = lambda p: (lambda fd: fd if fd >= 0 else -ctypes.get_errno())(libc.syscall(437, -100, p, how, 24));";

    [Fact]
    public void This_kernel_gets_the_LSM_backend_by_default() =>
        Assert.Equal(FileBackend.Lsm, FileDenyPoints.For(null).Backend);

    [Theory]
    [MemberData(nameof(Workloads))]
    public void Both_backends_decide_alike(string name, string script)
    {
        var seccomp = Run(FileBackend.Seccomp, script);
        var lsm = Run(FileBackend.Lsm, script);
        Assert.Equal(FileBackend.Lsm, lsm.Backend);
        Assert.Equal(seccomp.Exit, lsm.Exit);
        Assert.Equal(seccomp.Output, lsm.Output);
        Assert.Equal(seccomp.Violations, lsm.Violations);
        Assert.Equal(seccomp.Denials, lsm.Denials);
        Assert.Equal(seccomp.Traces, lsm.Traces);
        Assert.Equal(seccomp.Trajectory, lsm.Trajectory);
        // Each decision is reported by the deny point that made it: network rules by the cgroup hooks on both.
        static bool Network(ViolationOp op) => op is ViolationOp.Connect or ViolationOp.Send;
        Assert.All(seccomp.DecidedBy, d => Assert.Equal(Network(d.Op) ? MisDecidedBy.Hook : MisDecidedBy.Supervisor, d.By));
        bool supervisorStill = name.Contains("the supervisor decides it");
        Assert.All(lsm.DecidedBy, d => Assert.Equal(Network(d.Op) ? MisDecidedBy.Hook : supervisorStill ? MisDecidedBy.Supervisor : MisDecidedBy.Lsm, d.By));
        foreach (string file in Protected)
            Assert.True(File.Exists($"{Dir}/{file}") && File.ReadAllText($"{Dir}/{file}") == file + "\n", $"{name}: {file} was changed");
        // The kernel decided the opens itself: the supervisor was asked about far fewer syscalls.
        Assert.True(lsm.Notifications < seccomp.Notifications, $"{name}: {lsm.Notifications} notifications under LSM, {seccomp.Notifications} under seccomp");
    }

    /// <summary>
    /// One thread flips a symlink between an allowed file and a protected one while another opens
    /// it: a decision made on one file and an open of another would let the protected content
    /// through. The reader stops at its third denial.
    /// </summary>
    [Theory]
    [InlineData(FileBackend.Lsm)]
    [InlineData(FileBackend.Seccomp)]
    public void A_path_rewritten_while_it_is_opened_never_opens_the_protected_file(FileBackend backend)
    {
        string script = $$"""
            import os, threading, time
            d = '{{Dir}}'
            done = False
            flips = {}
            def flip():
                while not done:
                    for target in ('allowed/c.txt', 'secret/a.txt'):
                        try:
                            os.symlink(f'{d}/{target}', f'{d}/race.tmp')
                            os.replace(f'{d}/race.tmp', f'{d}/race')
                            flips['done'] = flips.get('done', 0) + 1
                        except OSError as e:
                            flips[e.__class__.__name__] = flips.get(e.__class__.__name__, 0) + 1
            threading.Thread(target=flip, daemon=True).start()
            denied = leaked = 0
            others = {}
            # Until the race was met three times (or a minute passed): opens decided in the
            # kernel are quick, the flips' renames go through the supervisor.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    with open(f'{d}/race') as f:
                        leaked += f.read() == 'secret/a.txt\n'
                except PermissionError:
                    denied += 1
                    if denied == 3:
                        break
                except OSError as e:
                    others[e.__class__.__name__] = others.get(e.__class__.__name__, 0) + 1
            done = True
            print('denied', denied, 'leaked', leaked, *([] if denied == 3 else ['other errors', others, 'flips', flips]))
            """;
        File.WriteAllText($"{Dir}/race.py", script);
        var outcome = Run(backend, $"python3 {Dir}/race.py; rm -f {Dir}/race {Dir}/race.tmp");
        Assert.Equal("denied 3 leaked 0\n", outcome.Output);
    }

    /// <summary>
    /// A runtime rule (the control plane's AddRule) comes before the policy's own rules, in the
    /// kernel's tables as in the supervisor, and its removal reaches both.
    /// </summary>
    [Theory]
    [InlineData(FileBackend.Lsm)]
    [InlineData(FileBackend.Seccomp)]
    public void A_runtime_rule_decides_before_the_policy_until_it_is_removed(FileBackend backend)
    {
        var (session, _) = backends[backend];
        string file = $"{Dir}/plain.txt";
        var identity = Mis.Native.FileIdentity.Of(file)!.Value;
        session.SetRuntimeRules([new InodeRule(identity.Device, identity.Inode, 0, Verdict.Deny, null, "runtime rule")]);
        Outcome denied;
        try
        {
            denied = Run(backend, $"cat {file}; echo $?");
        }
        finally
        {
            session.SetRuntimeRules([]);
        }
        Assert.Equal(("1\n", 1UL), (denied.Output, denied.Violations));
        Assert.Equal("plain.txt\n", Run(backend, $"cat {file}").Output);
    }

    /// <summary>
    /// Under the LSM backend the launcher's filter leaves directory opens to the kernel (a test of
    /// glibc's __O_TMPFILE, which includes O_DIRECTORY, once sent every one to the supervisor) and
    /// still sends an O_TMPFILE open, which no hook sees with a name.
    /// </summary>
    [Fact]
    public void Under_the_LSM_backend_directory_opens_stay_in_the_kernel_and_O_TMPFILE_goes_to_the_supervisor()
    {
        string Python(int directories, bool tmpfile) =>
            $"python3 -c \"import os; [os.close(os.open('{Dir}/allowed', os.O_RDONLY | os.O_DIRECTORY)) for _ in range({directories})]; " +
            (tmpfile ? $"os.close(os.open('{Dir}/allowed', os.O_TMPFILE | os.O_RDWR, 0o600)); " : "") + "print('ok')\"";
        var none = Run(FileBackend.Lsm, Python(0, tmpfile: false));
        var directories = Run(FileBackend.Lsm, Python(100, tmpfile: false));
        var tmpfile = Run(FileBackend.Lsm, Python(0, tmpfile: true));
        Assert.Equal(["ok\n", "ok\n", "ok\n"], new[] { none.Output, directories.Output, tmpfile.Output });
        Assert.Equal(none.Notifications, directories.Notifications);
        Assert.Equal(none.Notifications + 1, tmpfile.Notifications);
    }

    /// <summary>
    /// The kernel remembers what a policy's path rules say of each path it met (mis_path_rules):
    /// a reload that changes them decides a path met before it by the new rules at once, and a
    /// reload back by the old ones, on both backends.
    /// </summary>
    [Theory]
    [InlineData(FileBackend.Lsm)]
    [InlineData(FileBackend.Seccomp)]
    public void A_path_met_before_a_reload_is_decided_by_the_rules_in_force(FileBackend backend)
    {
        var (session, _) = backends[backend];
        using var slot = session.Install(Policy());
        Assert.Equal(backend == FileBackend.Lsm, slot.InKernel);
        string read = $"cat {Dir}/plain.txt; cat {Dir}/plain.txt; echo $?";
        var before = Run(backend, read, slot);
        slot.Replace(Policy(first: Rule($"{Dir}/pla*.txt", FileOps.Read, Verdict.Deny)));
        var during = Run(backend, read, slot);
        slot.Replace(Policy());
        var after = Run(backend, read, slot);
        Assert.Equal(("plain.txt\nplain.txt\n0\n", 0UL), (before.Output, before.Violations));
        Assert.Equal(("1\n", 2UL, $"FileRead {Dir}/plain.txt\nFileRead {Dir}/plain.txt"), (during.Output, during.Violations, during.Denials));
        Assert.Equal(("plain.txt\nplain.txt\n0\n", 0UL), (after.Output, after.Violations));
        Assert.Equal(backend, during.Backend);
    }

    /// <summary>
    /// What the kernel keeps on an opened file's inode (mis_open_memo) answers only for the name it
    /// was kept for. Between two runs that open the same two files, something outside the workload
    /// moves one's mount and then the other's directory into the protected tree: the dentries and
    /// the mount stay the same objects, only their paths change, and each open after the move is
    /// decided by the new path. The mount first, since a rename makes every memo stale by itself;
    /// each change is the only one since its file's last open.
    /// </summary>
    [Theory]
    [InlineData(FileBackend.Lsm)]
    [InlineData(FileBackend.Seccomp)]
    public void A_file_moved_into_a_protected_tree_after_it_was_opened_is_decided_by_its_new_path(FileBackend backend)
    {
        string source = $"{Dir}/mount-source-{backend}", mounted = $"{Dir}/mounted-{backend}", movedMount = $"{Dir}/secret/mounted-{backend}";
        string moving = $"{Dir}/moving-{backend}", moved = $"{Dir}/secret/moving-{backend}";
        foreach (string dir in new[] { source, mounted, movedMount, moving })
        {
            Directory.CreateDirectory(dir);
            File.SetUnixFileMode(dir, (UnixFileMode)0b111_111_111);
        }
        File.WriteAllText($"{source}/g.txt", "g\n");
        File.WriteAllText($"{moving}/f.txt", "f\n");
        Host("/bin/mount", "--bind", source, mounted);
        string mountNow = mounted;
        try
        {
            string both = $"cat {moving}/f.txt {mounted}/g.txt";
            var before = Run(backend, $"{both}; {both}");
            Host("/bin/mount", "--move", mounted, movedMount);
            mountNow = movedMount;
            // f.txt again, so that its memo is newer than the mount change.
            var afterMount = Run(backend, $"cat {movedMount}/g.txt; echo $?; cat {moving}/f.txt");
            Directory.Move(moving, moved);
            var afterRename = Run(backend, $"cat {moved}/f.txt; echo $?");
            Assert.Equal(("f\ng\nf\ng\n", 0UL), (before.Output, before.Violations));
            Assert.Equal(("1\nf\n", 1UL, $"FileRead {movedMount}/g.txt"), (afterMount.Output, afterMount.Violations, afterMount.Denials));
            Assert.Equal(("1\n", 1UL, $"FileRead {moved}/f.txt"), (afterRename.Output, afterRename.Violations, afterRename.Denials));
        }
        finally
        {
            Host("/bin/umount", mountNow);
            foreach (string dir in new[] { source, mounted, movedMount, moving, moved })
                if (Directory.Exists(dir))
                    Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// A reload to a policy the kernel cannot hold (more file rules than its tables) while a
    /// workload it decides runs would leave that workload on the old rules: refused, with why;
    /// once the workload has ended, the new policy is put in force and decided by the supervisor.
    /// </summary>
    [Fact]
    public void A_policy_the_kernel_cannot_hold_is_not_put_in_force_while_the_kernel_decides_a_running_workload()
    {
        var (session, _) = backends[FileBackend.Lsm];
        using var slot = session.Install(Policy());
        Assert.True(slot.InKernel);
        var inForce = slot.Policy;
        var tooLarge = new WorkloadPolicy("too-large", Verdict.Allow,
            Enumerable.Range(0, 300).Select(i => Rule($"{Dir}/rule-{i}", FileOps.Read, Verdict.Deny)).ToList(), [], []);
        using (var workload = session.Launch(new EnforcedWorkloadSpec { Command = ["/bin/sleep", "60"], Policy = slot, Identity = WorkloadIdentity.Root }))
        {
            Assert.Equal(FileBackend.Lsm, workload.FileBackend);
            var refused = Assert.Throws<NotSupportedException>(() => slot.Replace(tooLarge));
            Assert.Contains("1 running workload(s)", refused.Message);
            Assert.Contains("300 file rules", refused.Message);
            Assert.Same(inForce, slot.Policy);
            Assert.True(slot.InKernel);
            workload.Finish();
        }
        slot.Replace(tooLarge);
        Assert.Same(tooLarge, slot.Policy);
        Assert.False(slot.InKernel);
    }

    private sealed record Outcome(FileBackend Backend, string Exit, string Output, ulong Violations, string Denials, string Traces, string Trajectory,
        long Notifications, IReadOnlyList<(ViolationOp Op, MisDecidedBy By)> DecidedBy);

    private Outcome Run(FileBackend backend, string script, PolicySlot? slot = null)
    {
        var events = new List<KernelEvent>();
        string output = Path.Combine(Path.GetTempPath(), $"mis-lsm-out-{Guid.NewGuid():N}");
        var (session, policy) = backends[backend];
        policy = slot ?? policy;
        string exit;
        WorkloadTeardown end;
        FileBackend decidedBy;
        long notifications;
        using (var stdout = File.OpenHandle(output, FileMode.Create, FileAccess.Write))
        using (var workload = session.Launch(new EnforcedWorkloadSpec
        {
            Command = ["/bin/sh", "-c", script],
            Policy = policy,
            Identity = WorkloadIdentity.Root,
            Stdout = stdout,
            OnEvent = e => { lock (events) events.Add(e); },
        }))
        {
            // Bounded: a workload that never ends fails its case, with what it printed, instead of
            // holding the whole VM run until its timeout.
            var exited = workload.Wait(TimeSpan.FromMinutes(3));
            if (exited is null)
            {
                workload.Kill();
                workload.Wait();
                Assert.Fail($"{backend}: `{script}` still ran after 3 minutes (killed); its output: {File.ReadAllText(output)}");
            }
            exit = exited.ToString();
            end = workload.Finish();
            decidedBy = workload.FileBackend;
            notifications = workload.Decisions.Notifications;
        }
        string text = File.ReadAllText(output);
        File.Delete(output);
        lock (events)
        {
            string Describe(IEnumerable<KernelEvent> list) => string.Join("\n", list.Select(e => $"{e.Op} {e.Target}"));
            return new Outcome(decidedBy, exit, text, end.State?.Violations ?? 0,
                Describe(events.Where(e => e.Type == KernelEventType.Violation)),
                Describe(events.Where(e => e.Type == KernelEventType.Trace)),
                string.Join(" ", events.Where(e => e.Type == KernelEventType.Defcon).Select(e => $"{e.PrevDefcon}>{e.Defcon}")),
                notifications,
                events.Where(e => e.Type is KernelEventType.Violation or KernelEventType.Trace && e.Op is not null)
                    .Select(e => (e.Op!.Value, (MisDecidedBy)e.Value)).ToList());
        }
    }
}
