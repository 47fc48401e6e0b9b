# The kernel gym backend's actuator (src/Mis.Gym/Envs/KernelBackendActuator.cs embeds this file and
# runs it as `python3 -I -S -u -c SCRIPT`, so it reads no file but its interpreter's, once, at start-up,
# while the workload is still at DEFCON 5).
#
# Protocol: one command per line on stdin, fields separated by tabs; after each, one line on stdout:
# "ERRNO ELAPSED_NS" (0 when the operation succeeded, else the OSError's errno). Commands:
#   r PATH            open, read 4 KiB, close
#   w PATH            open for writing (create, truncate), write a line, close
#   l PATH            list the directory
#   x PATH ARG...     posix_spawn the program (its stdout is the actuator's stderr: what it prints
#                     must not pass for an answer), wait for it
#   c ADDR PORT PROTO non-blocking socket + connect (in progress counts as done), close
#   s ADDR PORT PROTO as c, and a datagram for udp
#   z MS              sleep
#   n                 nothing (submit, and the start-up handshake)
# End of input ends the loop.
#
# Each command is the real syscalls an action of that kind stands for: the simulator's default
# syscall costs (ActionKinds.DefaultSyscalls) count these, so change both together.
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
        pid = os.posix_spawn(p[1], p[1:], {'PATH': '/usr/bin:/bin'}, file_actions=[(os.POSIX_SPAWN_DUP2, 2, 1)])
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
