using System.Runtime.InteropServices;

namespace Mis.Native;

/// <summary>
/// seccomp user notification (linux/seccomp.h): the listener's ioctls and structs. The kernel's
/// struct sizes are asked with SECCOMP_GET_NOTIF_SIZES; the layouts here are the first versions,
/// which every later version extends at the end.
/// </summary>
public static unsafe class SeccompNotify
{
    internal const ulong IoctlRecv = 0xc0502100;    // SECCOMP_IOCTL_NOTIF_RECV
    internal const ulong IoctlSend = 0xc0182101;    // SECCOMP_IOCTL_NOTIF_SEND
    internal const ulong IoctlIdValid = 0x40082102; // SECCOMP_IOCTL_NOTIF_ID_VALID
    internal const ulong IoctlAddFd = 0x40182103;   // SECCOMP_IOCTL_NOTIF_ADDFD
    internal const ulong IoctlSetFlags = 0x40082104; // SECCOMP_IOCTL_NOTIF_SET_FLAGS
    private const ulong FdSyncWakeUp = 1;            // SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
    public const uint FlagContinue = 1;           // SECCOMP_USER_NOTIF_FLAG_CONTINUE
    internal const uint AddFdFlagSend = 2;          // SECCOMP_ADDFD_FLAG_SEND
    private const long GetNotifSizes = 3;           // SECCOMP_GET_NOTIF_SIZES

    /// <summary>struct seccomp_notif with its struct seccomp_data.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Notification
    {
        public ulong Id;
        public uint Pid;
        public uint Flags;
        public int Nr;
        public uint Arch;
        public ulong InstructionPointer;
        public fixed ulong Args[6];
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Response
    {
        public ulong Id;
        public long Value;
        public int Error;
        public uint Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct AddFd
    {
        public ulong Id;
        public uint Flags;
        public uint SourceFd;
        public uint NewFd;
        public uint NewFdFlags;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Sizes
    {
        public ushort Notification;
        public ushort Response;
        public ushort Data;
    }

    /// <summary>The kernel's sizes of struct seccomp_notif and seccomp_notif_resp.</summary>
    public static (int Notification, int Response) KernelSizes()
    {
        Sizes sizes;
        if (Libc.Syscall(Libc.SYS_seccomp, GetNotifSizes, 0, (long)&sizes) != 0)
            throw new IOException($"seccomp(SECCOMP_GET_NOTIF_SIZES): {Errno.Describe(Libc.LastErrno)}");
        return (sizes.Notification, sizes.Response);
    }

    /// <summary>Receives one notification into <paramref name="buffer"/> (zeroed first, as the kernel demands); 0 or errno.</summary>
    public static int Receive(int listener, byte* buffer, int size)
    {
        new Span<byte>(buffer, size).Clear();
        return Libc.Ioctl(listener, IoctlRecv, buffer) == 0 ? 0 : Libc.LastErrno;
    }

    /// <summary>Asks for synchronous wake-ups between supervisor and workload (6.6+); false where unsupported.</summary>
    public static bool SetSyncWakeUp(int listener)
    {
        ulong flags = FdSyncWakeUp;
        return Libc.Ioctl(listener, IoctlSetFlags, (void*)flags) == 0;
    }

    /// <summary>Whether the notification is still pending (its task alive and still waiting).</summary>
    public static bool IdValid(int listener, ulong id) => Libc.Ioctl(listener, IoctlIdValid, &id) == 0;

    /// <summary>Answers a notification; 0 or errno (ENOENT: the task is gone or was interrupted).</summary>
    public static int Respond(int listener, byte* buffer, int size, in Response response)
    {
        var span = new Span<byte>(buffer, size);
        span.Clear();
        MemoryMarshal.Write(span, in response);
        return Libc.Ioctl(listener, IoctlSend, buffer) == 0 ? 0 : Libc.LastErrno;
    }

    /// <summary>
    /// Installs <paramref name="fd"/> in the notifying task and makes the new fd number the
    /// syscall's return value, atomically (SECCOMP_ADDFD_FLAG_SEND). Returns the new fd or -errno.
    /// </summary>
    public static int AddFdAndSend(int listener, ulong id, int fd, bool closeOnExec) => AddFdTo(listener, id, fd, closeOnExec, AddFdFlagSend);

    /// <summary>
    /// Installs <paramref name="fd"/> in the notifying task, which goes on waiting for the answer
    /// (<see cref="Respond"/> with the returned number as the value). Returns the new fd or -errno.
    /// </summary>
    public static int AddFdOnly(int listener, ulong id, int fd, bool closeOnExec) => AddFdTo(listener, id, fd, closeOnExec, 0);

    private static int AddFdTo(int listener, ulong id, int fd, bool closeOnExec, uint flags)
    {
        var addFd = new AddFd
        {
            Id = id, Flags = flags, SourceFd = (uint)fd, NewFd = 0,
            NewFdFlags = closeOnExec ? (uint)Libc.O_CLOEXEC : 0,
        };
        int rc = Libc.Ioctl(listener, IoctlAddFd, &addFd);
        return rc >= 0 ? rc : -Libc.LastErrno;
    }
}
