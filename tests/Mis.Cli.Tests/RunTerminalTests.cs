using System.Diagnostics;
using Mis.Testing;

namespace Mis.Cli.Tests;

/// <summary>
/// `mis run` started from an operator's terminal (a pty whose slave is mis's controlling
/// terminal) with stdin from /dev/null: what the operator types must not reach the workload,
/// neither through /dev/tty (the supervisor once opened it as itself: the enforcer's terminal)
/// nor through the terminal's /dev/pts/N name.
/// </summary>
public sealed class RunTerminalTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-run-tty-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // Forks with a new pty as the controlling terminal, types a line into it, runs the command
    // (with {TTY} replaced by the pty's slave path) with stdin /dev/null and output into a file.
    private const string Driver = """
        import os, pty, sys
        out_path, argv = sys.argv[1], sys.argv[2:]
        pid, master = pty.fork()
        if pid == 0:
            tty = os.ttyname(0)
            null = os.open("/dev/null", os.O_RDWR); os.dup2(null, 0)
            out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644); os.dup2(out, 1); os.dup2(out, 2)
            os.execvp(argv[0], [a.replace("{TTY}", tty) for a in argv])
        os.write(master, b"OPERATOR-TYPED\n")
        while True:  # drain the echo so the child never blocks on a full pty
            try:
                if not os.read(master, 1024):
                    break
            except OSError:
                break
        _, status = os.waitpid(pid, 0)
        print("exit", os.waitstatus_to_exitcode(status))
        """;

    private const string Workload = """
        import os
        for path in ("/dev/tty", "{TTY}"):
            try:
                fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
                try:
                    print(path, "read", os.read(fd, 100))
                except OSError as e:
                    print(path, "opened, read errno", e.errno)
            except OSError as e:
                print(path, "errno", e.errno)
        """;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void What_the_operator_types_does_not_reach_the_workload(bool asRoot)
    {
        HostRequirements.Root();
        HostRequirements.That(File.Exists("/sys/kernel/btf/vmlinux"), "no kernel BTF");
        string output = Path.Combine(_dir, "out.txt");
        string dotnet = Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in (string[])["-c", Driver, output, dotnet, Path.Combine(AppContext.BaseDirectory, "mis.dll"), "run",
                     .. (asRoot ? (string[])["--as-root"] : []), "--", "/usr/bin/python3", "-c", Workload])
            psi.ArgumentList.Add(arg);
        psi.Environment.Remove("MIS_CONFIG");
        using var driver = Process.Start(psi)!;
        string driverOut = driver.StandardOutput.ReadToEnd();
        Assert.True(driver.WaitForExit(TimeSpan.FromMinutes(2)), "mis run under a pty did not finish");
        string text = File.ReadAllText(output);
        Assert.True(driverOut.Contains("exit 0", StringComparison.Ordinal), $"{driverOut}{driver.StandardError.ReadToEnd()}\n{text}");
        Assert.DoesNotContain("OPERATOR-TYPED", text);
        Assert.Contains("/dev/tty errno 6", text); // ENXIO: the workload has no controlling terminal
        Assert.Matches(@"/dev/pts/\d+ errno 1\n", text); // EPERM: not a terminal of its own
        Assert.Matches(@"violations +1 \(file_write 1\)", text); // mis run's summary: the pts attempt, and only it
    }
}
