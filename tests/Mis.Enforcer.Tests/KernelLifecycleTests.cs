using System.Diagnostics;
using System.Text.Json;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;
using Mis.Native;

namespace Mis.Enforcer.Tests;

/// <summary>Kill, learning-mode stream, exec backstop, and leaving nothing behind.</summary>
[Collection("kernel")]
public sealed class KernelLifecycleTests
{
    [Fact]
    public void Reported_violations_reaching_defcon_1_kill_the_whole_cgroup()
    {
        using var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        enforcer.Manage(cgroup.Path, learning: false);
        // Two processes: the kill is for the cgroup, not for the reported task.
        using var first = HeldChild.Start("/bin/sh", "-c", "while :; do sleep 0.05; done");
        using var second = HeldChild.Start("/bin/sleep", "60");
        cgroup.Add(first.Pid);
        cgroup.Add(second.Pid);
        first.Release();
        second.Release();

        ViolationOutcome last = null!;
        for (int i = 0; i < 15; i++)
            last = enforcer.Report(new ViolationReport(cgroup.Id, ViolationOp.EscapeSyscall, first.Pid, first.Pid, "mount"));

        Assert.Equal((2, 1), (last.DefconBefore, last.DefconAfter));
        Assert.Equal(137, first.WaitExit());
        Assert.Equal(137, second.WaitExit());
        Assert.True(KernelTest.Eventually(() => cgroup.Pids.Count == 0));
    }

    [Fact]
    public void Learning_mode_streams_each_syscall_with_its_number()
    {
        using var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        enforcer.Manage(cgroup.Path, learning: true);
        using var child = HeldChild.Start(KernelTest.Python, "-c", "import os\nfor _ in range(100): os.getppid()");
        cgroup.Add(child.Pid);
        child.Release();
        Assert.Equal(0, child.WaitExit());

        const ulong SysGetppid = 110; // x86-64
        // The held shell makes syscalls in the cgroup too (dash reads $PPID once): count Python's.
        static bool FromPython(KernelEvent e) => e.Type == KernelEventType.Syscall && e.Value == SysGetppid && e.Comm == "python3";
        var events = KernelTest.Drain(enforcer, es => es.Count(FromPython) >= 100);
        var getppids = events.Where(FromPython).ToList();
        Assert.Equal(100, getppids.Count);
        Assert.All(events.Where(e => e.Type == KernelEventType.Syscall), e => Assert.Equal(cgroup.Id, e.CgroupId));
        Assert.All(getppids, e => Assert.Equal(child.Pid, e.Pid));
        Assert.True(getppids.Select(e => e.TimestampNs).SequenceEqual(getppids.Select(e => e.TimestampNs).Order()));
        Assert.Equal(0UL, enforcer.RingbufDrops);

        // Out of learning mode the stream stops.
        enforcer.SetLearningMode(cgroup.Id, false);
        using var quiet = HeldChild.Start(KernelTest.Python, "-c", "import os\nfor _ in range(100): os.getppid()");
        cgroup.Add(quiet.Pid);
        quiet.Release();
        Assert.Equal(0, quiet.WaitExit());
        // (The first child's last syscalls may still be in flight: judge the second one's.)
        Assert.DoesNotContain(KernelTest.Drain(enforcer), e => e.Type == KernelEventType.Syscall && e.Pid == quiet.Pid);
    }

