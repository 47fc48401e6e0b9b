/*
 * mis-launch — starts one MIS workload confined (see usage()), or guards a cgroup parent.
 *
 * The enforcer spawns this (as root) with a unix SOCK_SEQPACKET socket on --sock-fd. In this
 * order it: joins the workload's cgroup (so the workload is in it before its first
 * instruction) and, when given, the cgroup v1 pids cgroup that caps its task count (hosts
 * whose v2 has no pids controller); becomes a session leader (so it has no controlling terminal);
 * joins an anonymous session keyring of its own; forbids core dumps; drops the capability
 * bounding set and locks the securebits (both need CAP_SETPCAP, so they come before the identity
 * change); drops identity; clears every remaining capability set; sets no_new_privs; sets
 * PDEATHSIG (after the credential change, which clears it); installs the keyring filter, then the
 * seccomp filter with a user-notification listener; sends the listener to the enforcer
 * (SCM_RIGHTS); waits for a one-byte "go"; execs.
 *
 * Protocol on the socket: launcher -> enforcer one message, either "L" carrying the listener
 * fd, or "E<text>" describing a setup failure; enforcer -> launcher one byte "G" (go).
 * Every setup failure prints "mis-launch: ..." on stderr and exits 127.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/keyctl.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "launch.h"

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

int mis_sock = -1;

void mis_die(const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + 1, sizeof msg - 1, fmt, ap);
    va_end(ap);
    dprintf(STDERR_FILENO, "mis-launch: %s\n", msg + 1);
    if (mis_sock >= 0) {
        msg[0] = 'E';
        /* best effort: the enforcer also sees the exit status */
        (void)send(mis_sock, msg, strlen(msg + 1) + 1, MSG_NOSIGNAL);
    }
    _exit(MIS_SETUP_FAILED);
}

static void usage(void)
{
    dprintf(STDERR_FILENO,
            "usage: mis-launch --cgroup DIR (--user NAME | --uid N --gid N | --as-root)\n"
            "                  --sock-fd N [--chdir DIR] [--pids-cgroup V1_DIR] [--files-in-kernel]\n"
            "                  -- COMMAND [ARG...]\n"
            "       mis-launch --guard CGROUP_PARENT_DIR\n");
    _exit(MIS_SETUP_FAILED);
}

struct options {
    const char *cgroup, *pids_cgroup, *user, *chdir_to;
    long uid, gid, sock;
    int as_root;
    int files_in_kernel; /* the BPF LSM hooks decide opens, execs and path changes (see filter.c) */
    char **command;
};

static long parse_id(const char *what, const char *text)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *text == '\0' || *end != '\0' || v < 0 || v > INT_MAX)
        mis_die("%s: not a non-negative integer: '%s'", what, text);
    return v;
}

static struct options parse(int argc, char **argv)
{
    struct options o = {.uid = -1, .gid = -1, .sock = -1};
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "--as-root") == 0) {
            o.as_root = 1;
            continue;
        }
        if (strcmp(a, "--files-in-kernel") == 0) {
            o.files_in_kernel = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(a, "--cgroup") == 0)
            o.cgroup = v;
        else if (strcmp(a, "--user") == 0)
            o.user = v;
        else if (strcmp(a, "--uid") == 0)
            o.uid = parse_id("--uid", v);
        else if (strcmp(a, "--gid") == 0)
            o.gid = parse_id("--gid", v);
        else if (strcmp(a, "--sock-fd") == 0)
            o.sock = parse_id("--sock-fd", v);
        else if (strcmp(a, "--chdir") == 0)
            o.chdir_to = v;
        else if (strcmp(a, "--pids-cgroup") == 0)
            o.pids_cgroup = v;
        else
            usage();
    }
    if (i >= argc || !o.cgroup || o.sock < 0)
        usage();
    int identities = (o.user != NULL) + (o.uid >= 0 || o.gid >= 0) + o.as_root;
    if (identities != 1 || ((o.uid >= 0) != (o.gid >= 0)))
        mis_die("exactly one of --user NAME, --uid N --gid N, --as-root is required");
    if ((o.uid == 0 || o.gid == 0) && !o.as_root)
        mis_die("--uid/--gid 0 would be root: say --as-root if that is meant");
    o.command = &argv[i];
    return o;
}

