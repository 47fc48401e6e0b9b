namespace Mis.Native;

/// <summary>
/// The cgroup v2 hierarchy as this host mounts it. The mount point differs between hosts
/// (<c>/sys/fs/cgroup</c> on unified hosts, <c>/sys/fs/cgroup/unified</c> in hybrid mode), so it
/// is always read from <c>/proc/self/mountinfo</c>, never assumed.
/// </summary>
public static class CgroupV2
{
    /// <summary>The cgroup2 mount point, or null when cgroup v2 is not mounted.</summary>
    public static string? FindMount(string mountinfoPath = "/proc/self/mountinfo") =>
        FindHierarchy("cgroup2", null, mountinfoPath);

    /// <summary>
    /// The mount point of a cgroup hierarchy: the first of filesystem type <paramref name="fsType"/>
    /// (<c>cgroup2</c>, or <c>cgroup</c> for v1) whose mount options include
    /// <paramref name="controller"/> (a v1 controller such as <c>pids</c>, mounted at the
    /// hierarchy's root); null when there is none.
    /// </summary>
    public static string? FindHierarchy(string fsType, string? controller, string mountinfoPath = "/proc/self/mountinfo")
    {
        if (!File.Exists(mountinfoPath))
            return null;
        foreach (var line in File.ReadLines(mountinfoPath))
        {
            // "36 25 0:31 / /sys/fs/cgroup/unified rw,... shared:9 - cgroup2 cgroup2 rw"
            // "40 30 0:35 / /sys/fs/cgroup/pids rw,... shared:17 - cgroup cgroup rw,pids"
            int separator = line.IndexOf(" - ", StringComparison.Ordinal);
            if (separator < 0)
                continue;
            var after = line[(separator + 3)..].Split(' ');
            var fields = line[..separator].Split(' ');
            if (after.Length < 3 || after[0] != fsType || fields.Length < 5)
                continue;
            if (controller is null || (after[2].Split(',').Contains(controller) && fields[3] == "/"))
                return UnescapeMountPath(fields[4]);
        }
        return null;
    }

    /// <summary>The controllers a cgroup offers to its children (<c>cgroup.controllers</c>).</summary>
    public static IReadOnlyList<string> Controllers(string cgroupPath)
    {
        var file = Path.Combine(cgroupPath, "cgroup.controllers");
        return File.Exists(file)
            ? File.ReadAllText(file).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : [];
    }

    /// <summary>The cgroup v2 path of a process, relative to the mount (e.g. "/user.slice").</summary>
    public static string? PathOf(int pid)
    {
        var file = $"/proc/{pid}/cgroup";
        if (!File.Exists(file))
            return null;
        foreach (var line in File.ReadLines(file))
            if (line.StartsWith("0::", StringComparison.Ordinal))
                return line[3..];
        return null;
    }

    /// <summary>
    /// The id of the cgroup whose directory is <paramref name="cgroupPath"/>: on cgroup v2 it is
    /// the directory's inode number, the value <c>bpf_get_current_cgroup_id()</c> returns.
    /// </summary>
    /// <exception cref="IOException">The directory cannot be stat'ed.</exception>
    public static ulong IdOf(string cgroupPath) =>
        FileIdentity.Of(cgroupPath)?.Inode ?? throw new IOException($"cannot stat the cgroup {cgroupPath}: it does not exist");

    // mountinfo escapes space, tab, newline and backslash as \ooo octal.
    private static string UnescapeMountPath(string path)
    {
        if (!path.Contains('\\'))
            return path;
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < path.Length; i++)
        {
            if (path[i] == '\\' && i + 3 < path.Length
                && path.Substring(i + 1, 3).All(c => c is >= '0' and <= '7'))
            {
                sb.Append((char)Convert.ToInt32(path.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                sb.Append(path[i]);
            }
        }
        return sb.ToString();
    }
}
