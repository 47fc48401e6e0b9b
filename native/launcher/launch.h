/* mis-launch: shared declarations of the launcher's three parts (confine, filter, guard). */
#ifndef MIS_LAUNCH_H
#define MIS_LAUNCH_H

#include <linux/filter.h>
#include <stddef.h>

/* Exit code for every setup failure: the shell's "command not runnable" code, never a
 * plausible workload exit code in the enforcer's eyes (it also gets the message). */
#define MIS_SETUP_FAILED 127

/* Prints "mis-launch: <message>" on stderr, sends it to the enforcer when the socket is known,
 * and exits with MIS_SETUP_FAILED. */
__attribute__((noreturn, format(printf, 1, 2))) void mis_die(const char *fmt, ...);

/* The socket to the enforcer, once known (mis_die reports through it too). */
extern int mis_sock;

/* Room for the seccomp program (the kernel's limit is 4096 instructions). */
#define MIS_FILTER_MAX 512

/* Builds the seccomp program into `out` (capacity `cap` instructions); returns the length. With
 * `files_in_kernel`, opens but for O_TMPFILE and O_PATH, execs, and the changes the kernel's path
 * hooks see are left to its BPF LSM hooks instead of the supervisor (filter.c lists them). */
size_t mis_build_filter(struct sock_filter *out, size_t cap, int files_in_kernel);

/* --guard mode: waits for EOF on stdin, then kills and removes every child cgroup of `dir`. */
int mis_guard(const char *dir);

#endif
