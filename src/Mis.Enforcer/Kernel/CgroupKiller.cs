using Mis.Native;

namespace Mis.Enforcer.Kernel;

/// <summary>
/// Kills every process of a cgroup (ARCHITECTURE decision 4: kill means the whole cgroup).
/// <c>cgroup.kill</c> does it atomically in the kernel, including processes forking meanwhile.
/// Where it is missing (kernels before 5.14), the cgroup is frozen first so that the PIDs read
/// from <c>cgroup.procs</c> stay those of live members (a frozen task cannot exit, so its PID
/// cannot be reused) until each gets its SIGKILL. Never a PID remembered from earlier.
/// </summary>
public static class CgroupKiller
{
    private const int MaxRounds = 16;

    /// <summary>Kills the cgroup's processes; false when the cgroup no longer exists.</summary>
    public static bool Kill(string cgroupPath)
    {
        string killFile = Path.Combine(cgroupPath, "cgroup.kill");
        try
        {
            if (File.Exists(killFile))
            {
                File.WriteAllText(killFile, "1");
                return true;
            }
            return KillByPid(cgroupPath);
        }
        catch (Exception e) when (e is DirectoryNotFoundException or FileNotFoundException)
        {
            return false; // removed meanwhile: nothing left to kill
        }
    }

    private static bool KillByPid(string cgroupPath)
    {
        string freeze = Path.Combine(cgroupPath, "cgroup.freeze");
        bool frozen = File.Exists(freeze);
        if (frozen)
            File.WriteAllText(freeze, "1");
        try
        {
            // Without a freezer a fork can race the read: repeat until no new member shows up.
            // A PID already signalled is never signalled again: it may be exiting, and once
            // reaped its number can belong to someone else.
            var signalled = new HashSet<int>();
            for (int round = 0; round < MaxRounds; round++)
            {
                var fresh = File.ReadAllLines(Path.Combine(cgroupPath, "cgroup.procs"))
                    .Where(l => l.Length > 0).Select(int.Parse).Where(signalled.Add).ToList();
                if (fresh.Count == 0)
                    return true;
                foreach (int pid in fresh)
                    _ = Signals.Send(pid, Signals.SIGKILL);
            }
            return true;
        }
        finally
        {
            // Thawing lets the killed tasks run their exit; SIGKILL is already pending.
            if (frozen && Directory.Exists(cgroupPath))
                File.WriteAllText(freeze, "0");
        }
    }
}