/* Writes our pid to <cgroup>/cgroup.procs: from here on everything we (and the workload we
 * become) do, fork and spend is the cgroup's. The same file joins a cgroup v1 hierarchy's cgroup. */
static void join_cgroup(const char *cgroup)
{
    char path[PATH_MAX], pid[24];
    if (snprintf(path, sizeof path, "%s/cgroup.procs", cgroup) >= (int)sizeof path)
        mis_die("cgroup path too long: %s", cgroup);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        mis_die("open %s: %s", path, strerror(errno));
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (write(fd, pid, (size_t)n) != n)
        mis_die("join cgroup %s: %s", cgroup, strerror(errno));
    if (close(fd) != 0)
        mis_die("close %s: %s", path, strerror(errno));
}

/* The session keyring is inherited: without this the workload would possess the enforcer's
 * (an operator's login keyring, its keys readable through @s even after the identity change).
 * An anonymous one is empty; the kernel's own keyring users (request_key from filesystems) then
 * search that on the workload's behalf. Joined while still root so the new keyring is charged to
 * root's key quota, not to the workload user's 200 keys shared by every workload of that user. */
static void own_session_keyring(void)
{
    if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0)
        mis_die("keyctl(JOIN_SESSION_KEYRING): %s", strerror(errno));
}

/* The kernel writes a core file into the crashing process's cwd on its behalf, bypassing the
 * supervisor: with the hard limit at 0 (raising it needs CAP_SYS_RESOURCE) no workload process
 * ever dumps one there. A core_pattern pipe helper (systemd-coredump) is not stopped by this; it
 * writes where it is configured to, not into the workload's directories. */
static void no_core_dumps(void)
{
    struct rlimit zero = {0, 0};
    if (setrlimit(RLIMIT_CORE, &zero) != 0)
        mis_die("setrlimit(RLIMIT_CORE, 0): %s", strerror(errno));
}

static int last_cap(void)
{
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    char buf[16] = {0};
    if (fd < 0 || read(fd, buf, sizeof buf - 1) <= 0)
        mis_die("read /proc/sys/kernel/cap_last_cap: %s", strerror(errno));
    close(fd);
    return (int)parse_id("cap_last_cap", strtok(buf, "\n"));
}

static void drop_bounding_set(int last)
{
    for (int cap = 0; cap <= last; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
            mis_die("PR_CAPBSET_DROP %d: %s", cap, strerror(errno));
}

/* With these locked, uid 0 gains no capabilities from exec (NOROOT), a uid change never
 * adjusts capabilities (NO_SETUID_FIXUP), and capabilities cannot survive or be raised
 * through any later path (KEEP_CAPS off, ambient raise off) — and none of it can be undone. */
static void lock_securebits(void)
{
    unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                         SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                         SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0)
        mis_die("PR_SET_SECUREBITS: %s", strerror(errno));
}

static void drop_identity(const struct options *o)
{
    uid_t uid = (uid_t)o->uid;
    gid_t gid = (gid_t)o->gid;
    gid_t groups[NGROUPS_MAX];
    int ngroups = 0;
    if (o->as_root) {
        uid = 0;
        gid = 0;
    } else if (o->user) {
        errno = 0;
        struct passwd *pw = getpwnam(o->user);
        if (!pw)
            mis_die("no such user '%s'%s%s", o->user, errno ? ": " : "", errno ? strerror(errno) : "");
        if (pw->pw_uid == 0 || pw->pw_gid == 0)
            mis_die("user '%s' has uid or gid 0: say --as-root if that is meant", o->user);
        uid = pw->pw_uid;
        gid = pw->pw_gid;
        ngroups = NGROUPS_MAX;
        if (getgrouplist(o->user, gid, groups, &ngroups) < 0)
            mis_die("getgrouplist %s: more than %d groups", o->user, NGROUPS_MAX);
        for (int i = 0; i < ngroups; i++)
            if (groups[i] == 0)
                mis_die("user '%s' is in group 0", o->user);
    }
    /* Supplementary groups first: setgroups needs CAP_SETGID, which setresuid takes away. */
    if (setgroups((size_t)ngroups, groups) != 0)
        mis_die("setgroups: %s", strerror(errno));
    if (setresgid(gid, gid, gid) != 0)
        mis_die("setresgid %u: %s", gid, strerror(errno));
    if (setresuid(uid, uid, uid) != 0)
        mis_die("setresuid %u: %s", uid, strerror(errno));
    uid_t r, e, s;
    gid_t rg, eg, sg;
    if (getresuid(&r, &e, &s) != 0 || r != uid || e != uid || s != uid ||
        getresgid(&rg, &eg, &sg) != 0 || rg != gid || eg != gid || sg != gid)
        mis_die("identity did not change to uid %u gid %u", uid, gid);
}

