using Mis.Enforcer.Cgroups;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Policy;
using Mis.Native;

namespace Mis.Enforcer.Tests;

/// <summary>
/// No amplification (issue 11, class 6): a workload cannot make the enforcer allocate without
/// bound, and a fork storm stays inside a cap. Both identities.
/// </summary>
public sealed class ConfinementAmplificationTests
{
    public static TheoryData<bool> BothIdentities => new() { false, true };

    [Theory]
    [MemberData(nameof(BothIdentities))]
    public void A_thousand_blocking_FIFO_opens_cost_the_enforcer_at_most_MaxWaiting_threads(bool asRoot)
    {
        using var h = new ConfinementHarness();
        const int opens = 1000;
        string script = $$"""
            import os, sys, threading, time
            p = "{{h.Writable}}/fifo-{{asRoot}}"
            os.mkfifo(p, 0o666)
            results = []
            def reader():
                try:
                    os.close(os.open(p, os.O_RDONLY)); results.append("ok")
                except OSError as e:
                    results.append(e.errno)
            threads = [threading.Thread(target=reader) for _ in range({{opens}})]
            for t in threads:
                t.start()
            deadline = time.time() + 30  # until the refused ones are answered: the rest wait in the enforcer
            while len(results) < {{opens - FifoOpens.MaxWaiting}} and time.time() < deadline:
                time.sleep(0.05)
            print("waiting", flush=True)
            sys.stdin.read(1)  # the test counts the enforcer's threads meanwhile
            w = os.open(p, os.O_WRONLY | os.O_NONBLOCK)  # releases the waiting ones
            for t in threads:
                t.join()
            os.close(w)
            print("ok", results.count("ok"), "eagain", results.count({{Errno.EAGAIN}}), "other", len(results) - results.count("ok") - results.count({{Errno.EAGAIN}}))
            """;
        var (inRead, inWrite) = ConfinementHarness.Pipe();
        var (outRead, outWrite) = ConfinementHarness.Pipe();
        Workload workload;
        using (inRead)
        using (outWrite)
            workload = h.Launcher.Launch(new LaunchSpec
            {
                CgroupPath = h.Cgroup, Command = ["/usr/bin/python3", "-c", script], Identity = asRoot ? WorkloadIdentity.Root : null,
                WorkingDirectory = h.Dir, Stdin = inRead, Stdout = outWrite,
            });
        using (workload)
        using (SeccompSupervisor.Start(workload, h.Decider, h.Sink, h.Log.Enqueue))
        using (var stdin = new FileStream(inWrite, FileAccess.Write, 1))
        using (var stdout = new StreamReader(new FileStream(outRead, FileAccess.Read, 1)))
        {
            int before = FifoThreads();
            workload.Go();
            Assert.Equal("waiting", stdout.ReadLine());
            int during = FifoThreads() - before;
            stdin.WriteByte((byte)'\n');
            stdin.Flush();
            string? summary = stdout.ReadLine();
            Assert.Equal(new WorkloadExit(0, null), workload.WaitForExit(TimeSpan.FromSeconds(60)));
            // Exactly MaxWaiting opens waited (on a thread each) and completed; every other was refused at once.
            Assert.Equal($"ok {FifoOpens.MaxWaiting} eagain {opens - FifoOpens.MaxWaiting} other 0", summary);
            // Other tests running in parallel may hold a few FIFO threads of their own.
            Assert.InRange(during, 0, FifoOpens.MaxWaiting + 4);
            Assert.Empty(h.Sink.Reports);
        }
    }

    [Theory]
    [MemberData(nameof(BothIdentities))]
    public void A_fork_storm_stops_at_the_task_cap_and_its_cgroup_is_killed_cleanly(bool asRoot)
    {
        using var h = new ConfinementHarness();
        const int cap = 64;
        // Bounded even if the cap failed: at most 2,000 processes, 5 s. Each child closes its stdio
        // (so the run ends with the parent) and sleeps until the cgroup is killed.
        var run = h.Run(["/usr/bin/python3", "-c", """
            import os, time
            deadline, n, err = time.time() + 5, 0, None
            while n < 2000 and time.time() < deadline:
                try:
                    pid = os.fork()
                except OSError as e:
                    err = e.errno
                    break
                if pid == 0:
                    os.closerange(0, 3); time.sleep(60); os._exit(0)
                n += 1
            print("forked", n, "errno", err)
            """], asRoot ? WorkloadIdentity.Root : null, maxTasks: cap);
        Assert.True(run.Exit.ExitCode == 0, run.ToString());
        var kind = PidsCap.Apply(h.Cgroup, cap).Kind;
        if (kind == PidsCapKind.None)
        {
            // No pids controller on this host: nothing caps it (bounded by the script alone).
            Assert.Contains("errno None", run.Stdout);
            return;
        }
        // The parent is one task of the cap: 63 children, then EAGAIN.
        Assert.Equal($"forked {cap - 1} errno {Errno.EAGAIN}\n", run.Stdout);
        Assert.InRange(new WorkloadCgroup(h.Cgroup).Pids().Count, cap - 1, cap);
        Assert.Empty(h.Sink.Reports); // the kernel's answer, not a violation

        ConfinementHarness.RemoveCgroup(h.Cgroup);
        Assert.False(Directory.Exists(h.Cgroup));
        if (PidsCap.FindV1PidsMount() is string v1)
            Assert.False(Directory.Exists(Path.Combine(v1, Path.GetRelativePath(h.Mount, h.Cgroup))));
    }

