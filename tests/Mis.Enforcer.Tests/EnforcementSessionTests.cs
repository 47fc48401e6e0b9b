using Mis.Enforcer.Confinement;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;
using Mis.Enforcer.Session;
using Mis.Native;
using Mis.Testing;

namespace Mis.Enforcer.Tests;

/// <summary>The one enforcement session every caller uses: its lifecycle, its policies and the exec deny set they compute.</summary>
[Collection("kernel")]
public sealed class EnforcementSessionTests
{
    private static PathGlob Glob(string pattern) => PathGlob.TryParse(pattern, out var glob, out var error) ? glob! : throw new ArgumentException(error);

    private static EnforcementSession Open(SessionOptions? options = null)
    {
        KernelTest.Require();
        return EnforcementSession.Open(options ?? new SessionOptions());
    }

    [Fact]
    public void The_exec_deny_set_holds_concrete_exec_denials_and_exec_inode_rules_only()
    {
        var identity = FileIdentity.Of("/bin/true")!.Value;
        var policy = new WorkloadPolicy("p", Verdict.Allow,
        [
            new FileRule(Glob("/bin/true"), FileOps.Exec, Verdict.Deny, "exec deny"),
            new FileRule(Glob("/etc/hostname"), FileOps.Read, Verdict.Deny, "read deny: not an exec"),
            new FileRule(Glob("/bin/ls"), FileOps.Exec, Verdict.Allow, "allow"),
            new FileRule(Glob("/opt/*/tool"), FileOps.Exec, Verdict.Deny, "a glob has no inode"),
        ], [],
        [
            new InodeRule(7, 70, 0, Verdict.Deny, null, "any syscall"),
            new InodeRule(7, 71, Syscalls.Execve, Verdict.Deny, null, "execve"),
            new InodeRule(7, 72, Syscalls.Open, Verdict.Deny, null, "open only: not an exec"),
            new InodeRule(7, 73, 0, Verdict.Allow, null, "allow"),
        ]);
        var runtime = new[]
        {
            new InodeRule(8, 80, Syscalls.Execveat, Verdict.Deny, null, "runtime execveat"),
            new InodeRule(8, 81, 0, Verdict.Allow, null, "runtime allow"),
        };
        var set = policy.ExecDenySet(runtime);
        Assert.Equal(new HashSet<(ulong, ulong)> { (identity.Device, identity.Inode), (7, 70), (7, 71), (8, 80) }, set.ToHashSet());
    }

