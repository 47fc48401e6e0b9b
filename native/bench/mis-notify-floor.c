// mis-notify-floor: the floor `mis bench --workloads` compares MIS against. It runs a command as an
// unprivileged user under the smallest seccomp user-notification supervisor that still answers
// every file open and exec, so that what it costs is the notification round trip of this kernel
// and nothing of MIS (no policy, no DEFCON read, no path reconstruction, no events).
//
//   mis-notify-floor MODE USER DIR [--threads N] [--sync-wakeup] -- COMMAND [ARG...]
//
// The command runs as USER (its primary group and supplementary groups, as mis-launch sets them)
// in DIR, with this program's environment. MODE:
//   bare      no filter, no supervisor: the command is exec'd directly (the "bare" column).
//   continue  open, openat, openat2, creat, execve and execveat notify; the supervisor answers
//             every one with SECCOMP_USER_NOTIF_FLAG_CONTINUE: the round trip alone.
//   addfd     as continue for execve/execveat; for the opens the supervisor reads the path from
//             the workload's memory, checks that the notification is still valid, opens the file
//             itself (fsuid/fsgid set to USER's, so permission checks are the workload's) and
//             injects the descriptor with SECCOMP_IOCTL_NOTIF_ADDFD + SECCOMP_ADDFD_FLAG_SEND.
//             That is the TOCTOU-safe pattern a deciding supervisor (MIS's) has to follow: the
//             floor of that design. Paths through /proc/self and /proc/thread-self are answered
//             CONTINUE (they would name the supervisor); this is a cost floor, not a guard.
// --threads N: supervisor threads receiving on the one listener (default 4), so the floor does not
// serialise a multi-threaded workload. --sync-wakeup: SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (6.6+).
// Exits with the command's status (128+signal when it was killed).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

// Debian 12's kernel headers (6.1) predate it; the kernel (6.6+) knows it.
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

enum mode { MODE_BARE, MODE_CONTINUE, MODE_ADDFD };

struct identity {
	uid_t uid;
	gid_t gid;
	gid_t groups[NGROUPS_MAX];
	int ngroups;
};

static enum mode g_mode;
static struct identity g_id;
static int g_listener = -1;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("mis-notify-floor: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(125);
}

static void lookup_identity(const char *user, struct identity *id)
{
	errno = 0;
	struct passwd *pw = getpwnam(user);
	if (!pw)
		die("no such user '%s'", user);
	id->uid = pw->pw_uid;
	id->gid = pw->pw_gid;
	id->ngroups = NGROUPS_MAX;
	if (getgrouplist(user, id->gid, id->groups, &id->ngroups) < 0)
		die("getgrouplist %s: more than %d groups", user, NGROUPS_MAX);
}

// As mis-launch drops it: supplementary groups first (setgroups needs CAP_SETGID), then gid, uid.
static void become(const struct identity *id)
{
	if (setgroups((size_t)id->ngroups, id->groups) != 0)
		die("setgroups: %s", strerror(errno));
	if (setresgid(id->gid, id->gid, id->gid) != 0)
		die("setresgid %u: %s", id->gid, strerror(errno));
	if (setresuid(id->uid, id->uid, id->uid) != 0)
		die("setresuid %u: %s", id->uid, strerror(errno));
}

static int install_filter(void)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_open, 6, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat, 5, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 4, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_creat, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_execve, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_execveat, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
	};
	struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		die("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	int fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	if (fd < 0)
		die("seccomp: %s", strerror(errno));
	return fd;
}

static void send_fd(int sock, int fd)
{
	char data = 'L';
	struct iovec iov = {.iov_base = &data, .iov_len = 1};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	memset(&control, 0, sizeof control);
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
	if (sendmsg(sock, &msg, 0) != 1)
		die("sendmsg: %s", strerror(errno));
}

static int receive_fd(int sock)
{
	char data;
	struct iovec iov = {.iov_base = &data, .iov_len = 1};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
	if (recvmsg(sock, &msg, 0) != 1)
		return -1; // the child died before it could send (it said why on stderr)
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
	if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS)
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
	return fd;
}

