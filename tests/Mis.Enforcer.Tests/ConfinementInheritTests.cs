using System.Text;
using Mis.Enforcer.Confinement;
using Mis.Enforcer.Policy;
using Mis.Native;

namespace Mis.Enforcer.Tests;

/// <summary>
/// What a workload could inherit from the enforcer (issue 11, class 4): its session keyring, the
/// keys of its uid, its controlling terminal, the operator's terminal; and what the kernel does on
/// the workload's behalf (core dumps). Each attack runs as <c>nobody</c> and as capless uid 0.
/// </summary>
public sealed class ConfinementInheritTests
{
    private const long SysAddKey = 248;
    private const long SysKeyctl = 250;
    private const int KeySpecSessionKeyring = -3;
    private const int KeySpecUserKeyring = -4;
    private const int KeyctlJoinSessionKeyring = 1;
    private const int KeyctlRevoke = 3;
    private const int KeyctlUnlink = 9;
    private const int KeyctlRead = 11;

    public static TheoryData<bool> BothIdentities => new() { false, true };

    private static WorkloadIdentity? IdentityOf(bool asRoot) => asRoot ? WorkloadIdentity.Root : null;

    /// <summary>
    /// A Python workload that tries every way to a key: search from @s and @u, read by serial, and
    /// link @u (by serial) into its own session keyring then search again. Prints one line each.
    /// </summary>
    private static string KeyThief(long serial, string description) => $$"""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        def call(*a):
            r = libc.syscall(*a)
            return f"{r} errno={ctypes.get_errno()}"
        buf = ctypes.create_string_buffer(256)
        d = b"{{description}}"
        print("search@s", call(250, 10, -3, b"user", d, 0))
        print("search@u", call(250, 10, -4, b"user", d, 0))
        print("read", call(250, 11, {{serial}}, buf, 255), buf.value)
        uring = libc.syscall(250, 0, -4, 0)
        print("link@u", call(250, 8, uring, -3))
        print("search-after-link", call(250, 10, -3, b"user", d, 0))
        print("read-again", call(250, 11, {{serial}}, buf, 255), buf.value)
        print("proc-keys", d.decode() in open("/proc/keys").read())
        """;

    [Theory]
    [MemberData(nameof(BothIdentities))]
    public void Workload_cannot_read_a_key_of_the_enforcers_session_keyring(bool asRoot)
    {
        using var h = new ConfinementHarness();
        string description = $"mis-test-session-{Environment.ProcessId}-{asRoot}";
        const string secret = "SESSIONKEYSECRET";
        // As an enforcer started from a login session (pam_keyinit): the thread that spawns every
        // launcher gets a session keyring of its own holding a key.
        long serial = SpawnThread.Run(() =>
        {
            Assert.True(Keyctl(KeyctlJoinSessionKeyring, 0, 0, 0) > 0, $"join: {Errno.Describe(Libc.LastErrno)}");
            return (int)AddKey(description, secret, KeySpecSessionKeyring);
        });
        Assert.True(serial > 0, $"add_key: {Errno.Describe(Libc.LastErrno)}");
        try
        {
            var run = h.Python(KeyThief(serial, description), IdentityOf(asRoot));
            Assert.True(run.Exit.ExitCode == 0, run.ToString());
            AssertEveryKeyOperationRefused(h, run.Stdout);
            Assert.DoesNotContain(secret, run.Stdout);
            string? after = null;
            SpawnThread.Run(() => (after = ReadKey(serial)).Length); // only that thread possesses it
            Assert.Equal(secret, after); // unchanged
        }
        finally
        {
            SpawnThread.Run(() => (int)Keyctl(KeyctlRevoke, serial, 0, 0));
        }
    }

    [Fact]
    public void As_root_workload_cannot_read_a_key_of_uid_0s_user_keyring()
    {
        using var h = new ConfinementHarness();
        // @u of uid 0 is shared by every root process on the host: a unique key, revoked after.
        string description = $"mis-test-user-{Environment.ProcessId}";
        const string secret = "USERKEYSECRET";
        long serial = AddKey(description, secret, KeySpecUserKeyring);
        Assert.True(serial > 0, $"add_key: {Errno.Describe(Libc.LastErrno)}");
        try
        {
            var run = h.Python(KeyThief(serial, description), WorkloadIdentity.Root);
            Assert.True(run.Exit.ExitCode == 0, run.ToString());
            AssertEveryKeyOperationRefused(h, run.Stdout);
            Assert.DoesNotContain(secret, run.Stdout);
            Assert.Equal(secret, ReadKey(serial));
        }
        finally
        {
            Keyctl(KeyctlUnlink, serial, KeySpecUserKeyring, 0);
            Keyctl(KeyctlRevoke, serial, 0, 0);
        }
    }

