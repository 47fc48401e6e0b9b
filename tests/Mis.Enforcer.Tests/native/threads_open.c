/*
 * threads_open FILE THREADS OPENS
 *
 * THREADS threads each open, read and close FILE OPENS times, all at once: a multi-threaded
 * workload whose notified syscalls overlap. Prints "opened=N failed=N".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *file;
static int opens;
static atomic_int opened, failed;

static void *reader(void *arg)
{
    (void)arg;
    char buffer[256];
    for (int i = 0; i < opens; i++) {
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, buffer, sizeof buffer) <= 0)
            atomic_fetch_add(&failed, 1);
        else
            atomic_fetch_add(&opened, 1);
        if (fd >= 0)
            close(fd);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    file = argv[1];
    int threads = atoi(argv[2]);
    opens = atoi(argv[3]);
    pthread_t t[64];
    if (threads < 1 || threads > 64)
        return 2;
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, reader, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("opened=%d failed=%d\n", atomic_load(&opened), atomic_load(&failed));
    return 0;
}
