/* The submit thread's poll window opens only at queue depth 1.
 *
 * With --poll-us the submit thread spins for more work before it sleeps,
 * but only while at most one request is in the kernel: with more, a
 * sleep lets requests gather into one io_submit (spinning at any depth
 * took them one call at a time and lost 10-25% of 4k QD32 IOPS,
 * docs/performance.md).  This checks both sides of that rule with
 * requests that really are in the kernel: reads of a loop device that a
 * block-I/O throttle (cgroup v1 blkio or v2 io.max, 2 reads a second)
 * holds for hundreds of ms after io_submit returned.
 *
 *   two in the kernel, a third queued: no spin caught it (polled does not
 *   move) and it took a futex wake;
 *   one in the kernel, a second queued: the spin caught it (polled + 1),
 *   no wake: the window works, so the first check could see a spin.
 *
 * The window is 50 ms here (the daemon allows 1 ms), so the test thread
 * has time to queue within it on a loaded machine.  Needs root, a free
 * loop device and a throttle; skipped (exit 77, saying why) without. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "queue/queue.h"
#include "queue/tiocb.h"
#include "tests/lib/test.h"

#define NAME		"test-queue-poll"
#define SKIP		77
#define FILE_SIZE	(4u << 20)
#define BLK		4096u
#define NREAD		5
#define POLL_US		50000u
#define READS_PER_S	2

struct rd {
	struct tiocb t;
	void *buf;
	bool done;
	long res;
};

static struct rd reads[NREAD];
static char cg_dir[256], cg_parent_procs[256];

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int err;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	err = n < 0 ? -errno : 0;
	close(fd);
	return err;
}

static bool file_has(const char *path, const char *word)
{
	char buf[512];
	FILE *f = fopen(path, "re");
	bool found = false;

	if (!f)
		return false;
	while (!found && fscanf(f, "%511s", buf) == 1)
		found = strcmp(buf, word) == 0;
	fclose(f);
	return found;
}

/* Puts this process (every thread, the submit thread included) into a new
 * cgroup whose reads of dev are throttled.  Returns 0 or a reason. */
static const char *cgroup_throttle(dev_t dev)
{
	const char *v2 = NULL;
	char path[320], val[64];
	int r;

	if (access("/sys/fs/cgroup/blkio/cgroup.procs", W_OK) == 0) {
		snprintf(cg_dir, sizeof(cg_dir), "/sys/fs/cgroup/blkio/vdiskd-%s-%d", NAME,
			 (int)getpid());
		snprintf(cg_parent_procs, sizeof(cg_parent_procs),
			 "/sys/fs/cgroup/blkio/cgroup.procs");
		if (mkdir(cg_dir, 0755) < 0)
			return "cannot make a blkio cgroup";
		snprintf(path, sizeof(path), "%s/blkio.throttle.read_iops_device", cg_dir);
		snprintf(val, sizeof(val), "%u:%u %d", major(dev), minor(dev), READS_PER_S);
	} else {
		if (file_has("/sys/fs/cgroup/cgroup.controllers", "io"))
			v2 = "/sys/fs/cgroup";
		else if (file_has("/sys/fs/cgroup/unified/cgroup.controllers", "io"))
			v2 = "/sys/fs/cgroup/unified";
		if (!v2)
			return "no blkio (cgroup v1) or io (cgroup v2) controller";
		snprintf(path, sizeof(path), "%s/cgroup.subtree_control", v2);
		if (!file_has(path, "io") && write_str(path, "+io") < 0)
			return "cannot enable the io controller";
		snprintf(cg_dir, sizeof(cg_dir), "%s/vdiskd-%s-%d", v2, NAME, (int)getpid());
		snprintf(cg_parent_procs, sizeof(cg_parent_procs), "%s/cgroup.procs", v2);
		if (mkdir(cg_dir, 0755) < 0)
			return "cannot make an io cgroup";
		snprintf(path, sizeof(path), "%s/io.max", cg_dir);
		snprintf(val, sizeof(val), "%u:%u riops=%d", major(dev), minor(dev), READS_PER_S);
	}
	if ((r = write_str(path, val)) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(-r));
		return "cannot set a read throttle";
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg_dir);
	snprintf(val, sizeof(val), "%d", (int)getpid());
	if (write_str(path, val) < 0)
		return "cannot move into the cgroup";
	return NULL;
}

static void cgroup_leave(void)
{
	char val[32];

	if (!cg_dir[0])
		return;
	snprintf(val, sizeof(val), "%d", (int)getpid());
	write_str(cg_parent_procs, val);
	for (int i = 0; i < 50 && rmdir(cg_dir) < 0 && errno == EBUSY; i++)
		sleep_ms(20);
	cg_dir[0] = '\0';
}

/* A loop device over a new file, detached by the kernel when the last
 * descriptor closes (also when the test dies).  Returns its fd, O_DIRECT. */
