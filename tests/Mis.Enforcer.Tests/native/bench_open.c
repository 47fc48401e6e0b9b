/*
 * bench_open PATH N — N times open(PATH, O_RDONLY) + close, then N times getppid();
 * prints "open_ns=X getppid_ns=Y" (mean per call, CLOCK_MONOTONIC).
 * Used to measure what the seccomp supervisor costs per open, and the filter per plain syscall.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_open PATH N\n");
        return 2;
    }
    long n = atol(argv[2]);
    double start = now_ns();
    for (long i = 0; i < n; i++) {
        int fd = open(argv[1], O_RDONLY);
        if (fd < 0) {
            perror(argv[1]);
            return 1;
        }
        close(fd);
    }
    double open_ns = (now_ns() - start) / n;
    start = now_ns();
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);
    double getppid_ns = (now_ns() - start) / n;
    printf("open_ns=%.0f getppid_ns=%.0f\n", open_ns, getppid_ns);
    return 0;
}
