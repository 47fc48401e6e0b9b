// mis-bench-load: the load `mis bench` measures, in C so that what is measured is the kernel and
// MIS, not a managed runtime's own syscalls, JIT or GC.
//
//   mis-bench-load getppid ITERATIONS [CGROUP_DIR]
//       Calls getppid() ITERATIONS times in a tight loop and prints the mean nanoseconds per call
//       twice: on this thread's CPU clock, then on the wall clock. The CPU clock is the figure to
//       use on a shared machine: time the loop spent preempted is not in it, and the time the
//       kernel spent in its syscalls (the BPF programs included) is. No clock is read inside the
//       loop. With CGROUP_DIR it first moves itself into that cgroup (writes 0 to cgroup.procs).
//   mis-bench-load ops START END SEED DIR
//       Performs operations START..END-1 of the benchmark's mix (see mix_op) and writes "I\n" to
//       stdout after each, so that the caller knows where a killed run stopped. DIR holds the
//       files the mix writes and the policy's denied ones (prepared by the caller).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum op_kind {
	OP_READ,         // open O_RDONLY of an allowed file, read a little, close
	OP_WRITE,        // open O_WRONLY|O_CREAT|O_TRUNC in DIR, write a line, close
	OP_READ_DENIED,  // open of a denied file (/etc/shadow or DIR/secret)
	OP_CONNECT,      // non-blocking TCP connect to 127.0.0.1:9 (allowed; usually refused by the host)
	OP_CONNECT_DENIED, // TCP connect to 192.0.2.1:9 (TEST-NET-1, denied by the bench policy)
	OP_EXEC,         // posix_spawn /bin/true, wait
	OP_EXEC_DENIED,  // posix_spawn DIR/denied-tool (denied by the bench policy), wait
};

// Per 100 operations: 70 reads, 8 writes, 3 denied opens, 10 connects, 2 denied connects,
// 6 execs, 1 denied exec. Mostly allowed work with a trickle of forbidden attempts.
static enum op_kind mix_op(uint64_t seed, uint64_t i)
{
	uint64_t x = (seed ^ (i * 0x9E3779B97F4A7C15ull)) + 0x632BE59BD9B4E5Full;

	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	x ^= x >> 31;
	unsigned r = (unsigned)(x % 100);
	if (r < 70)
		return OP_READ;
	if (r < 78)
		return OP_WRITE;
	if (r < 81)
		return OP_READ_DENIED;
	if (r < 91)
		return OP_CONNECT;
	if (r < 93)
		return OP_CONNECT_DENIED;
	if (r < 99)
		return OP_EXEC;
	return OP_EXEC_DENIED;
}

static const char *const readable[] = {
	"/etc/hostname", "/etc/passwd", "/etc/os-release", "/etc/hosts", "/etc/group",
	"/etc/nsswitch.conf", "/usr/lib/os-release", "/etc/debian_version",
};

static void do_open(const char *path, int flags)
{
	char buffer[256];
	int fd = open(path, flags | O_CLOEXEC, 0644);

	if (fd < 0)
		return;
	if (flags & O_WRONLY) {
		if (write(fd, "mis bench\n", 10) < 0)
			buffer[0] = 0;
	} else if (read(fd, buffer, sizeof(buffer)) < 0) {
		buffer[0] = 0;
	}
	close(fd);
}

static void do_connect(const char *address)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	inet_pton(AF_INET, address, &to.sin_addr);
	if (connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0 && errno == EPERM)
		to.sin_port = 0; // denied by MIS; nothing else to do
	close(fd);
}

static void do_exec(const char *path)
{
	char *argv[] = { (char *)path, NULL };
	pid_t pid;
	int status;

	if (posix_spawn(&pid, path, NULL, NULL, argv, environ) != 0)
		return;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

static int run_ops(uint64_t start, uint64_t end, uint64_t seed, const char *dir)
{
	char written[4096], secret[4096], tool[4096], line[32];

	snprintf(written, sizeof(written), "%s/written.txt", dir);
	snprintf(secret, sizeof(secret), "%s/secret.txt", dir);
	snprintf(tool, sizeof(tool), "%s/denied-tool", dir);
	for (uint64_t i = start; i < end; i++) {
		switch (mix_op(seed, i)) {
		case OP_READ:
			do_open(readable[i % (sizeof(readable) / sizeof(readable[0]))], O_RDONLY);
			break;
		case OP_WRITE:
			do_open(written, O_WRONLY | O_CREAT | O_TRUNC);
			break;
		case OP_READ_DENIED:
			do_open(i % 2 ? "/etc/shadow" : secret, O_RDONLY);
			break;
		case OP_CONNECT:
			do_connect("127.0.0.1");
			break;
		case OP_CONNECT_DENIED:
			do_connect("192.0.2.1");
			break;
		case OP_EXEC:
			do_exec("/bin/true");
			break;
		case OP_EXEC_DENIED:
			do_exec(tool);
			break;
		}
		int n = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)i);
		if (write(STDOUT_FILENO, line, (size_t)n) != n)
			return 1;
	}
	return 0;
}

static int join_cgroup(const char *dir)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "0", 1) != 1) {
		fprintf(stderr, "mis-bench-load: cannot join %s: %s\n", dir, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

static double elapsed_ns(const struct timespec *from, const struct timespec *to)
{
	return (double)(to->tv_sec - from->tv_sec) * 1e9 + (double)(to->tv_nsec - from->tv_nsec);
}

static int run_getppid(uint64_t iterations, const char *cgroup)
{
	struct timespec c0, c1, w0, w1;
	volatile pid_t sink = 0;

	if (cgroup && join_cgroup(cgroup) != 0)
		return 1;
	for (uint64_t i = 0; i < iterations / 16 + 1; i++) // warm caches and the branch predictor
		sink = getppid();
	clock_gettime(CLOCK_MONOTONIC, &w0);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	for (uint64_t i = 0; i < iterations; i++)
		sink = getppid();
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	clock_gettime(CLOCK_MONOTONIC, &w1);
	(void)sink;
	printf("%.3f %.3f\n", elapsed_ns(&c0, &c1) / (double)iterations, elapsed_ns(&w0, &w1) / (double)iterations);
	return 0;
}

static uint64_t number(const char *text, const char *what)
{
	char *end;
	unsigned long long value;

	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno || *end || end == text) {
		fprintf(stderr, "mis-bench-load: %s: expected a non-negative integer, got '%s'\n", what, text);
		exit(2);
	}
	return value;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && argc <= 4 && strcmp(argv[1], "getppid") == 0)
		return run_getppid(number(argv[2], "ITERATIONS"), argc == 4 ? argv[3] : NULL);
	if (argc == 6 && strcmp(argv[1], "ops") == 0)
		return run_ops(number(argv[2], "START"), number(argv[3], "END"), number(argv[4], "SEED"), argv[5]);
	fprintf(stderr, "usage: mis-bench-load getppid ITERATIONS [CGROUP_DIR]\n"
			"       mis-bench-load ops START END SEED DIR\n");
	return 2;
}