static int loop_attach(const char *file, const char **why)
{
	struct loop_info64 info = { .lo_flags = LO_FLAGS_AUTOCLEAR };
	char dev[64];
	int ctl, nr, fd, lfd = -1, dfd;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	nr = ctl >= 0 ? ioctl(ctl, LOOP_CTL_GET_FREE) : -1;
	if (ctl >= 0)
		close(ctl);
	if (nr < 0) {
		*why = "no free loop device";
		return -1;
	}
	snprintf(dev, sizeof(dev), "/dev/loop%d", nr);
	fd = open(file, O_RDWR | O_CLOEXEC);
	if (fd >= 0)
		lfd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0 || lfd < 0 || ioctl(lfd, LOOP_SET_FD, fd) < 0 ||
	    ioctl(lfd, LOOP_SET_STATUS64, &info) < 0) {
		*why = "cannot attach a loop device";
		if (lfd >= 0) {
			ioctl(lfd, LOOP_CLR_FD, 0);
			close(lfd);
		}
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	dfd = open(dev, O_RDONLY | O_DIRECT | O_CLOEXEC);
	close(lfd);	/* dfd keeps it attached */
	if (dfd < 0)
		*why = "cannot open the loop device with O_DIRECT";
	return dfd;
}

static void rd_done(struct tiocb *t, long res)
{
	struct rd *r = t->data;

	r->res = res;
	r->done = true;
}

static void queue_read(struct tqueue *q, int fd, unsigned i)
{
	struct rd *r = &reads[i];

	r->done = false;
	/* Far apart: nothing merges. */
	tiocb_prep_read(&r->t, fd, r->buf, BLK, (uint64_t)i * (512u << 10), rd_done, r);
	tq_submit(q, &r->t);
}

/* Waits (up to 5 s) until the kernel has accepted n iocbs in all. */
static bool wait_submitted(struct tqueue *q, uint64_t n, struct tq_stats *s)
{
	for (int i = 0; i < 5000; i++) {
		tq_get_stats(q, s);
		if (s->iocbs_submitted >= n)
			return true;
		sleep_ms(1);
	}
	return false;
}

static void wait_done(struct tqueue *q, unsigned from, unsigned to)
{
	for (unsigned i = from; i < to; i++) {
		while (!reads[i].done)
			tq_wait(q);
		CHECK_EQ(reads[i].res, BLK);
	}
}

static int run(int fd)
{
	struct event_base *base = event_base_new();
	struct tq_options o;
	struct tqueue *q = NULL;
	struct tq_stats s0, s1;
	int ret = 0;

	REQUIRE(base);
	tq_options_default(&o);
	o.poll_us = POLL_US;
	REQUIRE(tq_create(base, &o, &q) == 0);

	/* Two reads in the kernel, held by the throttle. */
	queue_read(q, fd, 0);
	queue_read(q, fd, 1);
	REQUIRE(wait_submitted(q, 2, &s0));
	sleep_ms(5);
	tq_poll(q);
	if (reads[0].done || reads[1].done) {
		fprintf(stderr, NAME ": skipped: the throttle did not hold the reads\n");
		ret = SKIP;
		goto out;
	}
	tq_get_stats(q, &s0);
	CHECK_EQ(s0.pending, 2);
	queue_read(q, fd, 2);
	REQUIRE(wait_submitted(q, 3, &s1));
	fprintf(stderr, NAME ": 2 in the kernel: polled %llu -> %llu, wakeups %llu -> %llu\n",
		(unsigned long long)s0.polled, (unsigned long long)s1.polled,
		(unsigned long long)s0.wakeups, (unsigned long long)s1.wakeups);
	CHECK_EQ(s1.polled, s0.polled);
	CHECK_EQ(s1.wakeups, s0.wakeups + 1);
	wait_done(q, 0, 3);

	/* One read in the kernel: the window is open. */
	queue_read(q, fd, 3);
	REQUIRE(wait_submitted(q, 4, &s0));
	queue_read(q, fd, 4);
	REQUIRE(wait_submitted(q, 5, &s1));
	fprintf(stderr, NAME ": 1 in the kernel: polled %llu -> %llu, wakeups %llu -> %llu\n",
		(unsigned long long)s0.polled, (unsigned long long)s1.polled,
		(unsigned long long)s0.wakeups, (unsigned long long)s1.wakeups);
	CHECK_EQ(s1.polled, s0.polled + 1);
	CHECK_EQ(s1.wakeups, s0.wakeups);
	wait_done(q, 3, 5);
out:
	tq_destroy(q);
	event_base_free(base);
	return ret;
}

int main(void)
{
	const char *tmp = getenv("TESTS_TMP"), *why = NULL;
	char file[4200];
	struct stat st;
	int fd, ret = SKIP;

	test_timeout(NAME, 60);
	if (geteuid() != 0) {
		fprintf(stderr, NAME ": skipped: loop devices and cgroups need root\n");
		return SKIP;
	}
	snprintf(file, sizeof(file), "%s/" NAME ".img", tmp && *tmp ? tmp : "/tmp");
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	REQUIRE(fd >= 0 && ftruncate(fd, FILE_SIZE) == 0);
	close(fd);
	for (unsigned i = 0; i < NREAD; i++)
		REQUIRE(posix_memalign(&reads[i].buf, BLK, BLK) == 0);

	fd = loop_attach(file, &why);
	if (fd >= 0) {
		REQUIRE(fstat(fd, &st) == 0);
		why = cgroup_throttle(st.st_rdev);
	}
	if (why)
		fprintf(stderr, NAME ": skipped: %s\n", why);
	else
		ret = run(fd);
	cgroup_leave();
	if (fd >= 0)
		close(fd);
	unlink(file);
	for (unsigned i = 0; i < NREAD; i++)
		free(reads[i].buf);
	return ret == SKIP ? SKIP : test_done(NAME);
}