    [Theory]
    [MemberData(nameof(BothIdentities))]
    public void Crash_writes_no_core_file_into_a_write_protected_directory(bool asRoot)
    {
        using var h = new ConfinementHarness();
        // Writable by DAC, denied by policy: the kernel would write the core there itself.
        string protectedDir = Path.Combine(h.Dir, "protected");
        Directory.CreateDirectory(protectedDir);
        ConfinementHarness.Chmod(protectedDir, 0x1FF);
        h.Decider.DeniedWritePrefixes.Add(protectedDir);
        var run = h.Run(["/bin/sh", "-c", "ulimit -c unlimited; echo raise=$?; grep 'core file' /proc/self/limits; kill -SEGV $$"],
            IdentityOf(asRoot), cwd: protectedDir);
        Assert.True(run.Exit.Signal == 11, run.ToString());
        Assert.Empty(Directory.GetFileSystemEntries(protectedDir));
        Assert.DoesNotContain("raise=0", run.Stdout); // the hard limit is 0: no raising it
        Assert.Matches(@"Max core file size\s+0\s+0\s", run.Stdout);
    }

    [Theory]
    [MemberData(nameof(BothIdentities))]
    public void Dev_tty_fails_with_ENXIO_as_for_any_process_without_a_controlling_terminal(bool asRoot)
    {
        using var h = new ConfinementHarness();
        var run = h.Python("""
            import os
            for flags in (os.O_RDWR, os.O_RDONLY, os.O_WRONLY | os.O_NOCTTY):
                try:
                    os.open("/dev/tty", flags); print("opened")
                except OSError as e:
                    print("errno", e.errno)
            """, IdentityOf(asRoot));
        Assert.True(run.Exit.ExitCode == 0, run.ToString());
        Assert.Equal(3, run.Stdout.Split($"errno {Errno.ENXIO}").Length - 1);
        Assert.DoesNotContain("opened", run.Stdout);
        Assert.Empty(h.Sink.Reports); // the kernel's own answer, not a violation
    }

    [Theory]
    [MemberData(nameof(BothIdentities))]
    public void The_operators_pty_cannot_be_opened_and_what_was_typed_stays_unread(bool asRoot)
    {
        using var h = new ConfinementHarness();
        using var operatorPty = OperatorPty.Open();
        operatorPty.Type("OPERATOR-TYPED\n");
        var run = h.Python($$"""
            import os
            try:
                fd = os.open("{{operatorPty.SlavePath}}", os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
                print("opened", os.read(fd, 100))
            except OSError as e:
                print("errno", e.errno)
            """, IdentityOf(asRoot));
        Assert.True(run.Exit.ExitCode == 0, run.ToString());
        Assert.Contains($"errno {Errno.EPERM}", run.Stdout);
        var report = Assert.Single(h.Sink.Reports);
        Assert.Equal((ViolationOp.FileWrite, operatorPty.SlavePath), (report.Op, report.Target));
        Assert.Equal("OPERATOR-TYPED\n", operatorPty.ReadTyped()); // still there, unread
    }

    [Theory]
    [MemberData(nameof(BothIdentities))]
    public void The_workloads_own_ptys_work(bool asRoot)
    {
        using var h = new ConfinementHarness();
        var run = h.Python("""
            import os, fcntl, struct, pty
            m = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
            n = struct.unpack("i", fcntl.ioctl(m, 0x80045430, b"\0" * 4))[0]  # TIOCGPTN
            try:
                os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY)
            except OSError as e:
                print("locked errno", e.errno)  # as the kernel says before unlockpt
            fcntl.ioctl(m, 0x40045431, struct.pack("i", 0))  # TIOCSPTLCK: unlock
            s = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY)
            os.write(m, b"ping\n"); print("slave read", os.read(s, 100))
            again = os.open(f"/proc/self/fd/{s}", os.O_RDWR | os.O_NOCTTY)
            os.write(again, b"pong\n"); got = b""
            while b"pong" not in got:  # after the echo of ping
                got += os.read(m, 100)
            print("master read", got)
            a, b = os.openpty(); os.write(a, b"x\n"); print("openpty", os.read(b, 10))
            pid, fd = pty.fork()  # the child: setsid, the slave as its controlling terminal
            if pid == 0:
                t = os.open("/dev/tty", os.O_RDWR); os.write(t, b"child-tty-ok\n"); os._exit(0)
            out = b""
            while True:
                try:
                    d = os.read(fd, 100)
                except OSError:
                    break
                if not d:
                    break
                out += d
            os.waitpid(pid, 0)
            print("child", out)
            """, IdentityOf(asRoot));
        Assert.True(run.Exit.ExitCode == 0, run.ToString());
        Assert.Contains("locked errno 5\n", run.Stdout); // EIO
        Assert.Contains("slave read b'ping\\n'", run.Stdout);
        Assert.Contains("pong", run.Stdout);
        Assert.Contains("openpty b'x\\n'", run.Stdout);
        Assert.Contains("child-tty-ok", run.Stdout);
        Assert.Empty(h.Sink.Reports);
    }

