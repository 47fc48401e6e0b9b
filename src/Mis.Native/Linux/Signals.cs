using System.Runtime.InteropServices;

namespace Mis.Native;

/// <summary>
/// Signal numbers MIS sends or reads in exit statuses (x86-64 Linux), and kill(2).
/// <see cref="System.Runtime.InteropServices.PosixSignal"/> is for handling signals in this
/// process; these are the kernel's numbers, as a wait status or a syscall argument carries them.
/// </summary>
public static class Signals
{
    /// <summary>Killed: cannot be caught or ignored.</summary>
    public const int SIGKILL = 9;
    /// <summary>Termination request: what a service manager sends to stop a process.</summary>
    public const int SIGTERM = 15;

    /// <summary>
    /// kill(2): sends <paramref name="signal"/> to <paramref name="pid"/>. Returns 0, or the errno
    /// (<see cref="Errno.ESRCH"/> when the process is gone). The caller must know the PID still
    /// names the process it means (a frozen cgroup's member, an unreaped child): PIDs are reused.
    /// </summary>
    public static int Send(int pid, int signal) => Libc.Kill(pid, signal) == 0 ? 0 : Marshal.GetLastPInvokeError();
}
