/*
 * mis-launch --guard DIR: the dead-man switch for workloads.
 *
 * The enforcer spawns one guard per cgroup parent and keeps the write end of the guard's stdin.
 * However the enforcer ends — exit, crash, SIGKILL, OOM kill — the kernel closes that write end
 * and the guard reads EOF. It then kills every child cgroup of DIR with cgroup.kill (which takes
 * the whole subtree, grandchildren included: PDEATHSIG alone only covers the launcher's own
 * process) and removes the child cgroups. The guard survives the terminal's signals: it is its
 * own session and ignores SIGINT/SIGHUP/SIGTERM/SIGQUIT/SIGPIPE.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "launch.h"

static void warn(const char *what, const char *name)
{
    dprintf(STDERR_FILENO, "mis-launch --guard: %s %s: %s\n", what, name, strerror(errno));
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Reads a small file below `dirfd` into buf (NUL-terminated); returns -1 on error. */
static ssize_t read_at(int dirfd, const char *name, char *buf, size_t cap)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    buf[n < 0 ? 0 : n] = '\0';
    return n;
}

static int populated(int cgfd)
{
    char buf[256];
    if (read_at(cgfd, "cgroup.events", buf, sizeof buf) < 0)
        return 0; /* gone already */
    return strstr(buf, "populated 1") != NULL;
}

/* cgroup.kill where the kernel has it (5.14+), else SIGKILL every listed process until the
 * cgroup is empty (the subtree's processes are listed by each descendant's cgroup.procs). */
static void kill_cgroup(int cgfd, const char *name)
{
    int fd = openat(cgfd, "cgroup.kill", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (write(fd, "1", 1) != 1)
            warn("write cgroup.kill of", name);
        close(fd);
        return;
    }
    for (int round = 0; round < 100 && populated(cgfd); round++) {
        char buf[65536];
        if (read_at(cgfd, "cgroup.procs", buf, sizeof buf) <= 0)
            break;
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
            kill((pid_t)atoi(line), SIGKILL);
        pause_ms(10);
    }
}

/* Removes the cgroup `name` below `parentfd`, descendants first; returns 0 when gone. */
static int remove_tree(int parentfd, const char *name)
{
    int fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    int failed = 0;
    DIR *d = fdopendir(dup(fd));
    if (d) {
        for (struct dirent *e; (e = readdir(d));)
            if (e->d_type == DT_DIR && strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                failed |= remove_tree(fd, e->d_name);
        closedir(d);
    }
    /* Killed processes leave the cgroup asynchronously: rmdir says EBUSY until they have. */
    for (int tries = 0; tries < 500 && populated(fd); tries++)
        pause_ms(10);
    close(fd);
    for (int tries = 0; tries < 100; tries++) {
        if (unlinkat(parentfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
            return failed;
        if (errno != EBUSY)
            break;
        pause_ms(10);
    }
    warn("rmdir", name);
    return -1;
}

int mis_guard(const char *dir)
{
    if (setsid() < 0 && errno != EPERM) /* EPERM: already a group leader, fine */
        warn("setsid", "");
    int ignored[] = {SIGINT, SIGHUP, SIGTERM, SIGQUIT, SIGPIPE};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        signal(ignored[i], SIG_IGN);
    /* Opened before waiting, so a bad DIR fails now, at the enforcer's start, not at its end. */
    int parent = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (parent < 0)
        mis_die("--guard %s: %s", dir, strerror(errno));
    char buf[256];
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n == 0)
            break;
        if (n < 0 && errno != EINTR) {
            warn("read stdin of", dir); /* cannot tell the enforcer is alive: act as if dead */
            break;
        }
    }
    DIR *d = fdopendir(dup(parent));
    if (!d)
        mis_die("--guard %s: %s", dir, strerror(errno));
    int failed = 0;
    /* Kill everything first, then wait and remove: no child gets time to act meanwhile. */
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_type != DT_DIR || !strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        int cg = openat(parent, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cg < 0)
            continue;
        kill_cgroup(cg, e->d_name);
        close(cg);
    }
    rewinddir(d);
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_type == DT_DIR && strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            failed |= remove_tree(parent, e->d_name);
    closedir(d);
    close(parent);
    /* The directory belonged to this enforcer alone: with its children gone, it goes too. */
    if (!failed && rmdir(dir) != 0 && errno != ENOENT) {
        warn("rmdir", dir);
        failed = 1;
    }
    return failed ? 1 : 0;
}
