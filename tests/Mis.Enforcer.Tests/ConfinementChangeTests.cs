using Mis.Enforcer.Confinement;
using Mis.Enforcer.Policy;
using Mis.Testing;

namespace Mis.Enforcer.Tests;

/// <summary>
/// Every syscall that creates, removes, renames, links or changes a file or its metadata is
/// decided as a write on what it touches: against a write-protected tree the workload's own
/// identity could otherwise change (mode 0777/0666), each attempt fails with EPERM, counts as
/// exactly one violation, and leaves the tree as it was — for the default user and for --as-root.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ConfinementChangeTests
{
    /// <summary>Python that tries each change through its own syscall and prints "name errno=N" or "name ok".</summary>
    private static string Attacks(string prot, string pub) => $$"""
        import ctypes, os, socket, struct
        libc = ctypes.CDLL(None, use_errno=True)
        L = ctypes.c_long
        P, Q = "{{prot}}", "{{pub}}"
        def t(name, rc):
            print(name, "ok" if rc >= 0 else "errno=%d" % ctypes.get_errno(), flush=True)
        def sc(nr, *args):
            return libc.syscall(L(nr), *[L(a) if isinstance(a, int) else a for a in args])
        b = lambda s: s.encode()
        rd = os.open(P + "/keep.txt", os.O_RDONLY)
        opath = os.open(P + "/keep.txt", os.O_PATH)
        open(Q + "/mine", "w").write("mine")
        t("truncate", libc.truncate(b(P + "/keep.txt"), L(0)))
        t("unlink", libc.unlink(b(P + "/keep.txt")))
        t("unlinkat", sc(263, -100, b(P + "/keep.txt"), 0))
        t("rmdir", libc.rmdir(b(P + "/empty")))
        t("rename-out", libc.rename(b(P + "/keep.txt"), b(Q + "/stolen")))
        t("rename-over", libc.rename(b(Q + "/mine"), b(P + "/keep.txt")))
        t("rename-dir-away", libc.rename(b(P), b(Q + "/moved")))
        t("renameat2-exchange", sc(316, -100, b(Q + "/mine"), -100, b(P + "/keep.txt"), 2))
        t("link-out", libc.link(b(P + "/keep.txt"), b(Q + "/hard")))
        t("link-in", libc.link(b(Q + "/mine"), b(P + "/planted")))
        t("linkat-procfd", sc(265, -100, b("/proc/self/fd/%d" % rd), -100, b(Q + "/hard2"), 0x400))
        t("symlink", libc.symlink(b("/etc/passwd"), b(P + "/sl")))
        t("mkdir", libc.mkdir(b(P + "/d"), 0o777))
        t("mknod-fifo", libc.mknod(b(P + "/fifo"), 0o10666, L(0)))
        t("chmod", libc.chmod(b(P + "/keep.txt"), 0o777))
        t("fchmodat2-opath", sc(452, opath, b"", 0o777, 0x1000))
        t("fchmod-readonly-fd", libc.fchmod(rd, 0o777))
        t("chown", libc.chown(b(P + "/keep.txt"), -1, -1))
        t("fchownat-opath", sc(260, opath, b"", -1, -1, 0x1000))
        t("fchown-readonly-fd", libc.fchown(rd, -1, -1))
        t("lchown-symlink", libc.lchown(b(P + "/link"), -1, -1))
        t("utime", libc.utime(b(P + "/keep.txt"), None))
        t("utimes", libc.utimes(b(P + "/keep.txt"), None))
        t("utimensat-fd", sc(280, rd, None, None, 0))
        t("setxattr", libc.setxattr(b(P + "/keep.txt"), b"user.x", b"1", L(1), 0))
        t("fsetxattr-readonly-fd", libc.fsetxattr(rd, b"user.x", b"1", L(1), 0))
        t("removexattr", libc.removexattr(b(P + "/keep.txt"), b"user.pre"))
        t("fremovexattr-readonly-fd", libc.fremovexattr(rd, b"user.pre"))
        fa = ctypes.create_string_buffer(32)
        t("file_setattr", sc(469, -100, b(P + "/keep.txt"), fa, 24, 0))
        flags = ctypes.c_int(0)
        t("ioctl-setflags-readonly-fd", libc.ioctl(rd, L(0x40086602), ctypes.byref(flags)))
        s = socket.socket(socket.AF_UNIX)
        try:
            s.bind(P + "/sock"); print("bind-unix ok", flush=True)
        except OSError as e:
            print("bind-unix errno=%d" % e.errno, flush=True)
        os.chdir(P)
        t("relative-unlink", libc.unlink(b"keep.txt"))
        t("dotdot-rename", libc.rename(b("../pub/../prot/keep.txt"), b(Q + "/x")))
        """;

    private static readonly string[] AttackNames =
    [
        "truncate", "unlink", "unlinkat", "rmdir", "rename-out", "rename-over", "rename-dir-away", "renameat2-exchange",
        "link-out", "link-in", "linkat-procfd", "symlink", "mkdir", "mknod-fifo", "chmod", "fchmodat2-opath", "fchmod-readonly-fd",
        "chown", "fchownat-opath", "fchown-readonly-fd", "lchown-symlink", "utime", "utimes", "utimensat-fd", "setxattr",
        "fsetxattr-readonly-fd", "removexattr", "fremovexattr-readonly-fd", "file_setattr", "ioctl-setflags-readonly-fd",
        "bind-unix", "relative-unlink", "dotdot-rename",
    ];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Every_change_to_a_protected_tree_fails_with_EPERM_counts_once_and_changes_nothing(bool asRoot)
    {
        using var h = new ConfinementHarness();
        var tree = ProtectedTree.Create(h);
        h.Decider.DeniedWritePrefixes.Add(tree.Root);

        var run = h.Python(Attacks(tree.Root, h.Writable), asRoot ? WorkloadIdentity.Root : null);

        foreach (string name in AttackNames)
            Assert.True(run.Stdout.Contains($"{name} errno=1\n"), $"{name} was not refused with EPERM: {run}");
        Assert.Equal(AttackNames.Length, h.Violations(ViolationOp.FileWrite));
        Assert.Equal(AttackNames.Length, h.Sink.Reports.Count);
        tree.AssertUnchanged();
        Assert.False(File.Exists(Path.Combine(h.Writable, "stolen")) || File.Exists(Path.Combine(h.Writable, "hard")) || File.Exists(Path.Combine(h.Writable, "hard2")));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_same_changes_on_an_unprotected_tree_do_what_the_kernel_does(bool asRoot)
    {
        // Done by the supervisor as the workload: what DAC allows goes through, what it refuses
        // gets the kernel's own errno, and nothing is counted.
        using var h = new ConfinementHarness();
        var tree = ProtectedTree.Create(h);
        string code = $$"""
            import ctypes, os, socket
            libc = ctypes.CDLL(None, use_errno=True)
            L = ctypes.c_long
            P, Q = "{{tree.Root}}", "{{h.Writable}}"
            b = lambda s: s.encode()
            def t(name, rc):
                print(name, "ok" if rc >= 0 else "errno=%d" % ctypes.get_errno(), flush=True)
            open(Q + "/mine", "w").write("mine")
            rd = os.open(P + "/keep.txt", os.O_RDONLY)
            t("mkdir", libc.mkdir(b(P + "/d"), 0o777))
            t("symlink", libc.symlink(b"/etc/passwd", b(P + "/sl")))
            t("mknod-fifo", libc.mknod(b(P + "/fifo"), 0o10666, L(0)))
            t("link-in", libc.link(b(Q + "/mine"), b(P + "/planted")))
            t("truncate", libc.truncate(b(P + "/keep.txt"), L(3)))
            t("setxattr", libc.setxattr(b(P + "/keep.txt"), b"user.x", b"1", L(1), 0))
            t("utime", libc.utime(b(P + "/keep.txt"), None))
            t("utimensat-fd", libc.syscall(L(280), L(rd), None, None, L(0)))
            t("chmod", libc.chmod(b(P + "/keep.txt"), 0o640))
            t("fchown-readonly-fd", libc.fchown(rd, -1, -1))
            s = socket.socket(socket.AF_UNIX)
            s.bind(P + "/sock"); print("bind-unix ok", flush=True)
            t("rename-out", libc.rename(b(P + "/keep.txt"), b(Q + "/moved.txt")))
            t("unlink", libc.unlink(b(P + "/planted")))
            t("rmdir", libc.rmdir(b(P + "/empty")))
            t("rmdir-not-empty", libc.rmdir(b(P)))
            t("rename-dir-away", libc.rename(b(P), b(Q + "/tree")))
            """;
        var run = h.Python(code, asRoot ? WorkloadIdentity.Root : null);
        Assert.Empty(h.Sink.Reports);
        foreach (string name in new[] { "mkdir", "symlink", "mknod-fifo", "link-in", "truncate", "setxattr", "utime", "utimensat-fd", "fchown-readonly-fd", "bind-unix", "rename-out", "unlink", "rmdir" })
            Assert.True(run.Stdout.Contains($"{name} ok\n"), $"{name} did not go through: {run}");
        // The kernel's own answers: only the owner may chmod (root owns these files, nobody does
        // not); removing or renaming the tree needs write access to its parent (0755, root's).
        Assert.Contains(asRoot ? "chmod ok\n" : "chmod errno=1\n", run.Stdout);
        Assert.Contains(asRoot ? "rmdir-not-empty errno=39\n" : "rmdir-not-empty errno=13\n", run.Stdout); // ENOTEMPTY, EACCES
        Assert.Contains(asRoot ? "rename-dir-away ok\n" : "rename-dir-away errno=13\n", run.Stdout);
        string moved = asRoot ? Path.Combine(h.Writable, "tree") : tree.Root;
        Assert.Equal("ORI", File.ReadAllText(Path.Combine(h.Writable, "moved.txt")));
        Assert.Equal("/etc/passwd", new FileInfo(Path.Combine(moved, "sl")).LinkTarget);
        Assert.True(Directory.Exists(Path.Combine(moved, "d")) && File.Exists(Path.Combine(moved, "sock")) && File.Exists(Path.Combine(moved, "fifo")));
        Assert.Equal("1", Xattr.Get(Path.Combine(h.Writable, "moved.txt"), "user.x"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_workload_cannot_make_a_cgroup_of_its_own(bool asRoot)
    {
        // uid 0 owns the workload's cgroup directory: only the policy's write rule on cgroupfs stops
        // a child cgroup (and with it a way out of the cgroup's limits and DEFCON state).
        using var h = new ConfinementHarness();
        var run = h.Sh($"mkdir {h.Cgroup}/escape; echo rc=$?", asRoot ? WorkloadIdentity.Root : null);
        Assert.Contains("rc=1", run.Stdout);
        Assert.False(Directory.Exists(Path.Combine(h.Cgroup, "escape")));
        var report = Assert.Single(h.Sink.Reports);
        Assert.Equal((ViolationOp.FileWrite, Path.Combine(h.Cgroup, "escape")), (report.Op, report.Target));
    }

    [Fact]
    public void Created_files_directories_and_sockets_belong_to_the_workload_and_follow_its_umask()
    {
        using var h = new ConfinementHarness();
        var run = h.Sh($"umask 027; mkdir {h.Writable}/d && mknod {h.Writable}/p p && ln -s x {h.Writable}/s && " +
                       $"python3 -c \"import socket; socket.socket(socket.AF_UNIX).bind('{h.Writable}/sock')\" && stat -c '%U %a %n' {h.Writable}/d {h.Writable}/p {h.Writable}/sock");
        Assert.Equal(0, run.Exit.ExitCode);
        Assert.Contains($"nobody 750 {h.Writable}/d\n", run.Stdout);
        Assert.Contains($"nobody 640 {h.Writable}/p\n", run.Stdout);
        Assert.Contains($"nobody 750 {h.Writable}/sock\n", run.Stdout);
        Assert.Empty(h.Sink.Reports);
    }

    [Fact]
    public void A_renamed_tree_is_decided_file_by_file_and_a_protected_file_below_refuses_it()
    {
        using var h = new ConfinementHarness();
        string outer = Path.Combine(h.Writable, "outer");
        Directory.CreateDirectory(Path.Combine(outer, "a", "b"));
        File.WriteAllText(Path.Combine(outer, "a", "b", "deep.txt"), "deep");
        ConfinementHarness.Chmod(outer, 0x1FF);
        h.Decider.DeniedFiles.Add(FakeDecider.IdOf(Path.Combine(outer, "a", "b", "deep.txt")));
        var run = h.Sh($"mv -T {outer} {h.Writable}/elsewhere; echo rc=$?");
        Assert.Contains("rc=1", run.Stdout);
        Assert.True(File.Exists(Path.Combine(outer, "a", "b", "deep.txt")));
        var report = Assert.Single(h.Sink.Reports);
        Assert.Equal(Path.Combine(outer, "a", "b", "deep.txt"), report.Target);
    }

    /// <summary>A write-protected directory the workload's identity could change by DAC, with a file, an xattr, an empty subdirectory and a symlink.</summary>
    private sealed class ProtectedTree
    {
        internal required string Root { get; init; }
        private string Keep => Path.Combine(Root, "keep.txt");
        private DateTime _mtime;
        private UnixFileMode _mode;

        internal static ProtectedTree Create(ConfinementHarness h)
        {
            var tree = new ProtectedTree { Root = Path.Combine(h.Dir, "prot") };
            Directory.CreateDirectory(Path.Combine(tree.Root, "empty"));
            File.WriteAllText(tree.Keep, "ORIGINAL");
            File.CreateSymbolicLink(Path.Combine(tree.Root, "link"), tree.Keep);
            ConfinementHarness.Chmod(tree.Root, 0x1FF);
            ConfinementHarness.Chmod(Path.Combine(tree.Root, "empty"), 0x1FF);
            ConfinementHarness.Chmod(tree.Keep, 0x1B6); // 0666
            Xattr.Set(tree.Keep, "user.pre", "1");
            File.SetLastWriteTimeUtc(tree.Keep, new DateTime(2020, 1, 2, 3, 4, 5, DateTimeKind.Utc));
            tree._mtime = File.GetLastWriteTimeUtc(tree.Keep);
            tree._mode = File.GetUnixFileMode(tree.Keep);
            return tree;
        }

        internal void AssertUnchanged()
        {
            Assert.Equal("ORIGINAL", File.ReadAllText(Keep));
            Assert.Equal(_mode, File.GetUnixFileMode(Keep));
            Assert.Equal(_mtime, File.GetLastWriteTimeUtc(Keep));
            Assert.Equal("1", Xattr.Get(Keep, "user.pre"));
            Assert.Null(Xattr.Get(Keep, "user.x"));
            Assert.Equal(["empty", "keep.txt", "link"], Directory.GetFileSystemEntries(Root).Select(p => Path.GetFileName(p)!).Order().ToArray());
        }
    }

    private static class Xattr
    {
        [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "setxattr", SetLastError = true)]
        private static extern int SetXattr(string path, string name, byte[] value, nint size, int flags);

        [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "getxattr", SetLastError = true)]
        private static extern nint GetXattr(string path, string name, byte[] value, nint size);

        internal static void Set(string path, string name, string value)
        {
            byte[] bytes = System.Text.Encoding.UTF8.GetBytes(value);
            Assert.Equal(0, SetXattr(path, name, bytes, bytes.Length, 0));
        }

        internal static string? Get(string path, string name)
        {
            byte[] buffer = new byte[256];
            nint n = GetXattr(path, name, buffer, buffer.Length);
            return n < 0 ? null : System.Text.Encoding.UTF8.GetString(buffer, 0, (int)n);
        }
    }
}
