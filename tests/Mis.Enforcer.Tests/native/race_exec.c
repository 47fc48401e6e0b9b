/*
 * race_exec OK NO ATTEMPTS       (both paths of equal length, both copies of this program)
 * race_exec --me                 (what OK and NO run: prints "ran <basename of itself>")
 *
 * The exec form of the seccomp-notify TOCTOU attack: in each of ATTEMPTS child processes, one
 * thread keeps flipping a path buffer between OK and NO while the main thread execve()s the
 * buffer until an exec succeeds. The supervisor must decide on a stable object, but exec cannot
 * be done on the workload's behalf: it continues the syscall and the kernel reads the path
 * again, so a flip in between runs NO unless the kernel checks what it really executes. Prints
 * one "ran ..." line per program that ran, then "killed=N" (children ended by SIGKILL: the
 * kernel's backstop caught a flip) and "attempts=N".
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char path[4096];
static const char *paths[2];
static size_t length;

static void *flipper(void *arg)
{
    (void)arg;
    for (unsigned i = 0;; i++)
        memcpy(path, paths[i & 1], length); /* not atomic on purpose */
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--me") == 0) {
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        self[n > 0 ? n : 0] = 0;
        printf("ran %s\n", strrchr(self, '/') ? strrchr(self, '/') + 1 : self);
        return 0;
    }
    if (argc != 4 || strlen(argv[1]) != strlen(argv[2])) {
        fprintf(stderr, "usage: race_exec OK NO ATTEMPTS (paths of equal length)\n");
        return 2;
    }
    paths[0] = argv[1];
    paths[1] = argv[2];
    length = strlen(argv[1]);
    int attempts = atoi(argv[3]), killed = 0;
    for (int i = 0; i < attempts; i++) {
        fflush(stdout);
        pid_t child = fork();
        if (child == 0) {
            memcpy(path, paths[0], length + 1);
            pthread_t thread;
            if (pthread_create(&thread, NULL, flipper, NULL) != 0)
                _exit(2);
            char *args[] = {path, "--me", NULL};
            for (int tries = 0; tries < 10000; tries++)
                execve(path, args, (char *[]){NULL});
            _exit(3);
        }
        int status = 0;
        waitpid(child, &status, 0);
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
            killed++;
    }
    printf("killed=%d\nattempts=%d\n", killed, attempts);
    return 0;
}
