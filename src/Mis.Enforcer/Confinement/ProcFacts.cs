using System.Globalization;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>
/// What the supervisor reads about a task from /proc: its memory (the syscall's path and
/// open_how), its thread group, umask, credentials and cgroup. All of it can change the moment
/// after it was read; callers re-check the notification (SECCOMP_IOCTL_NOTIF_ID_VALID) after
/// reading, which proves the task was still the one blocked in the syscall.
/// </summary>
public static unsafe class ProcFacts
{
    /// <summary>PATH_MAX, including the terminating NUL (the kernel's getname limit).</summary>
    internal const int PathMax = 4096;

    /// <summary>
    /// Reads the NUL-terminated string at <paramref name="address"/> in task <paramref name="tid"/>
    /// into <paramref name="buffer"/> (at least <see cref="PathMax"/> bytes), one page at a time so
    /// that a string ending before an unmapped page is read whole. Returns 0 and the length, or the
    /// errno the kernel would give the workload for it: EFAULT (unreadable), ENAMETOOLONG (no NUL
    /// within PATH_MAX), ESRCH (task gone).
    /// </summary>
    internal static int ReadString(int tid, ulong address, byte[] buffer, out int length)
    {
        length = 0;
        int have = 0;
        while (have < PathMax)
        {
            ulong at = address + (ulong)have;
            int chunk = (int)Math.Min((ulong)(PathMax - have), PageSize - (at % PageSize));
            int errno = Copy(tid, at, buffer.AsSpan(have, chunk), out int got);
            if (errno != 0)
                return errno;
            int nul = Array.IndexOf(buffer, (byte)0, have, got);
            if (nul >= 0)
            {
                length = nul;
                return 0;
            }
            have += got;
            if (got < chunk)
                return Errno.EFAULT; // the string runs into memory the task cannot read
        }
        return Errno.ENAMETOOLONG;
    }

    /// <summary>Reads exactly <paramref name="destination"/>.Length bytes; 0 or EFAULT/ESRCH.</summary>
    internal static int ReadBytes(int tid, ulong address, Span<byte> destination)
    {
        int errno = Copy(tid, address, destination, out int got);
        return errno != 0 ? errno : got == destination.Length ? 0 : Errno.EFAULT;
    }

    private const ulong PageSize = 4096;

    /// <summary>
    /// One process_vm_readv: no /proc/TID/mem to open and close per read, and page protections apply
    /// as they do to the kernel's own copy from the caller (a PROT_NONE path faults either way).
    /// </summary>
    private static int Copy(int tid, ulong address, Span<byte> destination, out int got)
    {
        got = 0;
        if (destination.IsEmpty)
            return 0;
        nint n;
        fixed (byte* b = destination)
        {
            var local = new Libc.IoVec { Base = b, Length = (nuint)destination.Length };
            var remote = new Libc.IoVec { Base = (void*)address, Length = (nuint)destination.Length };
            n = Libc.ProcessVmReadv(tid, &local, 1, &remote, 1, 0);
        }
        if (n < 0)
            return Libc.LastErrno is Errno.EFAULT ? Errno.EFAULT : Errno.ESRCH; // gone, or no longer ours to read
        got = (int)n;
        return got == 0 ? Errno.EFAULT : 0;
    }

    /// <summary>The thread group (process) id of thread <paramref name="tid"/>, or null when it is gone.</summary>
    internal static int? Tgid(int tid) => StatusField(tid, "Tgid:") is string s ? int.Parse(s, CultureInfo.InvariantCulture) : null;

    /// <summary>The umask of <paramref name="tid"/>'s process, or null when it is gone.</summary>
    internal static uint? Umask(int tid) => StatusField(tid, "Umask:") is string s ? Convert.ToUInt32(s, 8) : null;