// The NUL-terminated string at addr in task tid, read page by page (a path may end just before
// an unmapped page). False when it cannot be read or has no NUL within PATH_MAX.
static int read_path(pid_t tid, uint64_t addr, char *out)
{
	size_t done = 0;
	while (done < PATH_MAX) {
		uint64_t at = addr + done;
		size_t chunk = 4096 - (size_t)(at & 4095);
		if (chunk > PATH_MAX - done)
			chunk = PATH_MAX - done;
		struct iovec local = {.iov_base = out + done, .iov_len = chunk};
		struct iovec remote = {.iov_base = (void *)(uintptr_t)at, .iov_len = chunk};
		ssize_t n = process_vm_readv(tid, &local, 1, &remote, 1, 0);
		if (n <= 0)
			return 0;
		if (memchr(out + done, '\0', (size_t)n))
			return 1;
		done += (size_t)n;
	}
	return 0;
}

static int read_memory(pid_t tid, uint64_t addr, void *out, size_t size)
{
	struct iovec local = {.iov_base = out, .iov_len = size};
	struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = size};
	return process_vm_readv(tid, &local, 1, &remote, 1, 0) == (ssize_t)size;
}

static int starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

// Opens what the notified open would have opened; returns the fd, -errno on failure, or
// INT_MIN when the supervisor should let the kernel do it (CONTINUE).
static int open_for(const struct seccomp_notif *req, int *cloexec)
{
	char path[PATH_MAX];
	const __u64 *a = req->data.args;
	int dirfd = AT_FDCWD;
	uint64_t path_addr;
	struct open_how how;
	memset(&how, 0, sizeof how);

	switch (req->data.nr) {
	case SYS_open:
		path_addr = a[0];
		how.flags = a[1];
		how.mode = a[2];
		break;
	case SYS_creat:
		path_addr = a[0];
		how.flags = O_CREAT | O_WRONLY | O_TRUNC;
		how.mode = a[1];
		break;
	case SYS_openat:
		dirfd = (int)a[0];
		path_addr = a[1];
		how.flags = a[2];
		how.mode = a[3];
		break;
	case SYS_openat2:
		dirfd = (int)a[0];
		path_addr = a[1];
		if (a[3] < sizeof how || !read_memory((pid_t)req->pid, a[2], &how, sizeof how))
			return INT_MIN;
		break;
	default:
		return INT_MIN;
	}
	// Only the flags the kernel keeps after open; O_CREAT/O_TMPFILE use mode, others ignore it.
	if (!(how.flags & (O_CREAT | __O_TMPFILE)))
		how.mode = 0;
	if (!read_path((pid_t)req->pid, path_addr, path))
		return INT_MIN;
	// What was read must still be the waiting syscall's memory (the task could have died and
	// its pid been reused): the same check a deciding supervisor makes before acting.
	if (ioctl(g_listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) != 0)
		return INT_MIN;
	if (starts_with(path, "/proc/self") || starts_with(path, "/proc/thread-self"))
		return INT_MIN;

	int base = -1;
	if (path[0] != '/') {
		char link[64];
		if (dirfd == AT_FDCWD)
			snprintf(link, sizeof link, "/proc/%u/cwd", req->pid);
		else
			snprintf(link, sizeof link, "/proc/%u/fd/%d", req->pid, dirfd);
		base = open(link, O_PATH | O_CLOEXEC);
		if (base < 0)
			return INT_MIN;
	}
	*cloexec = (how.flags & O_CLOEXEC) != 0;
	how.flags |= O_CLOEXEC; // the supervisor's copy; the workload's gets its own flag from ADDFD
	long fd = syscall(SYS_openat2, base < 0 ? AT_FDCWD : base, path, &how, sizeof how);
	int err = errno;
	if (base >= 0)
		close(base);
	return fd < 0 ? -err : (int)fd;
}

