using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>
/// Makes the calling thread, and only it, access files as the workload would: fsuid, fsgid and
/// supplementary groups switched to the workload's, and every effective capability dropped (so
/// CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_SYS_ADMIN ... do not apply; a uid-0
/// workload has none either). The kernel keeps credentials per thread; glibc's setgroups/setfsuid
/// wrappers broadcast to every thread of the process (the "setxid" mechanism), so this uses raw
/// syscalls. Only fs ids change, never the real/effective ids, so the thread keeps its right to
/// switch back (capabilities are restored from its permitted set).
/// </summary>
public sealed unsafe class ThreadCredentials
{
    private const uint CapabilityVersion3 = 0x20080522;
    private const int MaxGroups = 65536;

    private readonly uint _uid;
    private readonly uint _gid;
    private readonly uint[] _groups;

    [ThreadStatic] private static Saved? t_saved;

    /// <summary>The workload's identity to assume.</summary>
    internal ThreadCredentials(WorkloadCredentials credentials)
    {
        _uid = credentials.Uid;
        _gid = credentials.Gid;
        _groups = [.. credentials.Groups];
    }

    /// <summary>
    /// Switches this thread to the workload's credentials until the scope is disposed (on the same
    /// thread). Throws (with the thread unchanged or restored) when any step fails: opening as root
    /// instead would grant the workload more than it has.
    /// </summary>
    internal Scope Assume()
    {
        var saved = t_saved ??= Saved.Capture();
        try
        {
            if (!saved.HasGroups(_groups))
                fixed (uint* groups = _groups)
                    Check(Libc.Syscall(Libc.SYS_setgroups, _groups.Length, (long)groups, 0), "setgroups");
            Libc.Syscall(Libc.SYS_setfsgid, _gid, 0, 0);
            // setfsuid/setfsgid report the previous id; an invalid id (-1) changes nothing, so
            // calling it again reads back what is in force now.
            if ((uint)Libc.Syscall(Libc.SYS_setfsgid, -1, 0, 0) != _gid)
                throw new CredentialSwitchException($"setfsgid({_gid}) did not take effect");
            Libc.Syscall(Libc.SYS_setfsuid, _uid, 0, 0);
            if ((uint)Libc.Syscall(Libc.SYS_setfsuid, -1, 0, 0) != _uid)
                throw new CredentialSwitchException($"setfsuid({_uid}) did not take effect");
            SetCapabilities(0, saved.Permitted, saved.Inheritable);
        }
        catch
        {
            saved.Restore([]);
            throw;
        }
        return new Scope(saved, _groups);
    }

    /// <summary>
    /// Gives the calling thread the workload's supplementary groups for good (a thread that keeps
    /// every capability does not need its own), so each <see cref="Assume"/> on it saves two
    /// credential commits (setgroups there and back; each costs about as much as an open).
    /// Call once, first thing, on a thread dedicated to this workload.
    /// </summary>
    internal void AdoptGroups()
    {
        fixed (uint* groups = _groups)
            Check(Libc.Syscall(Libc.SYS_setgroups, _groups.Length, (long)groups, 0), "setgroups");
        t_saved = Saved.Capture();
    }

    /// <summary>Restores the thread's own credentials when disposed.</summary>
    public readonly ref struct Scope
    {
        private readonly Saved _saved;
        private readonly uint[] _assumed;

        internal Scope(Saved saved, uint[] assumed)
        {
            _saved = saved;
            _assumed = assumed;
        }

        /// <summary>Back to the thread's own credentials.</summary>
        public void Dispose() => _saved.Restore(_assumed);
    }

    private static void Check(long rc, string what)
    {
        if (rc != 0)
            throw new CredentialSwitchException($"{what}: {Errno.Describe(Libc.LastErrno)}");
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct CapHeader
    {
        public uint Version;
        public int Pid;
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct CapData
    {
        public uint Effective;
        public uint Permitted;
        public uint Inheritable;
    }

    private static void SetCapabilities(ulong effective, ulong permitted, ulong inheritable)
    {
        var header = new CapHeader { Version = CapabilityVersion3, Pid = 0 }; // pid 0: this thread
        CapData* data = stackalloc CapData[2];
        data[0] = new CapData { Effective = (uint)effective, Permitted = (uint)permitted, Inheritable = (uint)inheritable };
        data[1] = new CapData { Effective = (uint)(effective >> 32), Permitted = (uint)(permitted >> 32), Inheritable = (uint)(inheritable >> 32) };
        Check(Libc.Syscall(Libc.SYS_capset, (long)&header, (long)data, 0), "capset");
    }

    /// <summary>A thread's own credentials, captured the first time it assumes a workload's.</summary>
    public sealed class Saved
    {
        internal ulong Effective { get; private init; }
        internal ulong Permitted { get; private init; }
        internal ulong Inheritable { get; private init; }
        private uint FsUid { get; init; }
        private uint FsGid { get; init; }
        private uint[] Groups { get; init; } = [];

        internal static Saved Capture()
        {
            var header = new CapHeader { Version = CapabilityVersion3, Pid = 0 };
            CapData* data = stackalloc CapData[2];
            Check(Libc.Syscall(Libc.SYS_capget, (long)&header, (long)data, 0), "capget");
            uint[] groups = new uint[MaxGroups];
            long n;
            fixed (uint* g = groups)
                n = Libc.Syscall(Libc.SYS_getgroups, groups.Length, (long)g, 0);
            if (n < 0)
                throw new CredentialSwitchException($"getgroups: {Errno.Describe(Libc.LastErrno)}");
            return new Saved
            {
                Effective = data[0].Effective | ((ulong)data[1].Effective << 32),
                Permitted = data[0].Permitted | ((ulong)data[1].Permitted << 32),
                Inheritable = data[0].Inheritable | ((ulong)data[1].Inheritable << 32),
                FsUid = (uint)Libc.Syscall(Libc.SYS_setfsuid, -1, 0, 0),
                FsGid = (uint)Libc.Syscall(Libc.SYS_setfsgid, -1, 0, 0),
                Groups = groups[..(int)n],
            };
        }

        internal bool HasGroups(uint[] groups) => Groups.AsSpan().SequenceEqual(groups);

        /// <summary>
        /// Capabilities first: raising effective back from permitted needs none, and setgroups /
        /// setfsuid need CAP_SETGID / CAP_SETUID back in the effective set. Not read back: a
        /// restore that failed leaves the thread with less privilege, never more (what Assume
        /// verifies is the direction that matters).
        /// </summary>
        internal void Restore(uint[] assumed)
        {
            SetCapabilities(Effective, Permitted, Inheritable);
            Libc.Syscall(Libc.SYS_setfsuid, FsUid, 0, 0);
            Libc.Syscall(Libc.SYS_setfsgid, FsGid, 0, 0);
            if (!HasGroups(assumed))
                fixed (uint* g = Groups)
                    Check(Libc.Syscall(Libc.SYS_setgroups, Groups.Length, (long)g, 0), "setgroups (restore)");
        }
    }
}

/// <summary>A per-thread credential switch failed; the supervisor treats this as fatal for its workload.</summary>
public sealed class CredentialSwitchException(string message) : Exception(message);
