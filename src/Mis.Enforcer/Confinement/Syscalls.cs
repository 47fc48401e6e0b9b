namespace Mis.Enforcer.Confinement;

/// <summary>
/// The x86-64 syscall numbers the launcher's filter sends to the supervisor
/// (native/launcher/filter.c is the other half; keep both in step).
/// </summary>
public static class Syscalls
{
    internal const int Ioctl = 16;
    internal const int Open = 2;
    internal const int Execve = 59;
    internal const int Kill = 62;
    internal const int Fcntl = 72;
    internal const int Creat = 85;
    internal const int RtSigqueueinfo = 129;
    internal const int Setpriority = 141;
    internal const int SchedSetparam = 142;
    internal const int SchedSetscheduler = 144;
    internal const int Tkill = 200;
    internal const int SchedSetaffinity = 203;
    internal const int Tgkill = 234;
    internal const int IoprioSet = 251;
    internal const int Openat = 257;
    internal const int RtTgsigqueueinfo = 297;
    internal const int Prlimit64 = 302;
    internal const int SchedSetattr = 314;
    internal const int Execveat = 322;
    internal const int PidfdSendSignal = 424;
    internal const int PidfdOpen = 434;
    internal const int Openat2 = 437;
    internal const int PidfdGetfd = 438;

    // Changes to the file tree and to files' metadata (SeccompSupervisor.Changes.cs).
    internal const int Socket = 41;
    internal const int Socketpair = 53;
    internal const int Bind = 49;
    internal const int Truncate = 76;
    internal const int Rename = 82;
    internal const int Mkdir = 83;
    internal const int Rmdir = 84;
    internal const int Link = 86;
    internal const int Unlink = 87;
    internal const int Symlink = 88;
    internal const int Chmod = 90;
    internal const int Fchmod = 91;
    internal const int Chown = 92;
    internal const int Fchown = 93;
    internal const int Lchown = 94;
    internal const int Utime = 132;
    internal const int Mknod = 133;
    internal const int Setxattr = 188;
    internal const int Lsetxattr = 189;
    internal const int Fsetxattr = 190;
    internal const int Removexattr = 197;
    internal const int Lremovexattr = 198;
    internal const int Fremovexattr = 199;
    internal const int Utimes = 235;
    internal const int Mkdirat = 258;
    internal const int Mknodat = 259;
    internal const int Fchownat = 260;
    internal const int Futimesat = 261;
    internal const int Unlinkat = 263;
    internal const int Renameat = 264;
    internal const int Linkat = 265;
    internal const int Symlinkat = 266;
    internal const int Fchmodat = 268;
    internal const int Utimensat = 280;
    internal const int Renameat2 = 316;
    internal const int Fchmodat2 = 452;
    internal const int Setxattrat = 463;
    internal const int Removexattrat = 466;
    internal const int FileSetattr = 469;

    /// <summary>ioctl commands that change a file's attributes through any descriptor of it (FS_IOC_SETFLAGS, FS_IOC_FSSETXATTR, FS_IOC_SETVERSION and 32-bit twins).</summary>
    internal const uint FsIocSetflags = 0x40086602, FsIoc32Setflags = 0x40046602, FsIocFssetxattr = 0x401c5820,
        FsIocSetversion = 0x40087602, FsIoc32Setversion = 0x40047602;

    /// <summary>Whether an ioctl command is one of those.</summary>
    internal static bool ChangesFile(uint ioctl) =>
        ioctl is FsIocSetflags or FsIoc32Setflags or FsIocFssetxattr or FsIocSetversion or FsIoc32Setversion;

    /// <summary>Syscalls that create, remove, rename, link or change a file or its metadata, by name.</summary>
    internal static readonly IReadOnlyDictionary<int, string> FileChanges = new Dictionary<int, string>
    {
        [Bind] = "bind", [Truncate] = "truncate", [Rename] = "rename", [Mkdir] = "mkdir", [Rmdir] = "rmdir",
        [Link] = "link", [Unlink] = "unlink", [Symlink] = "symlink", [Chmod] = "chmod", [Fchmod] = "fchmod",
        [Chown] = "chown", [Fchown] = "fchown", [Lchown] = "lchown", [Utime] = "utime", [Mknod] = "mknod",
        [Setxattr] = "setxattr", [Lsetxattr] = "lsetxattr", [Fsetxattr] = "fsetxattr", [Removexattr] = "removexattr",
        [Lremovexattr] = "lremovexattr", [Fremovexattr] = "fremovexattr", [Utimes] = "utimes", [Mkdirat] = "mkdirat",
        [Mknodat] = "mknodat", [Fchownat] = "fchownat", [Futimesat] = "futimesat", [Unlinkat] = "unlinkat",
        [Renameat] = "renameat", [Linkat] = "linkat", [Symlinkat] = "symlinkat", [Fchmodat] = "fchmodat",
        [Utimensat] = "utimensat", [Renameat2] = "renameat2", [Fchmodat2] = "fchmodat2", [Setxattrat] = "setxattrat",
        [Removexattrat] = "removexattrat", [FileSetattr] = "file_setattr",
    };

    /// <summary>Refused outright (EPERM and a violation): ways out of the confinement, by name.</summary>
    internal static readonly IReadOnlyDictionary<int, string> Escape = new Dictionary<int, string>
    {
        [101] = "ptrace", [165] = "mount", [166] = "umount2", [155] = "pivot_root", [161] = "chroot",
        [321] = "bpf", [298] = "perf_event_open", [425] = "io_uring_setup", [426] = "io_uring_enter",
        [427] = "io_uring_register", [246] = "kexec_load", [320] = "kexec_file_load",
        [175] = "init_module", [313] = "finit_module", [176] = "delete_module", [272] = "unshare",
        [308] = "setns", [310] = "process_vm_readv", [311] = "process_vm_writev",
        [304] = "open_by_handle_at", [303] = "name_to_handle_at", [134] = "uselib",
        [430] = "fsopen", [431] = "fsconfig", [432] = "fsmount", [433] = "fspick", [429] = "move_mount",
        [428] = "open_tree", [442] = "mount_setattr",
        [PidfdSendSignal] = "pidfd_send_signal", [PidfdGetfd] = "pidfd_getfd",
        [248] = "add_key", [249] = "request_key", [250] = "keyctl",
    };

    /// <summary>A name for any notified syscall (reports and logs).</summary>
    internal static string Name(int nr) => nr switch
    {
        Open => "open", Openat => "openat", Openat2 => "openat2", Creat => "creat",
        Execve => "execve", Execveat => "execveat", Kill => "kill", Tkill => "tkill", Tgkill => "tgkill",
        RtSigqueueinfo => "rt_sigqueueinfo", RtTgsigqueueinfo => "rt_tgsigqueueinfo",
        PidfdOpen => "pidfd_open", Prlimit64 => "prlimit64", SchedSetaffinity => "sched_setaffinity",
        SchedSetscheduler => "sched_setscheduler", SchedSetparam => "sched_setparam",
        SchedSetattr => "sched_setattr", Setpriority => "setpriority", IoprioSet => "ioprio_set",
        Fcntl => "fcntl", Ioctl => "ioctl", Socket => "socket", Socketpair => "socketpair",
        _ => Escape.TryGetValue(nr, out var name) || FileChanges.TryGetValue(nr, out name) ? name : $"syscall {nr}",
    };
}
