using System.Text;
using Microsoft.Win32.SafeHandles;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>
/// A private mount namespace for a workload (<see cref="LaunchSpec.MountNamespace"/>): a copy of the
/// enforcer's mount table in which mounts can be placed (a tmpfs or an overlay over a directory, so
/// a workload sees files that do not exist on the host) without the host's mount table or files
/// ever changing. Made by a short-lived thread of its own: unshare(CLONE_FS | CLONE_NEWNS), then
/// every mount made private recursively (nothing propagates to or from the host), then the
/// caller's preparation runs in it. The namespace is held by an nsfs fd; it and every mount made in
/// it vanish once the fd is closed and its last process has left, so a crash leaves nothing behind.
/// </summary>
public sealed unsafe class MountNamespace : IDisposable
{
    private const long SysMount = 165;
    private const long SysSetns = 308;
    private const long SysFchdir = 81;
    private const int CloneNewNs = 0x20000;
    private const long MsRec = 0x4000;
    private const long MsPrivate = 1 << 18;
    private const long MsBind = 0x1000;
    private const long SysChmod = 90;
    private const long SysChown = 92;

    [ThreadStatic]
    private static SpawnerState? t_spawner;

    private readonly SafeFileHandle _handle;

    private MountNamespace(SafeFileHandle handle) => _handle = handle;

    /// <summary>The nsfs fd of the namespace.</summary>
    internal SafeFileHandle Handle => _handle;

