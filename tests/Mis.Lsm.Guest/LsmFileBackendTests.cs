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
        Directory.CreateDirectory($"{Dir}/secret");
        Directory.CreateDirectory($"{Dir}/allowed");
        foreach (string file in new[] { "exact.txt", "traced.txt", "plain.txt", "secret/a.txt", "secret/b.txt", "secret/d.txt", "allowed/c.txt" })
        {
            File.WriteAllText($"{Dir}/{file}", file + "\n");
            File.SetUnixFileMode($"{Dir}/{file}", (UnixFileMode)0b110_110_110);
        }
        foreach (string dir in new[] { Dir, $"{Dir}/secret", $"{Dir}/allowed" })
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

    private static void Relink(string target, string link)
    {
        File.Delete(link);
        using var ln = System.Diagnostics.Process.Start("/bin/ln", [target, link]);
        ln.WaitForExit();
        Assert.Equal(0, ln.ExitCode);
    }

    private const int DeniedPort = 9;

    private static WorkloadPolicy Policy()
    {
        FileRule Rule(string pattern, FileOps ops, Verdict action) =>
            new(PathGlob.TryParse(pattern, out var glob, out var error) ? glob! : throw new ArgumentException(error), ops, action, pattern);
        return new WorkloadPolicy("lsm-differential", Verdict.Allow,
        [
            Rule($"{Dir}/allowed/**", FileOps.All, Verdict.Allow),
            Rule($"{Dir}/secret/**", FileOps.Read | FileOps.Write, Verdict.Deny),
            Rule($"{Dir}/exact.txt", FileOps.All, Verdict.Deny),
            Rule($"{Dir}/traced.txt", FileOps.Read, Verdict.Trace),
            Rule($"{Dir}/later.txt", FileOps.Read, Verdict.Deny),
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
    };

    [Fact]
    public void This_kernel_gets_the_LSM_backend_by_default() =>
        Assert.Equal(FileBackend.Lsm, FileDenyPoints.For(null).Backend);

    [Theory]
    [MemberData(nameof(Workloads))]
    public void Both_backends_decide_alike(string name, string script)
    {
        var seccomp = Run(FileBackend.Seccomp, script);
        var lsm = Run(FileBackend.Lsm, script);
        Assert.Equal(FileBackend.Lsm, lsm.DecidedBy);
        Assert.Equal(seccomp.Exit, lsm.Exit);
        Assert.Equal(seccomp.Output, lsm.Output);
        Assert.Equal(seccomp.Violations, lsm.Violations);
        Assert.Equal(seccomp.Denials, lsm.Denials);
        Assert.Equal(seccomp.Traces, lsm.Traces);
        Assert.Equal(seccomp.Trajectory, lsm.Trajectory);
        // The kernel decided the opens itself: the supervisor was asked about far fewer syscalls.
        Assert.True(lsm.Notifications < seccomp.Notifications, $"{name}: {lsm.Notifications} notifications under LSM, {seccomp.Notifications} under seccomp");
    }

    private sealed record Outcome(FileBackend DecidedBy, string Exit, string Output, ulong Violations, string Denials, string Traces, string Trajectory, long Notifications);

    private Outcome Run(FileBackend backend, string script)
    {
        var events = new List<KernelEvent>();
        string output = Path.Combine(Path.GetTempPath(), $"mis-lsm-out-{Guid.NewGuid():N}");
        var (session, policy) = backends[backend];
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
            exit = workload.Wait().ToString();
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
                notifications);
        }
    }
}