    /// <summary>
    /// The controlling terminal of <paramref name="tid"/>'s process (tty_nr of /proc/TID/stat, encoded
    /// as st_rdev), 0 when it has none, or null when it is gone.
    /// </summary>
    internal static ulong? ControllingTerminal(int tid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{tid}/stat");
            // "pid (comm) state ppid pgrp session tty_nr ...": comm may hold spaces and parentheses.
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return ulong.Parse(fields[4], CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>The filesystem credentials of <paramref name="pid"/> (the fs ids, the groups).</summary>
    internal static WorkloadCredentials Credentials(int pid)
    {
        string uid = StatusField(pid, "Uid:") ?? throw new InvalidOperationException($"process {pid} is gone");
        string gid = StatusField(pid, "Gid:") ?? throw new InvalidOperationException($"process {pid} is gone");
        string groups = StatusField(pid, "Groups:") ?? "";
        static uint Fs(string ids) => uint.Parse(ids.Split('\t', StringSplitOptions.RemoveEmptyEntries)[3], CultureInfo.InvariantCulture);
        return new WorkloadCredentials(Fs(uid), Fs(gid),
            [.. groups.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries).Select(g => uint.Parse(g, CultureInfo.InvariantCulture))]);
    }

    /// <summary>
    /// The cgroup v2 path of <paramref name="pid"/> ("0::" line of /proc/PID/cgroup, e.g.
    /// "/mis/job-1"), or null when there is no such process. Works for thread ids too.
    /// </summary>
    internal static string? CgroupOf(int pid)
    {
        if (pid <= 0)
            return null;
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/cgroup"))
                if (line.StartsWith("0::", StringComparison.Ordinal))
                    return line[3..];
            return null;
        }
        catch (IOException)
        {
            return null; // ENOENT/ESRCH: gone
        }
    }

    private static string? StatusField(int pid, string name)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
                if (line.StartsWith(name, StringComparison.Ordinal))
                    return line[name.Length..].Trim();
            return null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>
    /// The mount id and inode number of our open file <paramref name="fd"/> as the kernel holds
    /// them (/proc/self/fdinfo): on an overlay, stat reports the underlying file's device and
    /// inode, while the kernel's file is the overlay's own inode.
    /// </summary>
    internal static (int MountId, ulong Inode)? FdInfo(int fd)
    {
        // One read into the stack: this runs on every exec.
        Span<byte> path = stackalloc byte[40];
        int length = Ascii($"/proc/self/fdinfo/{fd}", path);
        Span<byte> text = stackalloc byte[512];
        int n;
        fixed (byte* p = path[..(length + 1)])
        {
            int file = Libc.Open(p, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
            if (file < 0)
                return null;
            fixed (byte* t = text)
                n = (int)Libc.Read(file, t, text.Length);
            Libc.Close(file);
        }
        if (n <= 0)
            return null;
        ulong? mount = Field(text[..n], "\nmnt_id:"u8), inode = Field(text[..n], "\nino:"u8);
        return mount is ulong m && inode is ulong i ? ((int)m, i) : null;
    }

    /// <summary>The decimal number after <paramref name="name"/> (and blanks) in <paramref name="text"/>, or null.</summary>
    private static ulong? Field(ReadOnlySpan<byte> text, ReadOnlySpan<byte> name)
    {
        int at = text.IndexOf(name);
        if (at < 0)
            return null;
        var rest = text[(at + name.Length)..].TrimStart(" \t"u8);
        int end = rest.IndexOfAnyExceptInRange((byte)'0', (byte)'9');
        return ulong.TryParse(end < 0 ? rest : rest[..end], NumberStyles.None, CultureInfo.InvariantCulture, out ulong value) ? value : null;
    }

    /// <summary>
    /// The device (st_dev encoding) of the superblock of mount <paramref name="mountId"/> in the
    /// mount namespace of <paramref name="pid"/> (/proc/PID/mountinfo's major:minor) and whether it
    /// is an overlay (whose stat reports the file below, not its own inode), or null.
    /// </summary>
    internal static (ulong Device, bool Overlay)? MountDevice(int pid, int mountId)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/mountinfo"))
            {
                var fields = line.Split(' ', 4);
                if (fields.Length < 3 || fields[0] != mountId.ToString(CultureInfo.InvariantCulture))
                    continue;
                var mm = fields[2].Split(':');
                ulong major = ulong.Parse(mm[0], CultureInfo.InvariantCulture), minor = ulong.Parse(mm[1], CultureInfo.InvariantCulture);
                // "... - FSTYPE SOURCE OPTIONS": the optional fields before " - " vary in number.
                int separator = line.IndexOf(" - ", StringComparison.Ordinal);
                bool overlay = separator >= 0 && line.AsSpan(separator + 3).StartsWith("overlay ");
                // glibc's makedev
                return (((major & 0xfffff000UL) << 32) | ((major & 0xfffUL) << 8) | ((minor & 0xffffff00UL) << 12) | (minor & 0xffUL), overlay);
            }
        }
        catch (IOException)
        {
        }
        return null;
    }

    /// <summary>Writes an ASCII string plus NUL into <paramref name="destination"/>; returns the length without the NUL.</summary>
    internal static int Ascii(ReadOnlySpan<char> text, Span<byte> destination)
    {
        for (int i = 0; i < text.Length; i++)
            destination[i] = (byte)text[i];
        destination[text.Length] = 0;
        return text.Length;
    }

}
