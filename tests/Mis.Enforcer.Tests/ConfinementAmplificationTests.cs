using Mis.Enforcer.Confinement;
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
            time.sleep(1.5)  # every open has reached the supervisor by now
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