    [Fact]
    public void A_file_a_trace_rule_lets_through_is_opened_and_reported_as_a_trace_event()
    {
        string file = Path.Combine(Path.GetTempPath(), $"mis-traced-{Guid.NewGuid():N}");
        File.WriteAllText(file, "traced\n");
        var seen = new List<KernelEvent>();
        try
        {
            using var session = Open();
            using var policy = session.Install(new WorkloadPolicy("trace", Verdict.Allow,
                [new FileRule(Glob(file), FileOps.Read, Verdict.Trace, "trace it"), .. BuiltinPolicy.Rules()], [], []));
            using var workload = session.Launch(new EnforcedWorkloadSpec
            {
                Command = ["/bin/cat", file],
                Policy = policy,
                OnEvent = e => { lock (seen) seen.Add(e); },
            });
            Assert.Equal(0, workload.Wait().ExitCode);
            var end = workload.Finish();
            Assert.Equal(0UL, end.State!.Violations);
            lock (seen)
            {
                var trace = Assert.Single(seen, e => e.Type == KernelEventType.Trace);
                Assert.Equal((ViolationOp.FileRead, file, Verdict.Trace), (trace.Op!.Value, trace.Target, trace.Decision));
                Assert.Equal(workload.FileBackend == FileBackend.Lsm ? MisDecidedBy.Lsm : MisDecidedBy.Supervisor, (MisDecidedBy)trace.Value);
            }
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void A_workload_runs_in_its_own_cgroup_its_events_arrive_before_finish_returns_and_nothing_is_left()
    {
        var seen = new List<KernelEvent>();
        var all = 0;
        string root;
        using (var session = Open(new SessionOptions { OnEvent = _ => Interlocked.Increment(ref all) }))
        {
            root = session.CgroupRoot;
            using var policy = session.Install(BuiltinPolicy.Create());
            using var workload = session.Launch(new EnforcedWorkloadSpec
            {
                Command = ["/bin/sh", "-c", "cat /etc/shadow; cat /etc/shadow; exit 3"],
                Policy = policy,
                OnEvent = e => { lock (seen) seen.Add(e); },
            });
            Assert.True(Directory.Exists(workload.Cgroup.Path));
            Assert.StartsWith(root + "/", workload.Cgroup.Path);
            Assert.Contains(session.Kernel.Managed, m => m.CgroupId == workload.CgroupId);
            var exit = workload.Wait();
            var end = workload.Finish();
            Assert.Equal(3, exit.ExitCode);
            Assert.Equal(2UL, end.State!.Violations);
            Assert.Empty(end.Faults);
            lock (seen)
                Assert.Equal(2, seen.Count(e => e.Type == KernelEventType.Violation));
            Assert.True(Volatile.Read(ref all) >= 2, "the session's handler sees every event too");
            Assert.False(Directory.Exists(workload.Cgroup.Path), "finished: its cgroup is removed");
            Assert.DoesNotContain(session.Kernel.Managed, m => m.CgroupId == workload.CgroupId);
            Assert.Same(end, workload.Finish());
        }
        Assert.False(Directory.Exists(root), "the session's directory is removed");
    }

    [Fact]
    public void An_unpoliced_workload_is_confined_but_neither_managed_nor_counted()
    {
        using var session = Open();
        using var workload = session.Launch(new EnforcedWorkloadSpec
        {
            Command = ["/bin/sh", "-c", "cat /etc/shadow > /dev/null"],
            Policy = null,
            Identity = WorkloadIdentity.Root,
        });
        Assert.DoesNotContain(session.Kernel.Managed, m => m.CgroupId == workload.CgroupId);
        Assert.Equal(0, workload.Wait().ExitCode);
        Assert.Null(workload.Finish().State);
    }

    [Fact]
    public void Runtime_rules_reach_every_installed_policy_s_exec_deny_set_and_a_cleared_policy_denies_nothing()
    {
        string dir = Directory.CreateTempSubdirectory("mis-session-exec-").FullName;
        try
        {
            string tool = Path.Combine(dir, "tool");
            File.Copy("/bin/true", tool);
            var identity = FileIdentity.Of(tool)!.Value;
            using var session = Open();
            using var first = session.Install(BuiltinPolicy.Create());
            using var second = session.Install(BuiltinPolicy.Create());
            Assert.NotEqual(first.Id, second.Id);

            // A task the supervisor never saw (no approval): only the kernel's deny set stops it.
            int ExecFromOutside(PolicySlot slot)
            {
                using var cgroup = session.Manage("outsider", slot);
                var psi = new System.Diagnostics.ProcessStartInfo("/bin/sh", ["-c", $"read line; exec {tool}"]) { RedirectStandardInput = true };
                using var outsider = System.Diagnostics.Process.Start(psi)!;
                File.WriteAllText(Path.Combine(cgroup.Path, "cgroup.procs"), outsider.Id.ToString());
                outsider.StandardInput.WriteLine("go");
                outsider.StandardInput.Close();
                outsider.WaitForExit();
                return outsider.ExitCode;
            }

            Assert.Equal(0, ExecFromOutside(first));
            session.SetRuntimeRules([new InodeRule(identity.Device, identity.Inode, 0, Verdict.Deny, null, "runtime")]);
            Assert.Equal(137, ExecFromOutside(first));
            Assert.Equal(137, ExecFromOutside(second));
            session.SetRuntimeRules([]);
            Assert.Equal(0, ExecFromOutside(second));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void The_file_deny_point_is_the_one_the_host_offers()
    {
        // This host refuses BPF LSM and has seccomp user notification (mis doctor says the same).
        Assert.Equal(FileBackend.Seccomp, FileDenyPoints.For(null).Backend);
        Assert.Equal(FileBackend.Seccomp, FileDenyPoints.For(FileBackend.Seccomp).Backend);
    }
}