    /// <summary>A pty of the test's own, standing for the operator's terminal (root-owned, as under sudo).</summary>
    private sealed unsafe class OperatorPty : IDisposable
    {
        private const ulong TIOCGPTN = 0x80045430;
        private const ulong TIOCSPTLCK = 0x40045431;
        private readonly int _master;
        private readonly int _slave;

        private OperatorPty(int master, int slave, string path) => (_master, _slave, SlavePath) = (master, slave, path);

        internal string SlavePath { get; }

        internal static OperatorPty Open()
        {
            int master;
            fixed (byte* p = "/dev/ptmx\0"u8)
                master = Libc.Open(p, Libc.O_RDWR | Libc.O_NOCTTY | Libc.O_CLOEXEC, 0);
            Assert.True(master >= 0, $"open /dev/ptmx: {Errno.Describe(Libc.LastErrno)}");
            int unlock = 0, index;
            Assert.Equal(0, Libc.Ioctl(master, TIOCSPTLCK, &unlock));
            Assert.Equal(0, Libc.Ioctl(master, TIOCGPTN, &index));
            string path = $"/dev/pts/{index}";
            byte[] name = Encoding.ASCII.GetBytes(path + "\0");
            int slave;
            fixed (byte* p = name)
                slave = Libc.Open(p, Libc.O_RDWR | Libc.O_NOCTTY | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
            Assert.True(slave >= 0, $"open {path}: {Errno.Describe(Libc.LastErrno)}");
            return new OperatorPty(master, slave, path);
        }

        internal void Type(string text)
        {
            byte[] bytes = Encoding.ASCII.GetBytes(text);
            fixed (byte* b = bytes)
                Assert.Equal(bytes.Length, (int)Libc.Write(_master, b, bytes.Length));
        }

        internal string ReadTyped()
        {
            byte[] buffer = new byte[256];
            nint n;
            fixed (byte* b = buffer)
                n = Libc.Read(_slave, b, buffer.Length);
            return n > 0 ? Encoding.ASCII.GetString(buffer, 0, (int)n) : $"(nothing: {Errno.Describe(Libc.LastErrno)})";
        }

        public void Dispose()
        {
            Libc.Close(_slave);
            Libc.Close(_master);
        }
    }

    private static void AssertEveryKeyOperationRefused(ConfinementHarness h, string stdout)
    {
        foreach (var op in new[] { "search@s", "search@u", "read", "link@u", "search-after-link", "read-again" })
            Assert.Contains($"{op} -1 errno={Errno.EPERM}", stdout);
        // Refused by the supervisor as escape-class syscalls: one violation per call (the script's 7 keyctl calls).
        Assert.Equal(7, h.Violations(ViolationOp.EscapeSyscall));
        Assert.All(h.Sink.Reports, r => Assert.Equal("keyctl", r.Target));
    }

    private static long AddKey(string description, string payload, int keyring)
    {
        byte[] type = Encoding.ASCII.GetBytes("user\0");
        byte[] desc = Encoding.ASCII.GetBytes(description + "\0");
        byte[] data = Encoding.ASCII.GetBytes(payload);
        unsafe
        {
            fixed (byte* t = type, d = desc, p = data)
                return Libc.Syscall(SysAddKey, (long)t, (long)d, (long)p, data.Length, keyring);
        }
    }

    private static string ReadKey(long serial)
    {
        byte[] buffer = new byte[256];
        unsafe
        {
            fixed (byte* b = buffer)
            {
                long n = Keyctl(KeyctlRead, serial, (long)b, buffer.Length);
                Assert.True(n >= 0, $"KEYCTL_READ: {Errno.Describe(Libc.LastErrno)}");
                return Encoding.ASCII.GetString(buffer, 0, (int)n);
            }
        }
    }

    private static long Keyctl(int op, long a, long b, long c) => Libc.Syscall(SysKeyctl, op, a, b, c);
}
