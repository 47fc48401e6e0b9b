using System.Text.RegularExpressions;
using Mis.Enforcer.Confinement;

namespace Mis.Enforcer.Tests;

/// <summary>The launcher's filter (C) and the supervisor's syscall table (C#) are two halves of one list: neither may drift.</summary>
public sealed class SyscallListTests
{
    [Fact]
    public void The_filter_notifies_exactly_the_syscalls_the_supervisor_knows()
    {
        string filter = File.ReadAllText(Path.Combine(ConfinementHarness.RepoRoot(), "native", "launcher", "filter.c"));
        // Without the BPF LSM hooks, every list is notified whole (with them, the kernel decides some).
        var notified = new[] { "notified", "opens", "path_hook_changes", "signals" }
            .SelectMany(list => Listed(filter, $"static const int {list}[]")).ToHashSet();

        var known = Enumerable.Range(0, 600).Select(Syscalls.Name).Where(n => !n.StartsWith("syscall ", StringComparison.Ordinal)).ToHashSet();
        // Notified only for some of their arguments, by blocks of their own in the filter.
        known.ExceptWith(["fcntl", "ioctl", "prlimit64", "sched_setaffinity", "sched_setscheduler", "sched_setparam", "sched_setattr", "setpriority", "ioprio_set", "socket", "socketpair"]);

        Assert.Equal(known.Order(), notified.Order());
    }

    private static IEnumerable<string> Listed(string filter, string array)
    {
        string list = filter[filter.IndexOf(array, StringComparison.Ordinal)..];
        list = list[..list.IndexOf("};", StringComparison.Ordinal)];
        return Regex.Matches(list, @"\bSYS_(\w+)").Select(m => m.Groups[1].Value);
    }
}