static void drop_capabilities(int last)
{
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) != 0)
        mis_die("capset: %s", strerror(errno));
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
        mis_die("PR_CAP_AMBIENT_CLEAR_ALL: %s", strerror(errno));
    /* Trust but verify: a silently kept capability would void the whole confinement. */
    if (syscall(SYS_capget, &header, data) != 0)
        mis_die("capget: %s", strerror(errno));
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
        if (data[i].effective || data[i].permitted || data[i].inheritable)
            mis_die("capabilities survived capset");
    for (int cap = 0; cap <= last; cap++)
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 0)
            mis_die("capability %d survived in the bounding set", cap);
}

static int install_filter(int files_in_kernel)
{
    struct sock_filter insns[MIS_FILTER_MAX];
    struct sock_fprog prog = {(unsigned short)mis_build_filter(insns, MIS_FILTER_MAX, files_in_kernel), insns};
    /* WAIT_KILLABLE_RECV: once the supervisor has received a notification, only a fatal
     * signal interrupts the waiting syscall, so a decided open is not restarted (and not
     * decided, or created, twice) because a signal arrived meanwhile. */
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                      SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
    if (fd < 0 && errno == EINVAL)
        fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (fd < 0)
        mis_die("seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER): %s", strerror(errno));
    return (int)fd;
}

static void send_listener(int listener)
{
    char tag = 'L';
    struct iovec iov = {&tag, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.buf, .msg_controllen = sizeof control.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &listener, sizeof(int));
    if (sendmsg(mis_sock, &msg, MSG_NOSIGNAL) != 1)
        mis_die("send the seccomp listener to the enforcer: %s", strerror(errno));
    if (close(listener) != 0)
        mis_die("close listener: %s", strerror(errno));
}

static void wait_for_go(void)
{
    char go = 0;
    ssize_t n;
    do
        n = read(mis_sock, &go, 1);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        mis_die("wait for go: %s", strerror(errno));
    if (n == 0)
        mis_die("the enforcer closed the socket before saying go");
    if (go != 'G')
        mis_die("unexpected byte 0x%02x instead of go", (unsigned char)go);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--guard") == 0)
        return mis_guard(argv[2]);

    pid_t enforcer = getppid();
    struct options o = parse(argc, argv);
    if (o.sock <= STDERR_FILENO)
        mis_die("--sock-fd must not be stdin, stdout or stderr");
    if (fcntl((int)o.sock, F_SETFD, FD_CLOEXEC) != 0)
        mis_die("--sock-fd %ld: %s", o.sock, strerror(errno));
    mis_sock = (int)o.sock;
    /* Nothing but stdio and the socket may reach the workload. */
    if (mis_sock > 3 && syscall(SYS_close_range, 3, mis_sock - 1, 0) != 0)
        mis_die("close_range: %s", strerror(errno));
    if (syscall(SYS_close_range, mis_sock + 1, ~0U, 0) != 0)
        mis_die("close_range: %s", strerror(errno));

    join_cgroup(o.cgroup);
    if (o.pids_cgroup)
        join_cgroup(o.pids_cgroup);
    if (setsid() < 0)
        mis_die("setsid: %s", strerror(errno));
    own_session_keyring();
    no_core_dumps();
    int last = last_cap();
    drop_bounding_set(last);
    lock_securebits();
    drop_identity(&o);
    drop_capabilities(last);
    if (o.chdir_to && chdir(o.chdir_to) != 0)
        mis_die("chdir %s: %s", o.chdir_to, strerror(errno));
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        mis_die("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        mis_die("PR_SET_PDEATHSIG: %s", strerror(errno));
    if (getppid() != enforcer) /* it died before PDEATHSIG was armed */
        mis_die("the enforcer died during setup");
    send_listener(install_filter(o.files_in_kernel));
    wait_for_go();
    /* From here on errors go to stderr only: the enforcer no longer listens. */
    close(mis_sock);
    mis_sock = -1;
    execvp(o.command[0], o.command);
    mis_die("exec %s: %s", o.command[0], strerror(errno));
}
