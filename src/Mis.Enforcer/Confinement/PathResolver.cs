using System.Text;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>How a path resolved: to an object, to a missing final name in a directory, or not at all.</summary>
public enum ResolveStatus
{
    /// <summary><see cref="Resolution.Fd"/> is an O_PATH fd of the object.</summary>
    Existing,
    /// <summary><see cref="Resolution.Fd"/> is the O_PATH parent directory; <see cref="Resolution.Name"/> does not exist in it.</summary>
    Missing,
    /// <summary>The workload would have got <see cref="Resolution.Errno"/>.</summary>
    Failed,
    /// <summary>The path led into another process's /proc magic links; <see cref="Resolution.Denied"/> says which.</summary>
    ProcDenied,
}

/// <summary>
/// The outcome of <see cref="PathResolver.Resolve"/>; the caller owns and closes <see cref="Fd"/>.
/// <see cref="Canonical"/>, when set, is what <see cref="PathResolver.CanonicalPath"/> would read
/// for <see cref="Fd"/>, known without asking the kernel.
/// </summary>
public readonly record struct Resolution(ResolveStatus Status, int Fd = -1, byte[]? Name = null, int Errno = 0, string? Denied = null, string? Canonical = null);

/// <summary>The notifying thread, with its thread group looked up only when a path needs it.</summary>
public sealed class WorkloadTask(int tid)
{
    private int? _tgid;

    /// <summary>The thread id from the notification.</summary>
    internal int Tid { get; } = tid;

    /// <summary>Its process id, or null when it is gone.</summary>
    internal int? Tgid => _tgid ??= ProcFacts.Tgid(Tid);
}

/// <summary>
/// Resolves a path exactly as the workload's own open would, but from the supervisor, which then
/// opens the result itself. The one thing that differs between the two is who "self" is: /proc's
/// "self" and "thread-self" symlinks, and every /proc/PID/fd|cwd|root magic link reached through
/// them, resolve relative to the thread doing the lookup — here the enforcer. Left alone,
/// "/dev/stdout" (→ /proc/self/fd/1) would be the enforcer's stdout, and worse, every same-thread-
/// group exemption in /proc (fd, mem, environ) would apply. So:
/// <list type="bullet">
/// <item>fast path: one openat2 with RESOLVE_NO_SYMLINKS; with no symlink on the way there is no
/// "self" and no magic link, and the answer is exactly the workload's;</item>
/// <item>otherwise a component-by-component walk, each step an O_PATH openat2 relative to the
/// previous fd (so nothing can be swapped behind it), symlinks read and spliced in user space,
/// "self"/"thread-self" under the /proc root replaced by the workload's pid/tid, and magic links
/// followed by the kernel only from the /proc entry of a process in the workload's own cgroup.</item>
/// </list>
/// The caller runs this under <see cref="ThreadCredentials"/>, so every permission check on the
/// way (search permission, ptrace access to /proc entries) is made with the workload's identity.
/// </summary>
public sealed unsafe class PathResolver
{
    private const int MaxSymlinks = 40; // the kernel's MAXSYMLINKS
    private const ulong ProcRootInode = 1;
    private const ulong ResolveCached = 0x20; // its EAGAIN is the answer, not a race

    private static readonly byte[] Dot = ".\0"u8.ToArray();
    private static readonly byte[] Task = "task\0"u8.ToArray();

    private readonly int _rootFd;
    private readonly int _selfFdDir;
    private readonly ulong _procDev;
    private readonly Func<int, bool> _inWorkload;

    /// <param name="rootFd">O_PATH fd of the workload's root, its /proc/PID/root (it cannot chroot: chroot and pivot_root are denied).</param>
    /// <param name="selfFdDir">O_PATH fd of the enforcer's /proc/self/fd (names of our own fds, without walking /proc/self each time).</param>
    /// <param name="procDev">st_dev of /proc.</param>
    /// <param name="inWorkload">Whether a pid belongs to the workload's cgroup.</param>
    internal PathResolver(int rootFd, int selfFdDir, ulong procDev, Func<int, bool> inWorkload)
    {
        _rootFd = rootFd;
        _selfFdDir = selfFdDir;
        _procDev = procDev;
        _inWorkload = inWorkload;
    }

