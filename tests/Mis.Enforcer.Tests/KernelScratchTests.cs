using System.Diagnostics;
using Mis.Enforcer.Bpf;
using Mis.Enforcer.Configuration;
using Mis.Enforcer.Kernel;
using Mis.Native;
using Mis.Testing;

namespace Mis.Enforcer.Tests;

/// <summary>
/// Kernel tests share one global syscall hook per enforcer and measure time: they run alone,
/// after every parallel test (HostProbeTests counts BPF links, which these would disturb).
/// </summary>
[CollectionDefinition("kernel", DisableParallelization = true)]
public sealed class KernelCollection;

/// <summary>Requirements and helpers shared by the kernel tests.</summary>
internal static class KernelTest
{
    /// <summary>Skips (or fails under CI=true) unless the kernel enforcer can run, then opens one.</summary>
    internal static KernelEnforcer Open(DefconConfig? config = null, KernelEnforcerOptions? options = null)
    {
        Require();
        return KernelEnforcer.Open(config ?? new DefconConfig(), options);
    }

    internal static void Require()
    {
        HostRequirements.Root();
        HostRequirements.That(EmbeddedBpf.TryLoad(KernelEnforcer.ObjectName, out _, out var why), why);
        HostRequirements.That(CgroupV2.FindMount() is not null, "cgroup v2 is not mounted");
    }

    /// <summary>Debian's interpreter: the one first on PATH here is a pyenv shim that forks a shell first.</summary>
    internal static string Python => File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

    /// <summary>Waits until <paramref name="condition"/> holds or the timeout passes.</summary>
    internal static bool Eventually(Func<bool> condition, int timeoutMs = 5000)
    {
        var watch = Stopwatch.StartNew();
        while (watch.ElapsedMilliseconds < timeoutMs)
        {
            if (condition())
                return true;
            Thread.Sleep(10);
        }
        return condition();
    }

    /// <summary>Every event already in the channel, waiting briefly for the event thread to catch up.</summary>
    internal static List<KernelEvent> Drain(KernelEnforcer enforcer, Func<List<KernelEvent>, bool>? until = null, int timeoutMs = 2000)
    {
        var events = new List<KernelEvent>();
        var watch = Stopwatch.StartNew();
        do
        {
            while (enforcer.Events.TryRead(out var e))
                events.Add(e);
            if (until is null ? watch.ElapsedMilliseconds > 200 : until(events))
                break;
            Thread.Sleep(10);
        } while (watch.ElapsedMilliseconds < timeoutMs);
        return events;
    }
}

/// <summary>
/// A throw-away cgroup "&lt;mount&gt;/mis/test-PID-N". Dispose kills whatever still runs in it and
/// removes it (rmdir: a cgroup's files are not files).
/// </summary>
internal sealed class ScratchCgroup : IDisposable
{
    private static int s_counter;

    internal ScratchCgroup()
    {
        string mount = CgroupV2.FindMount() ?? throw new InvalidOperationException("cgroup v2 is not mounted");
        Path = System.IO.Path.Combine(mount, "mis", $"test-{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}");
        Directory.CreateDirectory(Path);
        Id = CgroupV2.IdOf(Path);
    }

    internal string Path { get; }

    internal ulong Id { get; }

    internal IReadOnlyList<int> Pids =>
        File.ReadAllLines(System.IO.Path.Combine(Path, "cgroup.procs")).Where(l => l.Length > 0).Select(int.Parse).ToList();

    internal void Add(int pid) => File.WriteAllText(System.IO.Path.Combine(Path, "cgroup.procs"), pid.ToString());

    public void Dispose()
    {
        if (!Directory.Exists(Path))
            return;
        if (Pids.Count > 0)
            File.WriteAllText(System.IO.Path.Combine(Path, "cgroup.kill"), "1");
        KernelTest.Eventually(() => Pids.Count == 0);
        // Dying tasks keep the cgroup busy for a moment after leaving cgroup.procs.
        KernelTest.Eventually(() =>
        {
            try
            {
                Directory.Delete(Path);
                return true;
            }
            catch (IOException)
            {
                return false;
            }
        });
    }
}

/// <summary>
/// A child held at a shell <c>read</c> until it has been placed in a cgroup, so its real work
/// (after <see cref="Release"/>) runs entirely inside the cgroup.
/// </summary>
internal sealed class HeldChild : IDisposable
{
    private HeldChild(Process process) => Process = process;

    internal Process Process { get; }

    internal int Pid => Process.Id;

    internal static HeldChild Start(string program, params string[] args)
    {
        var psi = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("read x; exec \"$0\" \"$@\"");
        psi.ArgumentList.Add(program);
        foreach (var arg in args)
            psi.ArgumentList.Add(arg);
        return new HeldChild(Process.Start(psi)!);
    }

    internal void Release() => Send("go");

    internal void Send(string line)
    {
        Process.StandardInput.WriteLine(line);
        Process.StandardInput.Flush();
    }

    internal string? ReadLine() => Process.StandardOutput.ReadLine();

    /// <summary>Waits for exit; returns the exit code (128 + signal for a signalled child).</summary>
    internal int WaitExit(int timeoutMs = 10_000)
    {
        if (!Process.WaitForExit(timeoutMs))
            throw new TimeoutException($"child {Pid} did not exit within {timeoutMs} ms; stderr: {StdErrSoFar()}");
        return Process.ExitCode;
    }

    internal string StdErrSoFar() => Process.HasExited ? Process.StandardError.ReadToEnd() : "";

    public void Dispose()
    {
        try
        {
            if (!Process.HasExited)
                Process.Kill();
            Process.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
        }
        Process.Dispose();
    }
}

[Collection("kernel")]
public sealed class KernelScratchTests
{
    [Fact]
    public void Scratch_cgroup_is_below_mis_and_removed_even_when_populated()
    {
        KernelTest.Require();
        string path;
        using (var child = HeldChild.Start("/bin/sleep", "30"))
        {
            using (var cgroup = new ScratchCgroup())
            {
                path = cgroup.Path;
                Assert.Contains("/mis/test-", path);
                cgroup.Add(child.Pid);
                Assert.Equal([child.Pid], cgroup.Pids);
            }
            Assert.Equal(137, child.WaitExit());
        }
        Assert.False(Directory.Exists(path));
    }

    [Fact]
    public void Cgroup_id_is_the_directory_inode()
    {
        KernelTest.Require();
        using var cgroup = new ScratchCgroup();
        // bpf_get_current_cgroup_id() of a task in the cgroup equals this: checked end to end by
        // every kernel test; here only that it is stable and distinct per cgroup.
        using var other = new ScratchCgroup();
        Assert.NotEqual(cgroup.Id, other.Id);
        Assert.Equal(cgroup.Id, CgroupV2.IdOf(cgroup.Path));
    }
}
