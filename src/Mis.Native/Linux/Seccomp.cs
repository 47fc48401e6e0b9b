using System.Runtime.InteropServices;

namespace Mis.Native;

/// <summary>seccomp facts probed from the kernel itself.</summary>
public static unsafe class Seccomp
{
    private const long GetActionAvail = 2; // SECCOMP_GET_ACTION_AVAIL
    private const uint RetUserNotif = 0x7fc00000; // SECCOMP_RET_USER_NOTIF

    /// <summary>
    /// Whether the kernel supports <c>SECCOMP_RET_USER_NOTIF</c>, asked with
    /// <c>seccomp(SECCOMP_GET_ACTION_AVAIL)</c>; the error (errno) when it does not.
    /// </summary>
    public static (bool Available, int Errno) UserNotificationAvailable()
    {
        uint action = RetUserNotif;
        long rc = Libc.Syscall(Libc.SYS_seccomp, GetActionAvail, 0, (long)&action);
        return rc == 0 ? (true, 0) : (false, Marshal.GetLastPInvokeError());
    }

    /// <summary>The actions the kernel lists in <c>/proc/sys/kernel/seccomp/actions_avail</c>.</summary>
    public static IReadOnlyList<string> ListedActions()
    {
        const string file = "/proc/sys/kernel/seccomp/actions_avail";
        return File.Exists(file) ? File.ReadAllText(file).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : [];
    }
}
