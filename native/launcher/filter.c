/*
 * The workload's seccomp program (classic BPF, evaluated on every syscall of the workload and
 * all its descendants, inherited across fork and exec, irremovable).
 *
 *   - foreign architectures (i386 via int 0x80) are killed, x32 syscalls fail with ENOSYS:
 *     the syscall numbers below are only meaningful for the x86-64 ABI;
 *   - opens, execs, every syscall that creates, removes, renames, links or changes a file or its
 *     metadata, the escape class and cross-process operations go to the enforcer's supervisor
 *     (SECCOMP_RET_USER_NOTIF), which decides them on what the kernel would act on;
 *   - where the kernel's BPF LSM hooks decide files (files_in_kernel), execs, open(2), openat(2)
 *     and creat(2) but for O_TMPFILE and O_PATH opens (the hooks never see a name for the one, and
 *     are not called for the other), and the changes the kernel's path hooks see (below) are
 *     left to them, as are signals to one process (pid > 0, decided on the task the kernel
 *     found); openat2 (its flags are in user memory) and the other changes still go to the
 *     supervisor (bpf/include/mis_lsm.h says why each);
 *   - clone3 fails with ENOSYS: its arguments live in user memory that a filter cannot read,
 *     so CLONE_INTO_CGROUP and namespace flags could not be checked (glibc falls back to clone);
 *   - clone with any CLONE_NEW* flag fails with EPERM (flags are a register, so checkable here);
 *   - everything else is allowed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "launch.h"

#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif
#ifndef F_SETOWN_EX
#define F_SETOWN_EX 15
#endif
/* The kernel's O_TMPFILE bit alone: glibc's __O_TMPFILE also carries O_DIRECTORY, and a test of
 * it would send every directory open to the supervisor. */
#define MIS_O_TMPFILE_BIT 020000000
/* Newer than Debian 12's kernel headers. */
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#endif
#ifndef SYS_removexattrat
#define SYS_removexattrat 466
#endif
#ifndef SYS_file_setattr
#define SYS_file_setattr 469
#endif
#define MIS_FS_IOC_SETFLAGS 0x40086602u
#define MIS_FS_IOC32_SETFLAGS 0x40046602u
#define MIS_FS_IOC_FSSETXATTR 0x401c5820u
#define MIS_FS_IOC_SETVERSION 0x40087602u
#define MIS_FS_IOC32_SETVERSION 0x40047602u

#define NR_OFF offsetof(struct seccomp_data, nr)
#define ARCH_OFF offsetof(struct seccomp_data, arch)
/* Low 32 bits of argument i (x86-64 is little-endian); every argument checked here is an int. */
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))

/* All CLONE_NEW* flags valid for clone(2) (CLONE_NEWTIME shares the exit-signal byte there). */
#define CLONE_NEW_ANY (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | \
                       CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

/* Opens and execs the BPF LSM hooks decide where they can (see the top of this file). */
static const int opens[] = {SYS_open, SYS_openat, SYS_creat, SYS_execve, SYS_execveat};

/* Signals to one process or thread (pid, argument 0, > 0): decided on the task the kernel found
 * where the BPF LSM hooks are loaded (lsm/task_kill), by the supervisor otherwise. A process
 * group or broadcast (pid <= 0) always goes to the supervisor, which refuses it. */
static const int signals[] = {SYS_kill, SYS_tkill, SYS_tgkill, SYS_rt_sigqueueinfo, SYS_rt_tgsigqueueinfo};

/* Changes to the file tree and to files' metadata that a rule protects against, as opens are:
 * decided as writes on every name and object they touch. The BPF LSM path hooks decide these
 * where they are loaded; the supervisor decides them otherwise. */
static const int path_hook_changes[] = {
    SYS_truncate, SYS_mkdir, SYS_mkdirat, SYS_rmdir, SYS_link, SYS_linkat, SYS_unlink, SYS_unlinkat,
    SYS_symlink, SYS_symlinkat, SYS_mknod, SYS_mknodat, SYS_chmod, SYS_fchmod, SYS_fchmodat,
    SYS_fchmodat2, SYS_chown, SYS_fchown, SYS_lchown, SYS_fchownat,
};

/* Decided by the supervisor: files, exec, the escape class and signals. */
static const int notified[] = {
    SYS_openat2,
    SYS_ptrace, SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot, SYS_bpf,
    SYS_perf_event_open, SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
    SYS_kexec_load, SYS_kexec_file_load, SYS_init_module, SYS_finit_module,
    SYS_delete_module, SYS_unshare, SYS_setns, SYS_process_vm_readv, SYS_process_vm_writev,
    SYS_open_by_handle_at, SYS_name_to_handle_at,
    /* opens a library by path, bypassing open(2) (deprecated; ENOSYS on most kernels) */
    SYS_uselib,
    /* the new mount API reaches the same places as mount(2) */
    SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_fspick, SYS_move_mount, SYS_open_tree,
    SYS_mount_setattr,
    SYS_pidfd_open, SYS_pidfd_send_signal, SYS_pidfd_getfd,
    /* Keyrings: uid 0's user keyring (@u) is the host root's, and a capless uid-0 process still
     * reaches it (by @u, or by linking it into its own session keyring by serial), as a nobody
     * workload reaches the @u every nobody process shares. The workload has a session keyring of
     * its own (mis-launch) and never touches one itself. */
    SYS_add_key, SYS_request_key, SYS_keyctl,
    /* The other changes (see path_hook_changes): no path hook sees them, or a hook could not
     * decide them (a renamed directory moves every file below it). */
    SYS_rename, SYS_renameat, SYS_renameat2, SYS_utime, SYS_utimes, SYS_futimesat, SYS_utimensat,
    SYS_setxattr, SYS_lsetxattr, SYS_fsetxattr, SYS_removexattr, SYS_lremovexattr, SYS_fremovexattr,
    SYS_setxattrat, SYS_removexattrat, SYS_file_setattr,
    /* bind() of a Unix socket creates a file (the family is in user memory: all binds go). */
    SYS_bind,
};

