using Microsoft.Win32.SafeHandles;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>A pipe whose ends close on exec: handed to a workload only through <see cref="LaunchSpec"/>'s stdio.</summary>
public static unsafe class CloexecPipe
{
    /// <summary>pipe2(O_CLOEXEC).</summary>
    /// <exception cref="IOException">The kernel refused (the message has the errno).</exception>
    public static (SafeFileHandle Read, SafeFileHandle Write) Create()
    {
        int* fds = stackalloc int[2];
        if (Libc.Pipe2(fds, Libc.O_CLOEXEC) != 0)
            throw new IOException($"pipe2: {Errno.Describe(Libc.LastErrno)}");
        return (new SafeFileHandle(fds[0], ownsHandle: true), new SafeFileHandle(fds[1], ownsHandle: true));
    }
}
