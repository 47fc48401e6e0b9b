// mis-workload-reader: the multi-threaded reader of `mis bench --workloads`. THREADS threads each
// open, read (to the end) and close files of DIR in a loop, OPENS times per thread, so 4 threads
// do 4 times the work of 1. Prints "elapsed_ns N": from the moment every thread is ready to the
// last one done, so thread creation and the program's own start-up are not in it. Under a seccomp
// supervisor that answers notifications on one thread, 4 threads take 4 times as long as 1; one
// that keeps up takes about as long as 1 (given as many cores as threads).
//
//   mis-workload-reader THREADS OPENS DIR FILES     (DIR holds files f0 .. f<FILES-1>)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct job {
	int index;
	long opens;
	int files;
	const char *dir;
	long bytes;
	int error;
};

static pthread_barrier_t g_start;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *reader(void *arg)
{
	struct job *job = arg;
	char path[4096], buf[4096];
	pthread_barrier_wait(&g_start);
	for (long i = 0; i < job->opens; i++) {
		// Threads start at different files so they do not all hit one dentry in lock step.
		int f = (int)((i + job->index * 7) % job->files);
		snprintf(path, sizeof path, "%s/f%d", job->dir, f);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			job->error = errno;
			break;
		}
		ssize_t n;
		while ((n = read(fd, buf, sizeof buf)) > 0)
			job->bytes += n;
		close(fd);
	}
	pthread_barrier_wait(&g_start);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: mis-workload-reader THREADS OPENS DIR FILES\n");
		return 2;
	}
	int threads = atoi(argv[1]), files = atoi(argv[4]);
	long opens = atol(argv[2]);
	if (threads < 1 || threads > 256 || opens < 1 || files < 1) {
		fprintf(stderr, "mis-workload-reader: THREADS 1..256, OPENS and FILES positive\n");
		return 2;
	}
	struct job *jobs = calloc((size_t)threads, sizeof *jobs);
	pthread_t *ids = calloc((size_t)threads, sizeof *ids);
	if (!jobs || !ids)
		return 2;
	// The main thread is the last party of both barriers: it starts the clock when all are ready
	// and stops it when all are done.
	pthread_barrier_init(&g_start, NULL, (unsigned)threads + 1);
	for (int t = 0; t < threads; t++) {
		jobs[t] = (struct job){.index = t, .opens = opens, .files = files, .dir = argv[3]};
		if (pthread_create(&ids[t], NULL, reader, &jobs[t]) != 0) {
			fprintf(stderr, "mis-workload-reader: pthread_create failed\n");
			return 2;
		}
	}
	pthread_barrier_wait(&g_start);
	uint64_t start = now_ns();
	pthread_barrier_wait(&g_start);
	uint64_t end = now_ns();
	int failed = 0;
	for (int t = 0; t < threads; t++) {
		pthread_join(ids[t], NULL);
		if (jobs[t].error) {
			fprintf(stderr, "mis-workload-reader: thread %d: open: %s\n", t, strerror(jobs[t].error));
			failed = 1;
		}
	}
	printf("elapsed_ns %llu\n", (unsigned long long)(end - start));
	return failed;
}
