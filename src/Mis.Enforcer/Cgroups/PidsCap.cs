using Mis.Native;

namespace Mis.Enforcer.Cgroups;

/// <summary>Where a workload's task cap is enforced.</summary>
public enum PidsCapKind
{
    /// <summary>The cgroup v2 pids controller: pids.max on the workload's own cgroup.</summary>
    V2,

    /// <summary>
    /// A cgroup v1 pids hierarchy (hybrid hosts such as this workplace's, whose v2 has no pids
    /// controller): a mirror cgroup of the workload's, which the launcher joins before its first
    /// instruction.
    /// </summary>
    V1Mirror,

    /// <summary>No pids controller anywhere: no cap (the host's kernel.threads-max and pid_max are all that holds).</summary>
    None,
}

/// <summary>How a workload's task count is capped: <see cref="V1Path"/> is the cgroup the launcher must join for <see cref="PidsCapKind.V1Mirror"/>.</summary>
public sealed record PidsCapResult(PidsCapKind Kind, string? V1Path);

/// <summary>
/// Caps how many tasks (processes and threads) a workload's cgroup may hold, so a fork storm fails
/// with EAGAIN inside its cgroup instead of taking the host down. The kernel enforces it on every
/// fork and clone, for every identity (RLIMIT_NPROC would not: it exempts uid 0 and counts per
/// user across workloads). Failed forks are the kernel's answer, not violations.
/// </summary>
public static class PidsCap
{
    /// <summary>Tasks per workload by default: far above a training run's processes and threads, far below what hurts a host.</summary>
    internal const int DefaultMaxTasks = 4096;

    /// <summary>
    /// Caps <paramref name="cgroupPath"/> (a v2 cgroup under <paramref name="v2Mount"/>) at
    /// <paramref name="maxTasks"/>: through v2's pids controller where the hierarchy has one
    /// (enabling it in each ancestor's cgroup.subtree_control below the root as needed), otherwise
    /// through a mirror cgroup in a v1 pids hierarchy. Mounts default to this host's.
    /// </summary>
    internal static PidsCapResult Apply(string cgroupPath, int maxTasks, string? v2Mount = null, string? v1PidsMount = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTasks, 1);
        v2Mount ??= CgroupV2.FindMount() ?? throw new InvalidOperationException("cgroup v2 is not mounted");
        string limit = maxTasks.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (EnableV2(v2Mount, cgroupPath))
        {
            File.WriteAllText(Path.Combine(cgroupPath, "pids.max"), limit);
            return new PidsCapResult(PidsCapKind.V2, null);
        }
        if ((v1PidsMount ?? FindV1PidsMount()) is string v1 && Directory.Exists(v1))
        {
            string mirror = Mirror(v2Mount, v1, cgroupPath);
            Directory.CreateDirectory(mirror);
            File.WriteAllText(Path.Combine(mirror, "pids.max"), limit);
            return new PidsCapResult(PidsCapKind.V1Mirror, mirror);
        }
        return new PidsCapResult(PidsCapKind.None, null);
    }

    /// <summary>
    /// Removes the v1 mirror of <paramref name="cgroupPath"/> and every mirror below it, deepest
    /// first (after the v2 cgroups are gone, so they are empty too: their tasks are the same).
    /// </summary>
    internal static void RemoveMirror(string cgroupPath, string? v2Mount = null, string? v1PidsMount = null)
    {
        if ((v2Mount ?? CgroupV2.FindMount()) is not string v2 || (v1PidsMount ?? FindV1PidsMount()) is not string v1)
            return;
        if (IsUnder(cgroupPath, v2))
            RemoveTree(Mirror(v2, v1, cgroupPath));
    }

    /// <summary>
    /// Removes the mirrors below <paramref name="parentPath"/>'s whose v2 cgroup no longer exists:
    /// left behind when an enforcer died and its guard removed the v2 cgroups alone. A mirror still
    /// holding tasks stays (rmdir refuses).
    /// </summary>
    internal static void SweepStaleMirrors(string parentPath, string? v2Mount = null, string? v1PidsMount = null)
    {
        if ((v2Mount ?? CgroupV2.FindMount()) is not string v2 || (v1PidsMount ?? FindV1PidsMount()) is not string v1)
            return;
        if (!IsUnder(parentPath, v2) || Mirror(v2, v1, parentPath) is not string mirror || !Directory.Exists(mirror))
            return;
        try
        {
            foreach (string stale in Directory.GetDirectories(mirror))
                if (!Directory.Exists(Path.Combine(parentPath, Path.GetFileName(stale))))
                    RemoveTree(stale, attempts: 1);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: a leftover empty mirror costs a directory, nothing more.
        }
    }

    private static void RemoveTree(string dir, int attempts = 100)
    {
        try
        {
            foreach (string child in Directory.GetDirectories(dir))
                RemoveTree(child, attempts);
        }
        catch (DirectoryNotFoundException)
        {
            return;
        }
        for (int attempt = 0; attempt < attempts && Directory.Exists(dir); attempt++)
        {
            try
            {
                Directory.Delete(dir); // rmdir: a cgroup's files are not files
            }
            catch (DirectoryNotFoundException)
            {
                return;
            }
            catch (IOException)
            {
                if (attempt + 1 < attempts)
                    Thread.Sleep(10); // EBUSY while its last tasks are still exiting
            }
        }
    }

    /// <summary>
    /// Makes pids available in <paramref name="cgroupPath"/>: each ancestor from the mount down must
    /// offer it (cgroup.controllers) and pass it on (cgroup.subtree_control). False where the root
    /// does not offer it, or an ancestor refuses (processes of its own: the no-internal-process rule).
    /// </summary>
    private static bool EnableV2(string v2Mount, string cgroupPath)
    {
        if (!IsUnder(cgroupPath, v2Mount))
            return false;
        string relative = Path.GetRelativePath(v2Mount, cgroupPath);
        string dir = v2Mount;
        foreach (string part in relative.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!CgroupV2.Controllers(dir).Contains("pids"))
                return false;
            string subtree = Path.Combine(dir, "cgroup.subtree_control");
            try
            {
                if (!File.ReadAllText(subtree).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Contains("pids"))
                    File.WriteAllText(subtree, "+pids");
            }
            catch (IOException)
            {
                return false;
            }
            dir = Path.Combine(dir, part);
        }
        return File.Exists(Path.Combine(cgroupPath, "pids.max"));
    }

    /// <summary>The mount point of a cgroup v1 hierarchy with the pids controller, or null.</summary>
    internal static string? FindV1PidsMount(string mountinfoPath = "/proc/self/mountinfo") =>
        CgroupV2.FindHierarchy("cgroup", "pids", mountinfoPath);

    private static string Mirror(string v2Mount, string v1Mount, string cgroupPath) =>
        Path.Combine(v1Mount, Path.GetRelativePath(v2Mount, cgroupPath));

    private static bool IsUnder(string path, string mount) =>
        path.StartsWith(mount.TrimEnd('/') + "/", StringComparison.Ordinal);
}
