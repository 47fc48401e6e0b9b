/*
 * race_open ALLOWED DENIED ITERATIONS MARKER
 *
 * The classic seccomp-notify TOCTOU attack: one thread keeps flipping a shared path buffer
 * between ALLOWED and DENIED (same length, so every read sees one or the other, or a mix) while
 * the main thread open()s the buffer in a loop. A supervisor that checks the path and then lets
 * the kernel open it again (SECCOMP_USER_NOTIF_FLAG_CONTINUE) loses this race; one that opens the
 * file itself and injects the fd cannot. An open counts as "denied" when the file read back starts
 * with MARKER (the denied file's content). Prints "allowed=N denied=N failed=N".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[4096];
static const char *paths[2];
static size_t length;
static atomic_int stop;

static void *flipper(void *arg)
{
    (void)arg;
    for (unsigned i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++)
        memcpy(path, paths[i & 1], length); /* not atomic on purpose */
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 5 || strlen(argv[1]) != strlen(argv[2])) {
        fprintf(stderr, "usage: race_open ALLOWED DENIED ITERATIONS MARKER (paths of equal length)\n");
        return 2;
    }
    paths[0] = argv[1];
    paths[1] = argv[2];
    length = strlen(argv[1]);
    memcpy(path, argv[1], length + 1);
    long iterations = atol(argv[3]);
    const char *marker = argv[4];
    size_t marker_length = strlen(marker);
    pthread_t thread;
    if (pthread_create(&thread, NULL, flipper, NULL) != 0) {
        perror("pthread_create");
        return 2;
    }
    long allowed = 0, denied = 0, failed = 0;
    for (long i = 0; i < iterations; i++) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) {
            failed++;
            continue;
        }
        char buf[256] = {0};
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n >= (ssize_t)marker_length && memcmp(buf, marker, marker_length) == 0)
            denied++;
        else
            allowed++;
    }
    atomic_store(&stop, 1);
    pthread_join(thread, NULL);
    printf("allowed=%ld denied=%ld failed=%ld\n", allowed, denied, failed);
    return 0;
}