static void answer(struct seccomp_notif *req, struct seccomp_notif_resp *resp)
{
	memset(resp, 0, sizeof *resp);
	resp->id = req->id;
	if (g_mode == MODE_ADDFD) {
		int cloexec = 0;
		int fd = open_for(req, &cloexec);
		if (fd >= 0) {
			struct seccomp_notif_addfd addfd = {
				.id = req->id,
				.flags = SECCOMP_ADDFD_FLAG_SEND,
				.srcfd = (uint32_t)fd,
				.newfd = 0,
				.newfd_flags = cloexec ? O_CLOEXEC : 0,
			};
			// Success answers the notification: the workload's open returns the new fd.
			ioctl(g_listener, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
			close(fd);
			return;
		}
		if (fd != INT_MIN) {
			resp->error = fd;
			ioctl(g_listener, SECCOMP_IOCTL_NOTIF_SEND, resp);
			return;
		}
	}
	resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	// ENOENT: the task died meanwhile; nothing to answer.
	ioctl(g_listener, SECCOMP_IOCTL_NOTIF_SEND, resp);
}

static void *supervise(void *unused)
{
	(void)unused;
	struct seccomp_notif_sizes sizes;
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0)
		die("SECCOMP_GET_NOTIF_SIZES: %s", strerror(errno));
	struct seccomp_notif *req = calloc(1, sizes.seccomp_notif > sizeof *req ? sizes.seccomp_notif : sizeof *req);
	struct seccomp_notif_resp *resp = calloc(1, sizes.seccomp_notif_resp > sizeof *resp ? sizes.seccomp_notif_resp : sizeof *resp);
	if (!req || !resp)
		die("out of memory");
	// Per thread (the raw syscalls, not glibc's process-wide setxid broadcast): this thread's
	// opens are checked as the workload's, and CAP_DAC_OVERRIDE leaves its effective set.
	syscall(SYS_setfsgid, g_id.gid);
	syscall(SYS_setfsuid, g_id.uid);
	for (;;) {
		memset(req, 0, sizes.seccomp_notif);
		if (ioctl(g_listener, SECCOMP_IOCTL_NOTIF_RECV, req) != 0) {
			if (errno == EINTR || errno == ENOENT)
				continue;
			return NULL; // the listener is gone
		}
		answer(req, resp);
	}
}

static void usage(void) __attribute__((noreturn));

static void usage(void)
{
	fprintf(stderr, "usage: mis-notify-floor bare|continue|addfd USER DIR [--threads N] [--sync-wakeup] -- COMMAND [ARG...]\n");
	exit(125);
}

int main(int argc, char **argv)
{
	if (argc < 5)
		usage();
	if (strcmp(argv[1], "bare") == 0)
		g_mode = MODE_BARE;
	else if (strcmp(argv[1], "continue") == 0)
		g_mode = MODE_CONTINUE;
	else if (strcmp(argv[1], "addfd") == 0)
		g_mode = MODE_ADDFD;
	else
		usage();
	const char *user = argv[2], *dir = argv[3];
	int threads = 4, sync_wakeup = 0, i = 4;
	for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (strcmp(argv[i], "--sync-wakeup") == 0)
			sync_wakeup = 1;
		else
			usage();
	}
	if (i + 1 >= argc || threads < 1 || threads > 64)
		usage();
	char **command = argv + i + 1;
	lookup_identity(user, &g_id);

	if (g_mode == MODE_BARE) {
		become(&g_id);
		if (chdir(dir) != 0)
			die("chdir %s: %s", dir, strerror(errno));
		execvp(command[0], command);
		die("exec %s: %s", command[0], strerror(errno));
	}

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		die("socketpair: %s", strerror(errno));
	pid_t child = fork();
	if (child < 0)
		die("fork: %s", strerror(errno));
	if (child == 0) {
		close(sv[0]);
		become(&g_id);
		if (chdir(dir) != 0)
			die("chdir %s: %s", dir, strerror(errno));
		int listener = install_filter();
		send_fd(sv[1], listener);
		close(listener);
		close(sv[1]);
		// The exec notifies: the supervisor is listening by the time it is answered.
		execvp(command[0], command);
		die("exec %s: %s", command[0], strerror(errno));
	}
	close(sv[1]);
	g_listener = receive_fd(sv[0]);
	close(sv[0]);
	if (g_listener >= 0) {
		if (sync_wakeup && ioctl(g_listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) != 0)
			die("SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: %s", strerror(errno));
		// The supervisor's own permission checks (addfd) use the workload's groups too.
		if (setgroups((size_t)g_id.ngroups, g_id.groups) != 0)
			die("setgroups: %s", strerror(errno));
		for (int t = 0; t < threads; t++) {
			pthread_t thread;
			if (pthread_create(&thread, NULL, supervise, NULL) != 0)
				die("pthread_create failed");
			pthread_detach(thread);
		}
	}
	int status;
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	// Exiting ends the supervisor threads; descendants left behind would see ENOSYS from then on.
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