/* ioctl commands (arg 1) decided by the supervisor: acting on another process, or changing a
 * file's attributes through any descriptor of it, even a read-only one. */
static const unsigned ioctl_notified[] = {
    FIOSETOWN, SIOCSPGRP, MIS_FS_IOC_SETFLAGS, MIS_FS_IOC32_SETFLAGS, MIS_FS_IOC_FSSETXATTR,
    MIS_FS_IOC_SETVERSION, MIS_FS_IOC32_SETVERSION,
};

/* Act on another process when the pid argument (arg 0) is not 0 (= the caller itself):
 * a uid-0 workload without capabilities may still do these to any uid-0 process. */
static const int pid_arg0[] = {
    SYS_prlimit64, SYS_sched_setaffinity, SYS_sched_setscheduler, SYS_sched_setparam,
    SYS_sched_setattr,
};

struct builder {
    struct sock_filter *out;
    size_t cap, len;
};

static void emit(struct builder *b, struct sock_filter insn)
{
    if (b->len >= b->cap)
        mis_die("internal error: seccomp program longer than %zu instructions", b->cap);
    b->out[b->len++] = insn;
}

#define STMT(code, k) ((struct sock_filter)BPF_STMT(code, k))
#define JUMP(code, k, jt, jf) ((struct sock_filter)BPF_JUMP(code, k, jt, jf))
#define RET(k) STMT(BPF_RET | BPF_K, k)
#define LOAD(off) STMT(BPF_LD | BPF_W | BPF_ABS, off)
/* "if A == k fall through, else skip `skip` instructions" */
#define UNLESS_EQ(k, skip) JUMP(BPF_JMP | BPF_JEQ | BPF_K, k, 0, skip)

