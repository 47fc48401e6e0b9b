using Mis.Enforcer.Kernel;
using Mis.Native;

namespace Mis.Enforcer.Cgroups;

/// <summary>
/// The cgroups of one MIS process: <c>&lt;cgroup2 mount&gt;/mis/enforcer-PID/</c> holds one child
/// per workload. Everything MIS kills or removes is inside this directory, so MIS never touches a
/// process outside the cgroups it manages (ARCHITECTURE, decision 2).
/// </summary>
public sealed class WorkloadCgroups : IDisposable
{
    private int _next;
    private bool _disposed;

    private WorkloadCgroups(string mount, string root)
    {
        Mount = mount;
        Root = root;
    }

    /// <summary>The cgroup v2 mount point.</summary>
    internal string Mount { get; }

    /// <summary>This process's directory of workload cgroups.</summary>
    internal string Root { get; }

    /// <summary>Creates this process's directory under <paramref name="cgroupRoot"/> (default <c>&lt;mount&gt;/mis</c>).</summary>
    /// <exception cref="InvalidOperationException">cgroup v2 is missing or the directory cannot be created (with why).</exception>
    internal static WorkloadCgroups Create(string? cgroupRoot = null)
    {
        string mount = CgroupV2.FindMount()
            ?? throw new InvalidOperationException("cgroup v2 is not mounted on this host; MIS needs it to place workloads (see ./mis doctor)");
        string parent = string.IsNullOrEmpty(cgroupRoot) ? Path.Combine(mount, "mis") : cgroupRoot;
        string root = Path.Combine(parent, $"enforcer-{Environment.ProcessId}");
        try
        {
            Directory.CreateDirectory(root);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"cannot create the cgroup {root}: {e.Message} (MIS must run as root)", e);
        }
        PidsCap.SweepStaleMirrors(parent);
        return new WorkloadCgroups(mount, root);
    }

    /// <summary>Creates a fresh, empty cgroup for one workload.</summary>
    internal WorkloadCgroup CreateWorkload(string label)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string safe = new string(label.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray());
        string path = Path.Combine(Root, $"w{Interlocked.Increment(ref _next)}-{(safe.Length > 40 ? safe[..40] : safe)}");
        Directory.CreateDirectory(path);
        return new WorkloadCgroup(path);
    }

    /// <summary>Kills whatever is left in this process's cgroups and removes them.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        if (!Directory.Exists(Root))
        {
            PidsCap.RemoveMirror(Root);
            return;
        }
        foreach (var child in Directory.GetDirectories(Root))
            new WorkloadCgroup(child).Dispose();
        WorkloadCgroup.RemoveDirectory(Root);
    }
}

/// <summary>One workload's cgroup. Disposing kills every process still in it and removes it.</summary>
public sealed class WorkloadCgroup : IDisposable
{
    internal WorkloadCgroup(string path)
    {
        Path = path;
        Id = CgroupV2.IdOf(path);
    }

    /// <summary>The cgroup directory.</summary>
    public string Path { get; }

    /// <summary>The cgroup id the kernel uses (bpf_get_current_cgroup_id): the directory's inode number.</summary>
    public ulong Id { get; }

    /// <summary>The pids in the cgroup now.</summary>
    public IReadOnlyList<int> Pids()
    {
        try
        {
            return File.ReadAllLines(System.IO.Path.Combine(Path, "cgroup.procs")).Where(l => l.Length > 0).Select(int.Parse).ToList();
        }
        catch (IOException)
        {
            return [];
        }
    }

    /// <summary>Kills every process in the cgroup (see <see cref="CgroupKiller"/>).</summary>
    public void Kill() => CgroupKiller.Kill(Path);

    /// <summary>Waits until the cgroup holds no process (cgroup.events populated 0).</summary>
    internal bool WaitEmpty(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        string events = System.IO.Path.Combine(Path, "cgroup.events");
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                if (File.ReadAllText(events).Contains("populated 0", StringComparison.Ordinal))
                    return true;
            }
            catch (IOException)
            {
                return true; // already removed
            }
            Thread.Sleep(2);
        }
        return false;
    }

    /// <summary>Kills what is left and removes the cgroup.</summary>
    public void Dispose()
    {
        if (!Directory.Exists(Path))
            return;
        Kill();
        WaitEmpty(TimeSpan.FromSeconds(5));
        RemoveDirectory(Path);
    }

    // A cgroup is removed with rmdir (its files are not files); it fails while processes remain.
    // Its v1 pids mirror (PidsCap) goes with it.
    internal static void RemoveDirectory(string path)
    {
        for (int attempt = 0; attempt < 50; attempt++)
        {
            try
            {
                Directory.Delete(path);
                PidsCap.RemoveMirror(path);
                return;
            }
            catch (DirectoryNotFoundException)
            {
                PidsCap.RemoveMirror(path);
                return;
            }
            catch (IOException)
            {
                Thread.Sleep(10);
            }
        }
    }
}
