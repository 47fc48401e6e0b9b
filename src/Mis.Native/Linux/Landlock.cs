using System.Runtime.InteropServices;

namespace Mis.Native;

/// <summary>Landlock facts probed from the kernel itself.</summary>
public static class Landlock
{
    private const long CreateRulesetVersion = 1; // LANDLOCK_CREATE_RULESET_VERSION

    /// <summary>
    /// The Landlock ABI version (1 and up), or 0 with the errno when Landlock is unavailable
    /// (ENOSYS: not built in; EOPNOTSUPP: built in but not enabled at boot).
    /// </summary>
    public static (int Abi, int Errno) AbiVersion()
    {
        long rc = Libc.Syscall(Libc.SYS_landlock_create_ruleset, 0, 0, CreateRulesetVersion);
        return rc > 0 ? ((int)rc, 0) : (0, Marshal.GetLastPInvokeError());
    }
}
