/* The submit thread follows the main thread's CPU (--submit-cpu follow).
 *
 * The test thread is the queue's main thread.  It pins itself to one CPU,
 * reads through the queue, and checks that the submit thread (found by
 * its name in /proc/self/task) may then run on that CPU only and that
 * the queue counted one move.  More reads from the same CPU move nothing
 * (no system call per request).  Pinned to a second CPU, the next read
 * moves the submit thread there.  Following turned off again gives the
 * thread back every CPU the process may use.  A queue that was never told
 * to follow (the default: its owner knows whether io_submit only queues)
 * leaves the thread on those CPUs and counts no move.
 *
 * Reads from CPUs that alternate on every read move the thread at most
 * once a millisecond.
 *
 * The move between two CPUs needs two CPUs this process may use; with one,
 * the rest runs and the test then exits 77, saying so. */
#include <dirent.h>
#include <event2/event.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/clock.h"
#include "queue/queue.h"
#include "queue/tiocb.h"
#include "tests/lib/test.h"

#define NAME	"test-queue-affinity"
#define BLK	4096u

static char buf[BLK] __attribute__((aligned(BLK)));
static int done_count;

static void read_done(struct tiocb *t, long res)
{
	(void)t;
	CHECK_EQ(res, BLK);
	done_count++;
}

/* One 4 KiB read through q, waited for. */
static void one_read(struct tqueue *q, int fd)
{
	struct tiocb t;
	int want = done_count + 1;

	tiocb_prep_read(&t, fd, buf, BLK, 0, read_done, NULL);
	tq_submit(q, &t);
	while (done_count < want)
		REQUIRE(tq_wait(q) >= 0);
}

/* The TID of the thread named vdiskd-submit, or -1. */
static pid_t submit_tid(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	pid_t tid = -1;

	REQUIRE(d);
	while (tid < 0 && (e = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && strcmp(comm, "vdiskd-submit\n") == 0)
			tid = (pid_t)atoi(e->d_name);
		fclose(f);
	}
	closedir(d);
	return tid;
}

static void pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	REQUIRE(sched_setaffinity(0, sizeof(set), &set) == 0);
	REQUIRE(sched_getcpu() == cpu);
}

/* Is the submit thread allowed exactly the CPUs of want? */
static bool submit_allowed(const cpu_set_t *want)
{
	pid_t tid = submit_tid();
	cpu_set_t got;

	REQUIRE(tid > 0);
	REQUIRE(sched_getaffinity(tid, sizeof(got), &got) == 0);
	if (!CPU_EQUAL(&got, want)) {
		fprintf(stderr, NAME ": submit thread %d may use %d CPU(s), want %d\n",
			(int)tid, CPU_COUNT(&got), CPU_COUNT(want));
		return false;
	}
	return true;
}

static uint64_t moves(struct tqueue *q)
{
	struct tq_stats s;

	tq_get_stats(q, &s);
	return s.moves;
}

/* From CPU cpu, one read: the submit thread must then be on cpu alone,
 * after want_moves moves in all. */
static void read_from(struct tqueue *q, int fd, int cpu, uint64_t want_moves)
{
	cpu_set_t one;

	pin_self(cpu);
	one_read(q, fd);
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	CHECK(submit_allowed(&one));
	CHECK_EQ(moves(q), want_moves);
}

/* The main thread changing CPU on every request (a chase: see
 * queue/affinity.c) gets the submit thread moved at most once a
 * millisecond, not once a request. */
static void chase(struct tqueue *q, int fd, const int cpus[2])
{
	enum { ROUNDS = 200 };
	uint64_t m0 = moves(q), t0 = vd_now_ns(), ms, made;

	for (int i = 0; i < ROUNDS; i++) {
		pin_self(cpus[i % 2]);
		one_read(q, fd);
	}
	ms = (vd_now_ns() - t0) / 1000000;
	made = moves(q) - m0;
	fprintf(stderr, NAME ": %d reads from alternating CPUs in %llu ms: %llu moves\n",
		ROUNDS, (unsigned long long)ms, (unsigned long long)made);
	CHECK(made <= ms + 1);
	CHECK(made >= 1);	/* it still follows */
	/* Only a bound below the number of reads can see a move per read. */
	if (ms + 1 >= ROUNDS)
		fprintf(stderr, NAME ": the reads took too long for the bound to mean much\n");
}

int main(void)
{
	char path[] = "/tmp/" NAME ".XXXXXX";
	cpu_set_t all;
	struct tq_options o;
	struct event_base *base;
	struct tqueue *q;
	int fd, cpus[2], ncpu = 0;
	uint64_t n;
	bool skipped_move = false;

	test_timeout(NAME, 30);
	REQUIRE(sched_getaffinity(0, sizeof(all), &all) == 0);
	for (int c = 0; c < CPU_SETSIZE && ncpu < 2; c++)
		if (CPU_ISSET(c, &all))
			cpus[ncpu++] = c;
	fd = mkstemp(path);
	REQUIRE(fd >= 0);
	unlink(path);
	memset(buf, 0xa5, sizeof(buf));
	REQUIRE(pwrite(fd, buf, BLK, 0) == BLK);
	base = event_base_new();
	REQUIRE(base);

	/* Following. */
	tq_options_default(&o);
	REQUIRE(tq_create(base, &o, &q) == 0);
	tq_set_follow(q, true);
	CHECK_EQ(moves(q), 0);
	read_from(q, fd, cpus[0], 1);
	for (int i = 0; i < 20; i++)
		one_read(q, fd);
	CHECK_EQ(moves(q), 1);
	if (ncpu == 2) {
		usleep(2000);	/* moves are at least 1 ms apart */
		read_from(q, fd, cpus[1], 2);
		fprintf(stderr, NAME ": followed CPU %d to CPU %d\n", cpus[0], cpus[1]);
		chase(q, fd, cpus);
	} else {
		skipped_move = true;
	}
	/* Off again: every CPU back, and no more moves. */
	tq_set_follow(q, false);
	CHECK(submit_allowed(&all));
	n = moves(q);
	pin_self(cpus[0]);
	one_read(q, fd);
	CHECK(submit_allowed(&all));
	CHECK_EQ(moves(q), n);
	tq_destroy(q);

	/* The default: the thread keeps the process's CPUs. */
	REQUIRE(sched_setaffinity(0, sizeof(all), &all) == 0);
	tq_options_default(&o);
	REQUIRE(tq_create(base, &o, &q) == 0);
	pin_self(cpus[0]);
	for (int i = 0; i < 5; i++)
		one_read(q, fd);
	CHECK(submit_allowed(&all));
	CHECK_EQ(moves(q), 0);
	tq_destroy(q);

	event_base_free(base);
	close(fd);
	if (test_failures)
		return test_done(NAME);
	if (skipped_move) {
		fprintf(stderr, NAME ": skipped: one CPU only, cannot check a move between two\n");
		return 77;
	}
	return 0;
}