    /// <summary>
    /// Resolves <paramref name="path"/> (NUL-terminated bytes) relative to <paramref name="startFd"/>.
    /// <paramref name="finalFlags"/> is the O_PATH open of the final component (O_NOFOLLOW means do
    /// not follow a final symlink; O_DIRECTORY demands a directory); <paramref name="resolve"/> the
    /// workload's RESOLVE_* flags; with <paramref name="create"/> a missing final name is reported as
    /// <see cref="ResolveStatus.Missing"/> instead of ENOENT.
    /// </summary>
    internal Resolution Resolve(int startFd, byte[] path, int finalFlags, ulong resolve, bool create, WorkloadTask task)
    {
        ulong confined = resolve & (Libc.RESOLVE_BENEATH | Libc.RESOLVE_IN_ROOT);
        if (confined != 0)
            return ResolveConfined(startFd, path, finalFlags, resolve, create);

        int fd, e;
        // An absolute path starts at the workload's root, which is not ours when the workload has a
        // mount namespace of its own: the kernel would start it at the enforcer's root whatever the
        // dirfd, so it is resolved beneath the root fd instead (RESOLVE_IN_ROOT: "/" and ".." stop
        // there, as they do for the workload). EAGAIN: a rename or mount raced a "..", try again.
        bool absolute = path[0] == '/';
        var how = new Libc.OpenHow
        {
            Flags = (ulong)finalFlags,
            Resolve = resolve | Libc.RESOLVE_NO_SYMLINKS | (absolute ? Libc.RESOLVE_IN_ROOT : 0),
        };
        int tries = 0;
        do
        {
            fixed (byte* p = path)
                fd = Libc.OpenAt2(absolute ? _rootFd : startFd, p, how);
            e = fd >= 0 ? 0 : Libc.LastErrno;
        }
        while (e == Errno.EAGAIN && absolute && (resolve & ResolveCached) == 0 && ++tries < 8);
        if (fd >= 0)
            return new Resolution(ResolveStatus.Existing, fd, Canonical: absolute ? NameIfCanonical(path) : null);
        bool symlinkOnTheWay = e == Errno.ELOOP && (resolve & Libc.RESOLVE_NO_SYMLINKS) == 0;
        if (!symlinkOnTheWay && !(e == Errno.ENOENT && create))
            return new Resolution(ResolveStatus.Failed, Errno: e);
        if (symlinkOnTheWay && absolute && FollowedByKernel(path, finalFlags, resolve) is int followed)
            return new Resolution(ResolveStatus.Existing, followed);
        return Walk(startFd, path, finalFlags, resolve, create, task);
    }

    /// <summary>
    /// The second try for an absolute path with a symlink on the way (/lib -> usr/lib on a merged
    /// /usr: every dynamic library): the kernel follows the symlinks itself, beneath the
    /// workload's root, with magic links refused. "self" is the one thing it would resolve as the
    /// enforcer, and it lies in /proc; every way out of /proc is a magic link. So an object that
    /// is not on /proc was reached exactly as the workload would reach it. Null: walk instead (a
    /// magic link, an object on /proc, or any failure, which the walk reports as it should).
    /// </summary>
    private int? FollowedByKernel(byte[] path, int finalFlags, ulong resolve)
    {
        var how = new Libc.OpenHow
        {
            Flags = (ulong)finalFlags,
            Resolve = resolve | Libc.RESOLVE_NO_MAGICLINKS | Libc.RESOLVE_IN_ROOT,
        };
        int fd, tries = 0;
        do
        {
            fixed (byte* p = path)
                fd = Libc.OpenAt2(_rootFd, p, how);
        }
        while (fd < 0 && Libc.LastErrno == Errno.EAGAIN && (resolve & ResolveCached) == 0 && ++tries < 8);
        if (fd < 0)
            return null;
        Libc.Stat st;
        if (Libc.FStat(fd, &st) == 0 && st.Dev != _procDev)
            return fd;
        Libc.Close(fd);
        return null;
    }