    [Fact]
    public void Exec_of_a_denied_inode_is_a_violation_and_a_kill()
    {
        using var enforcer = KernelTest.Open();
        using var cgroup = new ScratchCgroup();
        string dir = Directory.CreateTempSubdirectory("mis-exec-").FullName;
        try
        {
            string forbidden = Path.Combine(dir, "forbidden-true");
            File.Copy("/bin/true", forbidden);
            if (OperatingSystem.IsLinux())
                File.SetUnixFileMode(forbidden, UnixFileMode.UserRead | UnixFileMode.UserExecute);
            var (dev, ino) = StatIds(forbidden);
            enforcer.SetExecDeny(3, [(dev, ino)]);
            enforcer.Manage(cgroup.Path, learning: false, policyId: 3);

            using (var allowed = HeldChild.Start("/bin/true"))
            {
                cgroup.Add(allowed.Pid);
                allowed.Release();
                Assert.Equal(0, allowed.WaitExit());
            }
            using var child = HeldChild.Start(forbidden);
            cgroup.Add(child.Pid);
            child.Release();

            Assert.Equal(137, child.WaitExit());
            Assert.Equal(1UL, enforcer.State(cgroup.Id)!.Violations);
            var events = KernelTest.Drain(enforcer, es => es.Any(e => e.Type == KernelEventType.Violation));
            var violation = Assert.Single(events, e => e.Type == KernelEventType.Violation);
            Assert.Equal(ViolationOp.Exec, violation.Op);
            Assert.Equal(forbidden, violation.Target);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Hooks_attach_per_cgroup_and_dispose_leaves_no_link_and_no_cgroup()
    {
        HashSet<uint> programIds;
        string path;
        KernelEnforcer enforcer = KernelTest.Open();
        try
        {
            using var a = new ScratchCgroup();
            using var b = new ScratchCgroup();
            path = a.Path;
            enforcer.Manage(a.Path, learning: false);
            enforcer.Manage(b.Path, learning: false);
            programIds = OurProgramIds(enforcer);
            var links = LinkedProgramIds().Where(programIds.Contains).ToList();
            // 6 socket hooks per cgroup (sock_create, connect4/6, sendmsg4/6, egress), 2 more
            // where the kernel has the Unix ones, plus sys_enter and sched_process_exec once.
            int perCgroup = enforcer.UnixHooks ? 8 : 6;
            Assert.Equal(2 * perCgroup + 2, links.Count);

            Assert.True(enforcer.Unmanage(a.Id));
            Assert.False(enforcer.Unmanage(a.Id));
            Assert.Equal(perCgroup + 2, LinkedProgramIds().Count(programIds.Contains));
            Assert.True(enforcer.Unmanage(b.Id));
            Assert.DoesNotContain(LinkedProgramIds(), programIds.Contains);
            Assert.False(enforcer.SyscallHookAttached);

            enforcer.Manage(a.Path, learning: false);
            Assert.Equal(perCgroup + 2, LinkedProgramIds().Count(programIds.Contains));
        }
        finally
        {
            enforcer.Dispose();
            enforcer.Dispose(); // idempotent
        }
        Assert.DoesNotContain(LinkedProgramIds(), programIds.Contains);
        Assert.False(Directory.Exists(path));
        Assert.Empty(Directory.GetDirectories(Path.Combine(CgroupV2.FindMount()!, "mis"), $"test-{Environment.ProcessId}-*"));
    }

    private static HashSet<uint> OurProgramIds(KernelEnforcer enforcer)
    {
        var field = typeof(KernelEnforcer).GetField("_object", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic)!;
        var obj = (Mis.Native.Bpf.BpfObject)field.GetValue(enforcer)!;
        return obj.Programs.Select(p => p.Id).Where(id => id != 0).ToHashSet();
    }

    // bpftool -j link show: the program id of every BPF link on the host.
    private static List<uint> LinkedProgramIds()
    {
        var psi = new ProcessStartInfo("bpftool", "-j link show") { RedirectStandardOutput = true, RedirectStandardError = true };
        using var bpftool = Process.Start(psi)!;
        string json = bpftool.StandardOutput.ReadToEnd();
        bpftool.WaitForExit();
        using var doc = JsonDocument.Parse(json.Length == 0 ? "[]" : json);
        return doc.RootElement.EnumerateArray().Select(l => l.GetProperty("prog_id").GetUInt32()).ToList();
    }

    private static (ulong Dev, ulong Ino) StatIds(string path)
    {
        var psi = new ProcessStartInfo("stat", ["-c", "%d %i", path]) { RedirectStandardOutput = true };
        using var stat = Process.Start(psi)!;
        var parts = stat.StandardOutput.ReadToEnd().Trim().Split(' ');
        stat.WaitForExit();
        return (ulong.Parse(parts[0]), ulong.Parse(parts[1]));
    }
}
