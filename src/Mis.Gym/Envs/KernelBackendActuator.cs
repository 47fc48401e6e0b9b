using System.Globalization;
using Mis.Gym.Scenarios;

namespace Mis.Gym.Envs;

/// <summary>
/// The kernel backend's actuator: a python3 loop (run with <c>-I -S -u -c</c>, so it reads no file
/// but its interpreter's once, at startup, at DEFCON 5) that reads one command per line on stdin and
/// performs it as real syscalls, then writes <c>errno elapsed_ns</c> on stdout. Commands, fields
/// separated by tabs: <c>r PATH</c> (open, read 4 KiB, close), <c>w PATH</c> (open for writing,
/// write a line, close), <c>l PATH</c> (list the directory), <c>x PATH ARG…</c> (posix_spawn the
/// program, wait for it), <c>c ADDR PORT PROTO</c> (non-blocking socket + connect; in progress counts
/// as done), <c>s ADDR PORT PROTO</c> (connect, and a datagram for udp), <c>z MS</c> (sleep),
/// <c>n</c> (nothing: submit, and the start-up handshake).
/// </summary>
internal static class KernelBackendActuator
{
    /// <summary>The interpreter.</summary>
    internal const string Python = "/usr/bin/python3";

    /// <summary>The loop.</summary>
    internal const string Script = """
import os, sys, socket, time
inp = sys.stdin.buffer
out = sys.stdout.buffer
def run(p):
    k = p[0]
    if k == 'r':
        fd = os.open(p[1], os.O_RDONLY)
        try: os.read(fd, 4096)
        finally: os.close(fd)
    elif k == 'w':
        fd = os.open(p[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try: os.write(fd, b'mis gym\n')
        finally: os.close(fd)
    elif k == 'l':
        os.listdir(p[1])
    elif k == 'x':
        pid = os.posix_spawn(p[1], p[1:], {'PATH': '/usr/bin:/bin'})
        os.waitpid(pid, 0)
    elif k == 'c' or k == 's':
        fam = socket.AF_INET6 if ':' in p[1] else socket.AF_INET
        udp = p[3] == 'udp'
        s = socket.socket(fam, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            try: s.connect((p[1], int(p[2])))
            except BlockingIOError: pass
            if k == 's' and udp: s.send(b'mis gym')
        finally: s.close()
    elif k == 'z':
        time.sleep(int(p[1]) / 1000)
while True:
    line = inp.readline()
    if not line: break
    p = line.decode().rstrip('\n').split('\t')
    t = time.monotonic_ns()
    e = 0
    try: run(p)
    except OSError as x: e = x.errno or 0
    out.write(b'%d %d\n' % (e, time.monotonic_ns() - t))
    out.flush()
""";

    /// <summary>The command line that performs <paramref name="action"/>.</summary>
    internal static string Command(ScenarioAction action) => action.Kind switch
    {
        ActionKind.Read => $"r\t{action.Path}",
        ActionKind.Write => $"w\t{action.Path}",
        ActionKind.List => $"l\t{action.Path}",
        ActionKind.Exec => string.Join('\t', new[] { "x", action.Path! }.Concat(action.Args)),
        ActionKind.Connect or ActionKind.Send =>
            $"{(action.Kind == ActionKind.Connect ? 'c' : 's')}\t{action.Address}\t{action.Port.ToString(CultureInfo.InvariantCulture)}\t{action.Protocol.ToString().ToLowerInvariant()}",
        ActionKind.Wait => $"z\t{action.WaitMs.ToString(CultureInfo.InvariantCulture)}",
        _ => "n",
    };
}