    private Resolution Walk(int startFd, byte[] path, int finalFlags, ulong resolve, bool create, WorkloadTask task)
    {
        var pending = new Stack<byte[]>();
        PushComponents(pending, path.AsSpan(0, Array.IndexOf(path, (byte)0)), final: true);
        int cur = path[0] == '/' ? _rootFd : startFd;
        bool owned = false;
        int links = 0;
        ulong xdev = resolve & Libc.RESOLVE_NO_XDEV;
        try
        {
            while (pending.TryPop(out var c))
            {
                bool last = pending.Count == 0;
                if (c.Length == 2 && c[0] == '.' && !last)
                    continue;
                if (IsSelf(c, out bool thread) && IsProcRoot(cur))
                {
                    // The workload's "self", not ours.
                    if (task.Tgid is not int tgid)
                        return new Resolution(ResolveStatus.Failed, Errno: Errno.ESRCH);
                    if (thread)
                    {
                        pending.Push(Z(task.Tid));
                        pending.Push(Task);
                    }
                    pending.Push(Z(tgid));
                    continue;
                }

                int flags = last ? finalFlags : Libc.O_PATH | Libc.O_CLOEXEC | Libc.O_DIRECTORY;
                int fd = OpenAt2(cur, c, flags, Libc.RESOLVE_NO_SYMLINKS | xdev);
                if (fd >= 0)
                {
                    if (last)
                        return new Resolution(ResolveStatus.Existing, fd);
                    Step(ref cur, ref owned, fd, takeOwnership: true);
                    continue;
                }
                int e = Libc.LastErrno;
                if (last && e == Errno.ENOENT && create && !IsDotOrDotDot(c))
                {
                    int parent = owned ? cur : Libc.Dup(cur);
                    owned = false;
                    return parent < 0 ? new Resolution(ResolveStatus.Failed, Errno: Libc.LastErrno) : new Resolution(ResolveStatus.Missing, parent, c);
                }
                bool following = !last || (finalFlags & Libc.O_NOFOLLOW) == 0;
                if (e != Errno.ELOOP || !following || (resolve & Libc.RESOLVE_NO_SYMLINKS) != 0)
                    return new Resolution(ResolveStatus.Failed, Errno: e);
                if (++links > MaxSymlinks)
                    return new Resolution(ResolveStatus.Failed, Errno: Errno.ELOOP);

                Libc.Stat st;
                if (Libc.FStat(cur, &st) != 0)
                    return new Resolution(ResolveStatus.Failed, Errno: Libc.LastErrno);
                if (st.Dev == _procDev && st.Ino != ProcRootInode)
                {
                    // A magic link (/proc/PID/fd/N, cwd, root, exe, ns/*): it has no text to
                    // splice, only the kernel can follow it — and only from a process of the
                    // workload's own, or the supervisor would lend it its ptrace relationship.
                    if ((resolve & Libc.RESOLVE_NO_MAGICLINKS) != 0)
                        return new Resolution(ResolveStatus.Failed, Errno: Errno.ELOOP);
                    int owner = ProcOwner(cur);
                    if (owner <= 0 || !_inWorkload(owner))
                        return new Resolution(ResolveStatus.ProcDenied, Denied: $"{CanonicalPath(cur)}/{Encoding.UTF8.GetString(c, 0, c.Length - 1)}");
                    fd = OpenAt2(cur, c, last ? finalFlags & ~Libc.O_NOFOLLOW : Libc.O_PATH | Libc.O_CLOEXEC, xdev);
                    if (fd < 0)
                        return new Resolution(ResolveStatus.Failed, Errno: Libc.LastErrno);
                    if (last)
                        return new Resolution(ResolveStatus.Existing, fd);
                    Step(ref cur, ref owned, fd, takeOwnership: true);
                    continue;
                }

                byte[]? target = ReadLink(cur, c, out e);
                if (target is null)
                    return new Resolution(ResolveStatus.Failed, Errno: e);
                if (target.Length == 0)
                    return new Resolution(ResolveStatus.Failed, Errno: Errno.ENOENT);
                if (target[0] == '/')
                    Step(ref cur, ref owned, _rootFd, takeOwnership: false);
                PushComponents(pending, target, final: last);
            }
            return new Resolution(ResolveStatus.Failed, Errno: Errno.ENOENT); // unreachable: a final component is always pushed
        }
        finally
        {
            if (owned)
                Libc.Close(cur);
        }
    }

