using Mis.Native;

namespace Mis.Server.Engine;

/// <summary>
/// Signals every process of a cgroup and watches it drain. The PIDs are read from
/// <c>cgroup.procs</c> while the cgroup is frozen: a frozen task cannot exit, so none of the PIDs
/// read can be reaped and reused by an unrelated process before its signal is sent (ARCHITECTURE
/// decision 4: never a PID looked up and then used later). The signal stays pending until the thaw.
/// </summary>
public static class CgroupSignals
{
    private static readonly TimeSpan FreezeLimit = TimeSpan.FromSeconds(1);

    /// <summary>Sends <paramref name="signal"/> to every process in the cgroup; returns how many were signalled.</summary>
    internal static int SignalAll(string cgroupPath, int signal)
    {
        string freeze = Path.Combine(cgroupPath, "cgroup.freeze");
        bool frozen = File.Exists(freeze) && TryWrite(freeze, "1");
        try
        {
            if (frozen)
                WaitFor(cgroupPath, "frozen 1", FreezeLimit);
            int count = 0;
            foreach (int pid in Pids(cgroupPath))
                if (Signals.Send(pid, signal) == 0)
                    count++;
            return count;
        }
        finally
        {
            if (frozen)
                TryWrite(freeze, "0");
        }
    }

    /// <summary>Whether the cgroup holds no process (or no longer exists).</summary>
    internal static bool IsEmpty(string cgroupPath)
    {
        try
        {
            return File.ReadAllText(Path.Combine(cgroupPath, "cgroup.events")).Contains("populated 0", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return true; // removed: nothing left in it
        }
    }

    /// <summary>Waits (without holding a thread) until the cgroup is empty; false when <paramref name="limit"/> passed first.</summary>
    internal static async Task<bool> WaitEmptyAsync(string cgroupPath, TimeSpan limit, CancellationToken cancel = default)
    {
        long deadline = Environment.TickCount64 + (long)limit.TotalMilliseconds;
        while (!IsEmpty(cgroupPath))
        {
            if (Environment.TickCount64 >= deadline)
                return false;
            await Task.Delay(5, cancel).ConfigureAwait(false);
        }
        return true;
    }

    private static IEnumerable<int> Pids(string cgroupPath)
    {
        try
        {
            return File.ReadAllLines(Path.Combine(cgroupPath, "cgroup.procs")).Where(l => l.Length > 0).Select(int.Parse).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static void WaitFor(string cgroupPath, string state, TimeSpan limit)
    {
        long deadline = Environment.TickCount64 + (long)limit.TotalMilliseconds;
        string events = Path.Combine(cgroupPath, "cgroup.events");
        while (Environment.TickCount64 < deadline)
        {
            try
            {
                if (File.ReadAllText(events).Contains(state, StringComparison.Ordinal))
                    return;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return;
            }
            Thread.Sleep(1);
        }
    }

    private static bool TryWrite(string file, string value)
    {
        try
        {
            File.WriteAllText(file, value);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