    [Fact]
    public void This_host_caps_tasks_through_a_pids_controller()
    {
        using var h = new ConfinementHarness();
        var cap = PidsCap.Apply(h.Cgroup, 100);
        // This workplace's hosts: v2 without pids (hybrid mode), v1 pids mounted.
        bool v2 = CgroupV2.Controllers(h.Mount).Contains("pids");
        Assert.Equal(v2 ? PidsCapKind.V2 : PidsCapKind.V1Mirror, cap.Kind);
        string file = Path.Combine(cap.V1Path ?? h.Cgroup, "pids.max");
        Assert.Equal("100", File.ReadAllText(file).Trim());
    }

    [Fact]
    public void Mirrors_whose_v2_cgroup_is_gone_are_swept_when_an_enforcer_starts()
    {
        using var h = new ConfinementHarness();
        if (PidsCap.FindV1PidsMount() is not string v1)
            return; // no mirrors on this host
        // As after an enforcer's death: its guard removed the v2 cgroups, the mirrors stayed.
        string dead = Path.Combine(h.Cgroup, "enforcer-dead"), workload = Path.Combine(dead, "w1-x");
        Directory.CreateDirectory(workload);
        string mirror = PidsCap.Apply(workload, 10).V1Path!;
        Directory.Delete(workload);
        Directory.Delete(dead);
        Assert.True(Directory.Exists(mirror));
        using (WorkloadCgroups.Create(h.Cgroup))
            Assert.False(Directory.Exists(Path.GetDirectoryName(mirror)));
        Assert.False(Directory.Exists(Path.Combine(v1, Path.GetRelativePath(h.Mount, h.Cgroup), $"enforcer-{Environment.ProcessId}")));
    }

    [Theory]
    [MemberData(nameof(BothIdentities))]
    public void The_workload_cannot_leave_its_pids_cgroup(bool asRoot)
    {
        using var h = new ConfinementHarness();
        if (PidsCap.FindV1PidsMount() is not string v1)
            return; // only the v1 mirror is a second hierarchy; v2 escapes are ConfinementEscapeTests'
        var run = h.Sh($"echo $$ > {v1}/cgroup.procs; echo rc=$?; grep pids /proc/self/cgroup", asRoot ? WorkloadIdentity.Root : null);
        Assert.Contains("rc=2", run.Stdout);
        Assert.Contains("Operation not permitted", run.Stderr);
        Assert.Contains($":pids:/{Path.GetRelativePath(h.Mount, h.Cgroup)}\n", run.Stdout);
        var report = Assert.Single(h.Sink.Reports);
        Assert.Equal((ViolationOp.FileWrite, $"{v1}/cgroup.procs"), (report.Op, report.Target));
    }

    [Fact]
    public void The_cap_goes_to_v2_where_the_hierarchy_offers_pids_else_to_a_v1_mirror_else_nowhere()
    {
        string root = Path.Combine(Path.GetTempPath(), $"mis-pids-{Environment.ProcessId}");
        try
        {
            string v2 = Path.Combine(root, "v2"), v1 = Path.Combine(root, "v1");
            string leaf = Path.Combine(v2, "mis", "enforcer-1", "w1-x");
            Directory.CreateDirectory(leaf);
            Directory.CreateDirectory(v1);
            foreach (var dir in new[] { v2, Path.Combine(v2, "mis"), Path.Combine(v2, "mis", "enforcer-1") })
            {
                File.WriteAllText(Path.Combine(dir, "cgroup.controllers"), "cpu pids memory\n");
                File.WriteAllText(Path.Combine(dir, "cgroup.subtree_control"), "cpu\n");
            }
            File.WriteAllText(Path.Combine(leaf, "pids.max"), "max\n"); // the kernel adds it once enabled above

            Assert.Equal(new PidsCapResult(PidsCapKind.V2, null), PidsCap.Apply(leaf, 64, v2, v1));
            Assert.Equal("64", File.ReadAllText(Path.Combine(leaf, "pids.max")));
            Assert.Equal("+pids", File.ReadAllText(Path.Combine(v2, "mis", "cgroup.subtree_control")));

            File.WriteAllText(Path.Combine(v2, "cgroup.controllers"), "cpu memory\n"); // hybrid: no pids in v2
            var mirror = PidsCap.Apply(leaf, 64, v2, v1);
            Assert.Equal(new PidsCapResult(PidsCapKind.V1Mirror, Path.Combine(v1, "mis", "enforcer-1", "w1-x")), mirror);
            Assert.Equal("64", File.ReadAllText(Path.Combine(mirror.V1Path!, "pids.max")));

            Assert.Equal(PidsCapKind.None, PidsCap.Apply(leaf, 64, v2, Path.Combine(root, "no-v1")).Kind);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>The enforcer's (this process's) threads that wait in a FIFO open for a workload.</summary>
    private static int FifoThreads() => Directory.GetDirectories("/proc/self/task").Count(task =>
    {
        try
        {
            return File.ReadAllText(Path.Combine(task, "comm")).StartsWith("mis-seccomp-fif", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    });
}