    /// <summary>
    /// RESOLVE_BENEATH / RESOLVE_IN_ROOT: the kernel keeps the walk inside the start directory;
    /// reproducing that in user space is not worth its risk, so the kernel resolves it with magic
    /// links refused. A "self" met inside /proc then names the enforcer, which the caller's
    /// /proc check refuses (documented limitation).
    /// </summary>
    private static Resolution ResolveConfined(int startFd, byte[] path, int finalFlags, ulong resolve, bool create)
    {
        ulong how = resolve | Libc.RESOLVE_NO_MAGICLINKS;
        int fd;
        fixed (byte* p = path)
            fd = Libc.OpenAt2(startFd, p, new Libc.OpenHow { Flags = (ulong)finalFlags, Resolve = how });
        if (fd >= 0)
            return new Resolution(ResolveStatus.Existing, fd);
        int e = Libc.LastErrno;
        int length = Array.IndexOf(path, (byte)0);
        int slash = Array.LastIndexOf(path, (byte)'/', Math.Max(length - 1, 0));
        if (e != Errno.ENOENT || !create || length == 0 || path[length - 1] == '/')
            return new Resolution(ResolveStatus.Failed, Errno: e);
        byte[] dir = slash < 0 ? Dot : [.. path.AsSpan(0, slash == 0 ? 1 : slash), 0];
        byte[] name = [.. path.AsSpan(slash + 1, length - slash - 1), 0];
        fixed (byte* d = dir)
            fd = Libc.OpenAt2(startFd, d, new Libc.OpenHow { Flags = Libc.O_PATH | Libc.O_CLOEXEC | Libc.O_DIRECTORY, Resolve = how });
        if (fd < 0)
            return new Resolution(ResolveStatus.Failed, Errno: Libc.LastErrno);
        return IsDotOrDotDot(name) ? new Resolution(ResolveStatus.Failed, Errno: e) : new Resolution(ResolveStatus.Missing, fd, name);
    }

    /// <summary>
    /// An absolute path that was resolved with no symlink on the way and has no empty, "." or ".."
    /// component names its object exactly as d_path would: each component was looked up by that
    /// name in the directory the previous one named. Saves the readlink of /proc/self/fd/N (about
    /// 3 µs) on the most frequent open. Null for any other path.
    /// </summary>
    private static string? NameIfCanonical(byte[] path)
    {
        int length = Array.IndexOf(path, (byte)0);
        if (length < 2 || path[length - 1] == '/')
            return null;
        var name = path.AsSpan(0, length);
        if (name.IndexOf("//"u8) >= 0 || name.IndexOf("/./"u8) >= 0 || name.IndexOf("/../"u8) >= 0
            || name.EndsWith("/."u8) || name.EndsWith("/.."u8))
            return null;
        return Encoding.UTF8.GetString(name);
    }

    /// <summary>The canonical path of one of our fds, as /proc/self/fd/N names it (d_path: "(deleted)" suffix and all).</summary>
    internal string CanonicalPath(int fd)
    {
        byte* name = stackalloc byte[16];
        FdName(fd, name);
        byte* buffer = stackalloc byte[ProcFacts.PathMax];
        nint n = Libc.ReadLinkAt(_selfFdDir, name, buffer, ProcFacts.PathMax);
        return n < 0 ? $"?fd:{Errno.Name(Libc.LastErrno)}" : Encoding.UTF8.GetString(buffer, (int)n);
    }