size_t mis_build_filter(struct sock_filter *out, size_t cap, int files_in_kernel)
{
    struct builder b = {out, cap, 0};

    emit(&b, LOAD(ARCH_OFF));
    emit(&b, UNLESS_EQ(AUDIT_ARCH_X86_64, 1));
    emit(&b, JUMP(BPF_JMP | BPF_JA, 1, 0, 0));
    emit(&b, RET(SECCOMP_RET_KILL_PROCESS));
    emit(&b, LOAD(NR_OFF));
    emit(&b, JUMP(BPF_JMP | BPF_JGE | BPF_K, __X32_SYSCALL_BIT, 0, 1));
    emit(&b, RET(SECCOMP_RET_ERRNO | ENOSYS));

    if (!files_in_kernel) {
        for (size_t i = 0; i < sizeof opens / sizeof opens[0]; i++) {
            emit(&b, UNLESS_EQ((unsigned)opens[i], 1));
            emit(&b, RET(SECCOMP_RET_USER_NOTIF));
        }
        for (size_t i = 0; i < sizeof path_hook_changes / sizeof path_hook_changes[0]; i++) {
            emit(&b, UNLESS_EQ((unsigned)path_hook_changes[i], 1));
            emit(&b, RET(SECCOMP_RET_USER_NOTIF));
        }
    } else {
        /* open(path, flags): flags are argument 1; openat(dirfd, path, flags): argument 2.
         * creat, execve, execveat and path_hook_changes fall through to the final ALLOW. */
        emit(&b, UNLESS_EQ(SYS_open, 4));
        emit(&b, LOAD(ARG_LO(1)));
        emit(&b, JUMP(BPF_JMP | BPF_JSET | BPF_K, MIS_O_TMPFILE_BIT | O_PATH, 0, 1));
        emit(&b, RET(SECCOMP_RET_USER_NOTIF));
        emit(&b, RET(SECCOMP_RET_ALLOW));
        emit(&b, UNLESS_EQ(SYS_openat, 4));
        emit(&b, LOAD(ARG_LO(2)));
        emit(&b, JUMP(BPF_JMP | BPF_JSET | BPF_K, MIS_O_TMPFILE_BIT | O_PATH, 0, 1));
        emit(&b, RET(SECCOMP_RET_USER_NOTIF));
        emit(&b, RET(SECCOMP_RET_ALLOW));
    }

    for (size_t i = 0; i < sizeof notified / sizeof notified[0]; i++) {
        emit(&b, UNLESS_EQ((unsigned)notified[i], 1));
        emit(&b, RET(SECCOMP_RET_USER_NOTIF));
    }

    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        if (!files_in_kernel) {
            emit(&b, UNLESS_EQ((unsigned)signals[i], 1));
            emit(&b, RET(SECCOMP_RET_USER_NOTIF));
            continue;
        }
        emit(&b, UNLESS_EQ((unsigned)signals[i], 5));
        emit(&b, LOAD(ARG_LO(0)));
        emit(&b, JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x80000000u, 2, 0)); /* negative */
        emit(&b, JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0));
        emit(&b, RET(SECCOMP_RET_ALLOW));
        emit(&b, RET(SECCOMP_RET_USER_NOTIF));
    }

    emit(&b, UNLESS_EQ(SYS_clone3, 1));
    emit(&b, RET(SECCOMP_RET_ERRNO | ENOSYS));

    /* clone: namespace flags -> EPERM. Each block below ends in returns only, so clobbering
     * the accumulator with an argument needs no reload of the syscall number. */
    emit(&b, UNLESS_EQ(SYS_clone, 4));
    emit(&b, LOAD(ARG_LO(0)));
    emit(&b, JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_NEW_ANY, 0, 1));
    emit(&b, RET(SECCOMP_RET_ERRNO | EPERM));
    emit(&b, RET(SECCOMP_RET_ALLOW));

    /* fcntl(F_SETOWN/F_SETOWN_EX) makes the kernel signal another process on I/O. */
    emit(&b, UNLESS_EQ(SYS_fcntl, 5));
    emit(&b, LOAD(ARG_LO(1)));
    emit(&b, JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_SETOWN, 2, 0));
    emit(&b, JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_SETOWN_EX, 1, 0));
    emit(&b, RET(SECCOMP_RET_ALLOW));
    emit(&b, RET(SECCOMP_RET_USER_NOTIF));

    /* ioctl: the commands above; every other one is allowed. */
    size_t ioctls = sizeof ioctl_notified / sizeof ioctl_notified[0];
    emit(&b, UNLESS_EQ(SYS_ioctl, (unsigned char)(ioctls + 3)));
    emit(&b, LOAD(ARG_LO(1)));
    for (size_t i = 0; i < ioctls; i++)
        emit(&b, JUMP(BPF_JMP | BPF_JEQ | BPF_K, ioctl_notified[i], (unsigned char)(ioctls - i), 0));
    emit(&b, RET(SECCOMP_RET_ALLOW));
    emit(&b, RET(SECCOMP_RET_USER_NOTIF));

    /* socket/socketpair: the families the network rules decide (IP, by the cgroup hooks; Unix,
     * by policy) and netlink (the kernel only); any other family (AF_VSOCK to the hypervisor,
     * ...) goes to the supervisor, which refuses it as escape-class. */
    static const unsigned families[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};
    size_t nfamilies = sizeof families / sizeof families[0];
    static const int socket_calls[] = {SYS_socket, SYS_socketpair};
    for (size_t c = 0; c < 2; c++) {
        emit(&b, UNLESS_EQ((unsigned)socket_calls[c], (unsigned char)(nfamilies + 3)));
        emit(&b, LOAD(ARG_LO(0)));
        for (size_t i = 0; i < nfamilies; i++)
            emit(&b, JUMP(BPF_JMP | BPF_JEQ | BPF_K, families[i], (unsigned char)(nfamilies - i), 0));
        emit(&b, RET(SECCOMP_RET_USER_NOTIF));
        emit(&b, RET(SECCOMP_RET_ALLOW));
    }

    for (size_t i = 0; i < sizeof pid_arg0 / sizeof pid_arg0[0]; i++) {
        emit(&b, UNLESS_EQ((unsigned)pid_arg0[i], 4));
        emit(&b, LOAD(ARG_LO(0)));
        emit(&b, JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1));
        emit(&b, RET(SECCOMP_RET_ALLOW));
        emit(&b, RET(SECCOMP_RET_USER_NOTIF));
    }

    /* setpriority(which, who) / ioprio_set(which, who, prio): only "this process" is free. */
    emit(&b, UNLESS_EQ(SYS_setpriority, 6));
    emit(&b, LOAD(ARG_LO(0)));
    emit(&b, JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0 /* PRIO_PROCESS */, 0, 3));
    emit(&b, LOAD(ARG_LO(1)));
    emit(&b, JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1));
    emit(&b, RET(SECCOMP_RET_ALLOW));
    emit(&b, RET(SECCOMP_RET_USER_NOTIF));

    emit(&b, UNLESS_EQ(SYS_ioprio_set, 6));
    emit(&b, LOAD(ARG_LO(0)));
    emit(&b, JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1 /* IOPRIO_WHO_PROCESS */, 0, 3));
    emit(&b, LOAD(ARG_LO(1)));
    emit(&b, JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1));
    emit(&b, RET(SECCOMP_RET_ALLOW));
    emit(&b, RET(SECCOMP_RET_USER_NOTIF));

    emit(&b, RET(SECCOMP_RET_ALLOW));
    return b.len;
}
