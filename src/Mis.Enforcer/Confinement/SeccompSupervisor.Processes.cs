using Mis.Enforcer.Policy;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>
/// Signals and other calls that act on another process. Without capabilities, the kernel lets a
/// process signal, renice or re-limit any process with the same uid — for a uid-0 workload that is
/// the enforcer and the whole host. Here a target must be a process (or thread) of the workload's
/// own cgroup; process-group and broadcast forms (pid &lt;= 0) are refused, since a group can
/// reach outside the cgroup. Allowed calls CONTINUE, so the kernel looks the pid up again: a pid
/// freed and reused by a process outside the cgroup in between would be hit (needs the target to
/// exit and be reaped, and the pid space to wrap, within the window of one decision).
/// </summary>
public sealed unsafe partial class SeccompSupervisor
{
    private const int FSetOwn = 8;
    private const int FSetOwnEx = 15;
    private const int PrioProcess = 0;
    private const int IoprioWhoProcess = 1;

    private void HandleProcessTarget(in SeccompNotify.Notification n, WorkloadTask task)
    {
        int a0 = (int)n.Args[0], a1 = (int)n.Args[1], a2 = (int)n.Args[2];
        string name = Syscalls.Name(n.Nr);
        int first, second = 0; // second: the thread of tgkill/rt_tgsigqueueinfo
        switch (n.Nr)
        {
            case Syscalls.Kill or Syscalls.Tkill or Syscalls.RtSigqueueinfo:
                first = a0;
                break;
            case Syscalls.Tgkill or Syscalls.RtTgsigqueueinfo:
                (first, second) = (a0, a1);
                if (second <= 0)
                {
                    Fail(n.Id, Errno.EINVAL); // the kernel's answer for a bad tid; no process is reached
                    return;
                }
                break;
            case Syscalls.PidfdOpen:
                if (a0 <= 0)
                {
                    Fail(n.Id, Errno.EINVAL);
                    return;
                }
                first = a0;
                break;
            case Syscalls.Setpriority:
                first = a0 == PrioProcess ? a1 : -1; // PRIO_PGRP / PRIO_USER reach beyond the cgroup
                break;
            case Syscalls.IoprioSet:
                first = a0 == IoprioWhoProcess ? a1 : -1;
                break;
            case Syscalls.Fcntl:
                if ((int)n.Args[1] == FSetOwnEx) // its target lives in user memory: not checkable without a race
                {
                    Deny(n.Id, ViolationOp.EscapeSyscall, task, "fcntl(F_SETOWN_EX)");
                    return;
                }
                if (a2 == 0) // F_SETOWN 0: no owner
                {
                    ContinueIfValid(n.Id);
                    return;
                }
                first = a2; // < 0: a process group
                name = "fcntl(F_SETOWN)";
                break;
            case Syscalls.Ioctl:
                Deny(n.Id, ViolationOp.EscapeSyscall, task, (uint)n.Args[1] == 0x8901 ? "ioctl(FIOSETOWN)" : "ioctl(SIOCSPGRP)");
                return;
            default: // prlimit64, sched_set*: the filter only sends pid != 0
                first = a0;
                break;
        }
        if (first <= 0)
        {
            Deny(n.Id, ViolationOp.EscapeSyscall, task, name);
            return;
        }
        foreach (int target in second > 0 ? new[] { first, second } : new[] { first })
        {
            string? cgroup = ProcFacts.CgroupOf(target);
            if (cgroup is null)
            {
                Fail(n.Id, Errno.ESRCH); // no such process: what the kernel says, and nothing was reached
                return;
            }
            if (cgroup != _cgroupName)
            {
                _log($"mis-seccomp: {_cgroupName}: {name} toward pid {target} in {cgroup} refused");
                Deny(n.Id, ViolationOp.EscapeSyscall, task, name);
                return;
            }
        }
        ContinueIfValid(n.Id);
    }

    private void ContinueIfValid(ulong id)
    {
        if (IdValid(id))
            Continue(id);
    }
}