    /// <summary>Writes the decimal fd number and a NUL (what /proc/self/fd lists it as).</summary>
    internal static void FdName(int fd, byte* name)
    {
        Span<byte> digits = new(name, 15);
        ((uint)fd).TryFormat(digits, out int written, default, System.Globalization.CultureInfo.InvariantCulture);
        name[written] = 0;
    }

    /// <summary>N of a directory /proc/N or /proc/N/..., or 0.</summary>
    private int ProcOwner(int dirFd) => ProcPid(CanonicalPath(dirFd), out _);

    /// <summary>N and the rest ("mem", "task/5/fd", "" ...) of a canonical "/proc/N[/rest]", or 0.</summary>
    internal static int ProcPid(string canonical, out string rest)
    {
        rest = "";
        if (!canonical.StartsWith("/proc/", StringComparison.Ordinal))
            return 0;
        int end = canonical.IndexOf('/', 6);
        var digits = end < 0 ? canonical.AsSpan(6) : canonical.AsSpan(6, end - 6);
        if (digits.IsEmpty || !int.TryParse(digits, System.Globalization.NumberStyles.None, null, out int pid))
            return 0;
        rest = end < 0 ? "" : canonical[(end + 1)..];
        return pid;
    }

    private bool IsProcRoot(int fd)
    {
        Libc.Stat st;
        return Libc.FStat(fd, &st) == 0 && st.Dev == _procDev && st.Ino == ProcRootInode;
    }

    private void Step(ref int cur, ref bool owned, int next, bool takeOwnership)
    {
        if (owned)
            Libc.Close(cur);
        cur = next;
        owned = takeOwnership;
    }

    private static int OpenAt2(int dirFd, byte[] name, int flags, ulong resolve)
    {
        fixed (byte* n = name)
            return Libc.OpenAt2(dirFd, n, new Libc.OpenHow { Flags = (ulong)flags, Resolve = resolve });
    }

    private static byte[]? ReadLink(int dirFd, byte[] name, out int errno)
    {
        byte[] buffer = new byte[ProcFacts.PathMax];
        nint n;
        fixed (byte* nm = name)
        fixed (byte* b = buffer)
            n = Libc.ReadLinkAt(dirFd, nm, b, buffer.Length);
        errno = n < 0 ? Libc.LastErrno : n >= buffer.Length ? Errno.ENAMETOOLONG : 0;
        return errno != 0 ? null : buffer[..(int)n];
    }

    /// <summary>Pushes the components of <paramref name="path"/> (no NUL) so that they pop in order; each NUL-terminated.</summary>
    private static void PushComponents(Stack<byte[]> pending, ReadOnlySpan<byte> path, bool final)
    {
        var parts = new List<byte[]>();
        foreach (var range in path.Split((byte)'/'))
            if (range.End.Value > range.Start.Value)
                parts.Add([.. path[range], 0]);
        // "dir/" and "/" must name a directory and follow a final symlink: a final "." does both.
        if (final && (parts.Count == 0 || path[^1] == '/'))
            parts.Add(Dot);
        for (int i = parts.Count - 1; i >= 0; i--)
            pending.Push(parts[i]);
    }

    private static bool IsSelf(byte[] c, out bool thread)
    {
        var name = c.AsSpan(0, c.Length - 1);
        thread = name.SequenceEqual("thread-self"u8);
        return thread || name.SequenceEqual("self"u8);
    }

    private static bool IsDotOrDotDot(byte[] c) =>
        c.AsSpan(0, c.Length - 1) is [(byte)'.'] or [(byte)'.', (byte)'.'];

    private static byte[] Z(int number) => Encoding.ASCII.GetBytes(number.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\0");
}