    /// <summary>
    /// Makes a namespace and runs <paramref name="prepare"/> inside it, on the namespace's own
    /// thread (mount with <see cref="Mount"/>; paths resolve in the new namespace). An exception
    /// from <paramref name="prepare"/> is rethrown here and the namespace discarded.
    /// </summary>
    public static MountNamespace Create(Action prepare)
    {
        ArgumentNullException.ThrowIfNull(prepare);
        SafeFileHandle? handle = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                if (Libc.Syscall(Libc.SYS_unshare, Libc.CLONE_FS | CloneNewNs, 0, 0) != 0)
                    throw new IOException($"unshare(CLONE_NEWNS): {Errno.Describe(Libc.LastErrno)}");
                Mount(null, "/", null, MsRec | MsPrivate, null);
                prepare();
                handle = OpenOwn("/proc/thread-self/ns/mnt");
            }
            catch (Exception e)
            {
                failure = e;
            }
        }) { IsBackground = true, Name = "mis-mountns" };
        thread.Start();
        thread.Join(); // the thread ends here: nothing else of the enforcer ever runs in the namespace
        if (failure is not null)
        {
            handle?.Dispose();
            throw failure is IOException or UnauthorizedAccessException
                ? new IOException($"cannot prepare the workload's mount namespace: {failure.Message}", failure)
                : failure;
        }
        return new MountNamespace(handle!);
    }

    /// <summary>mount(2); throws <see cref="IOException"/> naming the target and the errno.</summary>
    internal static void Mount(string? source, string target, string? fsType, long flags, string? data)
    {
        byte[]? s = source is null ? null : Z(source);
        byte[] t = Z(target);
        byte[]? f = fsType is null ? null : Z(fsType);
        byte[]? d = data is null ? null : Z(data);
        fixed (byte* ps = s)
        fixed (byte* pt = t)
        fixed (byte* pf = f)
        fixed (byte* pd = d)
        {
            if (Libc.Syscall(SysMount, (long)ps, (long)pt, (long)pf, flags, (long)pd) != 0)
                throw new IOException($"mount {fsType ?? "(bind/propagation)"} on {target}: {Errno.Describe(Libc.LastErrno)}");
        }
    }

    /// <summary>
    /// Inside <see cref="Create"/>'s preparation: makes <paramref name="directory"/> a private
    /// copy-on-write view of itself — an overlay whose lower layer is the directory as the host has
    /// it and whose upper layer is a fresh tmpfs of at most <paramref name="maxBytes"/> — so what is
    /// written there (by <paramref name="populate"/>, or later by the workload) lands in the
    /// namespace's memory, never on the host, while everything already there stays visible. Mounts
    /// below the directory are bound again on top, as they were. <paramref name="populate"/> gets
    /// the upper directory, to add entries to before the overlay goes up, and a path of the lower
    /// one, to copy attributes from (<see cref="MakeDirectoryLike"/>).
    /// </summary>
    public static void Overlay(string directory, long maxBytes, Action<string, string> populate)
    {
        ArgumentNullException.ThrowIfNull(populate);
        if (!directory.StartsWith('/') || directory == "/")
            throw new ArgumentException($"{directory}: expected an absolute directory other than /", nameof(directory));
        var fds = new List<SafeFileHandle>();
        try
        {
            // Opened before the tmpfs hides them: the directory as it was, and the mounts below it.
            var lower = OpenPath(directory, directoryOnly: true);
            fds.Add(lower);
            var below = new List<(string Path, SafeFileHandle Fd)>();
            foreach (string mountPoint in MountsBelow(directory))
            {
                var fd = OpenPath(mountPoint, directoryOnly: false);
                fds.Add(fd);
                below.Add((mountPoint, fd));
            }
            Mount("mis-gym", directory, "tmpfs", 0, $"mode=0755,size={maxBytes.ToString(System.Globalization.CultureInfo.InvariantCulture)}");
            string lowerPath = FdPath(lower);
            string upper = Path.Combine(directory, "upper");
            string work = Path.Combine(directory, "work");
            MakeDirectoryLike(upper, lowerPath);
            Directory.CreateDirectory(work);
            populate(upper, lowerPath);
            var upperFd = OpenPath(upper, directoryOnly: true);
            fds.Add(upperFd);
            var workFd = OpenPath(work, directoryOnly: true);
            fds.Add(workFd);
            // fd paths: no ',' or ':' of the real names can break the option string.
            Mount("mis-gym", directory, "overlay", 0, $"lowerdir={lowerPath},upperdir={FdPath(upperFd)},workdir={FdPath(workFd)}");
            foreach (var (path, fd) in below)
                Mount(FdPath(fd), path, null, MsBind | MsRec, null);
        }
        finally
        {
            foreach (var fd in fds)
                fd.Dispose();
        }
    }

    /// <summary>Creates directory <paramref name="path"/> with the mode and owner of <paramref name="model"/> when that exists, else 0755 root.</summary>
    public static void MakeDirectoryLike(string path, string model)
    {
        Directory.CreateDirectory(path);
        Libc.Stat st;
        int rc;
        fixed (byte* m = Z(model))
            rc = Libc.StatPath(m, &st);
        if (rc != 0 || (st.Mode & Libc.S_IFMT) != Libc.S_IFDIR)
            return;
        var (uid, gid) = OwnerOf(&st);
        fixed (byte* p = Z(path))
        {
            if (Libc.Syscall(SysChown, (long)p, uid, gid) != 0 || Libc.Syscall(SysChmod, (long)p, st.Mode & 0xFFF, 0) != 0)
                throw new IOException($"cannot give {path} the owner and mode of {model}: {Errno.Describe(Libc.LastErrno)}");
        }
    }

    /// <summary>The owner and group of <paramref name="path"/> (following symbolic links).</summary>
    /// <exception cref="IOException">stat failed.</exception>
    public static (uint Uid, uint Gid) Owner(string path)
    {
        Libc.Stat st;
        fixed (byte* p = Z(path))
        {
            if (Libc.StatPath(p, &st) != 0)
                throw new IOException($"stat {path}: {Errno.Describe(Libc.LastErrno)}");
        }
        return OwnerOf(&st);
    }

    // st_uid and st_gid follow st_mode in x86-64's struct stat (offsets 28 and 32).
    private static (uint Uid, uint Gid) OwnerOf(Libc.Stat* st) => (*(uint*)((byte*)st + 28), *(uint*)((byte*)st + 32));

    /// <summary>chown(2) of <paramref name="path"/> (not following a final symbolic link is not needed: the callers made it).</summary>
    /// <exception cref="IOException">The call failed (the message names the path and errno).</exception>
    public static void Chown(string path, uint uid, uint gid)
    {
        fixed (byte* p = Z(path))
        {
            if (Libc.Syscall(SysChown, (long)p, uid, gid) != 0)
                throw new IOException($"cannot give {path} to uid {uid} gid {gid}: {Errno.Describe(Libc.LastErrno)}");
        }
    }

    /// <summary>Mount points strictly below <paramref name="directory"/>, outermost only (a recursive bind brings the rest).</summary>
    private static List<string> MountsBelow(string directory)
    {
        string prefix = directory.TrimEnd('/') + "/";
        var points = File.ReadAllLines("/proc/thread-self/mountinfo")
            .Select(line => line.Split(' '))
            .Where(fields => fields.Length > 4)
            .Select(fields => Unescape(fields[4]))
            .Where(point => point.StartsWith(prefix, StringComparison.Ordinal))
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)
            .ToList();
        return points.Where(p => !points.Any(q => q != p && p.StartsWith(q + "/", StringComparison.Ordinal))).ToList();
    }

    /// <summary>mountinfo writes space, tab, newline and backslash as a backslash and three octal digits.</summary>
    private static string Unescape(string field)
    {
        if (!field.Contains('\\'))
            return field;
        var bytes = new List<byte>();
        for (int i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && i + 3 < field.Length)
            {
                bytes.Add(Convert.ToByte(field.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(field[i].ToString()));
            }
        }
        return Encoding.UTF8.GetString([.. bytes]);
    }

    private static SafeFileHandle OpenPath(string path, bool directoryOnly)
    {
        fixed (byte* p = Z(path))
        {
            int fd = Libc.Open(p, Libc.O_PATH | Libc.O_CLOEXEC | (directoryOnly ? Libc.O_DIRECTORY : 0), 0);
            if (fd < 0)
                throw new IOException($"open {path}: {Errno.Describe(Libc.LastErrno)}");
            return new SafeFileHandle(fd, ownsHandle: true);
        }
    }

    private static string FdPath(SafeFileHandle fd) =>
        $"/proc/thread-self/fd/{fd.DangerousGetHandle().ToString(System.Globalization.CultureInfo.InvariantCulture)}";

    /// <summary>
    /// Runs <paramref name="spawn"/> with the calling thread in <paramref name="ns"/> (null: where it
    /// is), so a process it starts begins life inside the namespace; the thread then returns to its
    /// own namespace and working directory. Used on the spawn thread (its fs_struct is made private
    /// once, as setns into a mount namespace requires). If the way back fails, the thread refuses
    /// every later spawn rather than start an unrelated workload inside another's namespace.
    /// </summary>
    internal static int SpawnIn(SafeFileHandle? ns, Func<int> spawn)
    {
        var state = t_spawner;
        if (state is { Stranded: true })
            throw new WorkloadLaunchException("the spawn thread could not return to the enforcer's mount namespace earlier; restart the enforcer");
        if (ns is null)
            return spawn();
        if (state is null)
        {
            if (Libc.Syscall(Libc.SYS_unshare, Libc.CLONE_FS, 0, 0) != 0)
                throw new WorkloadLaunchException($"unshare(CLONE_FS) on the spawn thread: {Errno.Describe(Libc.LastErrno)}");
            t_spawner = state = new SpawnerState(OpenOwn("/proc/thread-self/ns/mnt"));
        }
        using var cwd = OpenOwn(".");
        if (Libc.Syscall(SysSetns, ns.DangerousGetHandle(), CloneNewNs, 0) != 0)
            throw new WorkloadLaunchException($"setns into the workload's mount namespace: {Errno.Describe(Libc.LastErrno)}");
        try
        {
            return spawn();
        }
        finally
        {
            if (Libc.Syscall(SysSetns, state.Home.DangerousGetHandle(), CloneNewNs, 0) != 0
                || Libc.Syscall(SysFchdir, cwd.DangerousGetHandle(), 0, 0) != 0)
                state.Stranded = true;
        }
    }

    /// <summary>Closes the fd: the namespace ends with its last process.</summary>
    public void Dispose() => _handle.Dispose();

    private static SafeFileHandle OpenOwn(string path)
    {
        fixed (byte* p = Z(path))
        {
            int fd = Libc.Open(p, Libc.O_RDONLY | Libc.O_CLOEXEC | (path == "." ? Libc.O_PATH | Libc.O_DIRECTORY : 0), 0);
            if (fd < 0)
                throw new IOException($"open {path}: {Errno.Describe(Libc.LastErrno)}");
            return new SafeFileHandle(fd, ownsHandle: true);
        }
    }

    private static byte[] Z(string s)
    {
        if (s.Contains('\0'))
            throw new ArgumentException($"contains NUL: {s}");
        return Encoding.UTF8.GetBytes(s + "\0");
    }

    private sealed class SpawnerState(SafeFileHandle home)
    {
        internal SafeFileHandle Home { get; } = home;

        internal bool Stranded { get; set; }
    }
}
