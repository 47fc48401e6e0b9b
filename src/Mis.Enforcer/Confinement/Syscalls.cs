namespace Mis.Enforcer.Confinement;

/// <summary>
/// The x86-64 syscall numbers the launcher's filter sends to the supervisor
/// (native/launcher/filter.c is the other half; keep both in step).
/// </summary>
internal static class Syscalls
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
        Fcntl => "fcntl", Ioctl => "ioctl",
        _ => Escape.TryGetValue(nr, out var name) ? name : $"syscall {nr}",
    };
}
