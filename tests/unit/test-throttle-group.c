/* Limit groups across processes: one rate between two members, a member
 * killed inside the lock, stale slots, simultaneous creation, and files
 * that are not segments.  Crashes are made deterministic by mapping the
 * segment here (throttle-group-shm.h) and locking it from a child that
 * is then killed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/throttle-group-shm.h"
#include "core/throttle-group.h"
#include "core/throttle-member.h"
#include "tests/lib/test.h"

#define MS 1000000ull
#define S 1000000000ull

static char dir[64];
static char msg[512];

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/limit-group-%s.shm", dir, name);
}

/* The test's own view of a group's segment. */
static struct thr_group_seg *map_seg(const char *name)
{
	char path[128];
	void *p;
	int fd;

	path_of(path, sizeof(path), name);
	fd = open(path, O_RDWR);
	REQUIRE(fd >= 0);
	p = mmap(NULL, sizeof(struct thr_group_seg), PROT_READ | PROT_WRITE,
		 MAP_SHARED, fd, 0);
	close(fd);
	REQUIRE(p != MAP_FAILED);
	return p;
}

static struct thr_group *open_ok(const char *name, const struct thr_limits *l)
{
	struct thr_group *g = NULL;
	int err = thr_group_open(dir, name, l, &g, msg, sizeof(msg));

	if (err)
		fprintf(stderr, "thr_group_open(%s): %d %s\n", name, err, msg);
	REQUIRE(err == 0 && g);
	return g;
}

static int wait_child(pid_t pid)
{
	int status;

	REQUIRE(waitpid(pid, &status, 0) == pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Limits, members, changes seen by every handle, initial of a later
 * member ignored, and of the first one after everybody left applied. */
static void test_basic(void)
{
	struct thr_limits ten = { .iops = 10 }, other = { .iops = 99 }, got;
	struct thr_group *a = open_ok("basic", &ten), *b = open_ok("basic", &other);

	CHECK_EQ(thr_group_members(a), 2);
	CHECK_EQ(thr_group_get_limits(b, &got), 0);
	CHECK_EQ(got.iops, 10);
	CHECK_EQ(thr_group_admit(a, THR_OP_READ, 1, S), 0);
	CHECK_EQ(thr_group_admit(b, THR_OP_READ, 1, S), 0);
	CHECK(thr_group_admit(a, THR_OP_READ, 1, S) > 0);	/* bucket shared */
	CHECK(thr_group_admit(b, THR_OP_WRITE, 1, S) > 0);
	CHECK_EQ(thr_group_admit(b, THR_OP_FLUSH, 1, S), 0);
	CHECK_EQ(thr_group_set_limits(b, &(struct thr_limits){ .read_iops = 10 }, S,
				      msg, sizeof(msg)), 0);
	CHECK_EQ(thr_group_admit(a, THR_OP_WRITE, 1, S), 0);	/* seen at once */
	CHECK_EQ(thr_group_set_limits(a, &(struct thr_limits){ .iops = 5, .burst_iops = 1 },
				      S, msg, sizeof(msg)), -EINVAL);
	CHECK(strstr(msg, "burst-iops") != NULL);
	CHECK_EQ(thr_group_get_limits(a, &got), 0);
	CHECK_EQ(got.read_iops, 10);
	thr_group_close(b);
	CHECK_EQ(thr_group_members(a), 1);
	thr_group_close(a);
	a = open_ok("basic", &other);		/* alone again: initial applies */
	CHECK_EQ(thr_group_get_limits(a, &got), 0);
	CHECK(got.iops == 99 && got.read_iops == 0);
	thr_group_close(a);
	a = open_ok("basic", NULL);		/* NULL: keep what is there */
	CHECK_EQ(thr_group_get_limits(a, &got), 0);
	CHECK_EQ(got.iops, 99);
	thr_group_close(a);
	thr_group_close(NULL);
}

static void test_bad_open(void)
{
	static const char *const names[] = {
		"", ".hidden", "..", "a/b", "../x", "sp ace", "x\n",
		"12345678901234567890123456789012345678901234567890123456789012345",
	};
	struct thr_group *g = (struct thr_group *)&g;
	char path[128];
	int fd;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		CHECK_EQ(thr_group_open(dir, names[i], NULL, &g, msg, sizeof(msg)), -EINVAL);
		CHECK(g == NULL && msg[0]);
	}
	CHECK_EQ(thr_group_open("/nonexistent/dir", "x", NULL, &g, msg, sizeof(msg)),
		 -ENOENT);
	CHECK_EQ(thr_group_open(dir, "x", &(struct thr_limits){ .bps = 9, .burst_bps = 1 },
				&g, msg, sizeof(msg)), -EINVAL);

	/* files that are not segments of this version */
	path_of(path, sizeof(path), "empty");
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	CHECK_EQ(thr_group_open(dir, "empty", NULL, &g, msg, sizeof(msg)), -EPROTO);
	CHECK(strstr(msg, "not a vdiskd limit-group segment") && strstr(msg, path));

	path_of(path, sizeof(path), "junk");
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	for (size_t i = 0; i < sizeof(struct thr_group_seg); i++)
		CHECK_EQ(write(fd, "\x5a", 1), 1);
	close(fd);
	CHECK_EQ(thr_group_open(dir, "junk", NULL, &g, msg, sizeof(msg)), -EPROTO);

	thr_group_close(open_ok("ver", NULL));
	map_seg("ver")->version = THR_GROUP_VERSION + 1;
	CHECK_EQ(thr_group_open(dir, "ver", NULL, &g, msg, sizeof(msg)), -EPROTO);
	CHECK(strstr(msg, "version") != NULL);

	thr_group_close(open_ok("short", NULL));
	path_of(path, sizeof(path), "short");
	CHECK_EQ(truncate(path, 100), 0);
	CHECK_EQ(thr_group_open(dir, "short", NULL, &g, msg, sizeof(msg)), -EPROTO);
	CHECK(strstr(msg, "bytes") != NULL);

	path_of(path, sizeof(path), "link");
	CHECK_EQ(symlink("/dev/null", path), 0);
	CHECK(thr_group_open(dir, "link", NULL, &g, msg, sizeof(msg)) < 0);
	CHECK(g == NULL);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * S + (uint64_t)ts.tv_nsec;
}

/* Two processes, each as a vbd would be (ask, sleep the answer, ask
 * again) on the real monotonic clock (one clock between processes):
 * between them they get the group's rate, not twice it.  The bucket
 * bounds what goes in any interval: rate x length + capacity + 1. */
static void test_shared_rate(void)
{
	struct shared { uint64_t start; uint64_t got[2]; } *sh;
	const uint64_t len = 1 * S;
	uint64_t total;
	pid_t pid[2];
	int go[2];

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	REQUIRE(sh != MAP_FAILED && pipe(go) == 0);
	thr_group_close(open_ok("rate", &(struct thr_limits){ .iops = 2000 }));
	for (int c = 0; c < 2; c++) {
		pid[c] = fork();
		REQUIRE(pid[c] >= 0);
		if (pid[c] == 0) {
			struct thr_group *g = open_ok("rate", NULL);
			uint64_t now, w;
			char x;

			close(go[1]);
			if (read(go[0], &x, 1) != 0)
				_exit(3);
			while ((now = mono_ns()) < sh->start + len) {
				w = thr_group_admit(g, THR_OP_READ, 4096, now);
				if (!w) {
					sh->got[c]++;
					continue;
				}
				if (w > sh->start + len - now)
					w = sh->start + len - now;
				nanosleep(&(struct timespec){ .tv_sec = (time_t)(w / S),
							      .tv_nsec = (long)(w % S) }, NULL);
			}
			thr_group_close(g);
			_exit(0);
		}
	}
	sh->start = mono_ns();
	close(go[0]);
	close(go[1]);		/* both start */
	CHECK_EQ(wait_child(pid[0]), 0);
	CHECK_EQ(wait_child(pid[1]), 0);
	total = sh->got[0] + sh->got[1];
	fprintf(stderr, "shared rate: %llu + %llu in 1 s at iops=2000\n",
		(unsigned long long)sh->got[0], (unsigned long long)sh->got[1]);
	CHECK(total <= 2000 + 200 + 1);
	CHECK(total >= 1800);	/* lenient: a loaded machine may oversleep */
	munmap(sh, sizeof(*sh));
}

/* A child takes the lock, leaves garbage in the buckets and in the spare
 * limits (as a member killed mid-update would), and is killed. */
static pid_t crash_in_lock(const char *name, bool reap)
{
	int ready[2];
	pid_t pid;
	char x;

	REQUIRE(pipe(ready) == 0);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		struct thr_group *g = open_ok(name, NULL);
		struct thr_group_seg *seg = map_seg(name);

		(void)g;
		if (pthread_mutex_lock(&seg->lock) != 0)
			_exit(3);
		seg->st.level[THR_B_IOPS] = ~(unsigned __int128)0 >> 2;
		memset(&seg->lim[(atomic_load(&seg->cur) & 1) ^ 1], 0x77, 40);
		if (write(ready[1], "L", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(ready[1]);
	REQUIRE(read(ready[0], &x, 1) == 1);
	close(ready[0]);
	kill(pid, SIGKILL);
	if (reap)
		CHECK_EQ(wait_child(pid), 128 + SIGKILL);
	return pid;
}

static void wedged(int sig)
{
	static const char m[] = "test-throttle-group: wedged on a dead member's lock\n";

	(void)sig;
	if (write(2, m, sizeof(m) - 1) < 0)
		_exit(2);
	_exit(1);
}

static void test_killed_in_lock(void)
{
	struct thr_limits got;
	struct thr_group *g = open_ok("crash", &(struct thr_limits){ .iops = 10 });
	uint64_t w;

	crash_in_lock("crash", true);
	signal(SIGALRM, wedged);	/* fail, not hang, on a wedged lock */
	alarm(10);
	w = thr_group_admit(g, THR_OP_READ, 1, S);
	CHECK(w <= 100 * MS);	/* levels clamped to the bucket, not 2^126 */
	CHECK_EQ(thr_group_get_limits(g, &got), 0);
	CHECK(got.iops == 10 && got.read_iops == 0);	/* spare copy not in force */
	CHECK_EQ(thr_group_members(g), 1);
	CHECK_EQ(thr_group_set_limits(g, &(struct thr_limits){ .iops = 20 }, S, msg,
				      sizeof(msg)), 0);
	CHECK(thr_group_admit(g, THR_OP_READ, 1, 2 * S) == 0);

	/* with no limits in the group, admit takes no lock at all */
	CHECK_EQ(thr_group_set_limits(g, &(struct thr_limits){ 0 }, S, msg, sizeof(msg)), 0);
	pid_t pid = crash_in_lock("crash", false);	/* still dying */
	CHECK_EQ(thr_group_admit(g, THR_OP_WRITE, 1 << 20, 3 * S), 0);
	CHECK_EQ(wait_child(pid), 128 + SIGKILL);
	CHECK_EQ(thr_group_members(g), 1);
	alarm(0);
	thr_group_close(g);
}

static void test_stale_slots(void)
{
	struct thr_group *g = open_ok("stale", NULL), *h;
	struct thr_group_seg *seg = map_seg("stale");
	struct thr_member self;
	bool fake[THR_GROUP_MAX_MEMBERS];
	pid_t pid;

	/* a member that exits without closing */
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		open_ok("stale", NULL);
		_exit(0);
	}
	CHECK_EQ(wait_child(pid), 0);
	CHECK_EQ(thr_group_members(g), 1);

	/* a zombie: killed, not yet waited for */
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		open_ok("stale", NULL);
		raise(SIGKILL);
	}
	for (int i = 0; i < 1000; i++) {
		char state = 0;
		uint64_t start;

		if (thr_member_stat(pid, &state, &start) == 0 && state == 'Z')
			break;
		usleep(1000);
	}
	CHECK_EQ(thr_group_members(g), 1);
	CHECK_EQ(wait_child(pid), 128 + SIGKILL);

	/* a reused pid (ours, with another start time), and a full group */
	thr_member_self(&self);
	for (int i = 0; i < THR_GROUP_MAX_MEMBERS; i++) {
		fake[i] = !seg->slot[i].pid;
		if (fake[i])
			seg->slot[i] = (struct thr_group_slot){ .pid = self.pid,
								.start = self.start };
	}
	CHECK_EQ(thr_group_open(dir, "stale", NULL, &h, msg, sizeof(msg)), -EUSERS);
	CHECK(strstr(msg, "full") != NULL);
	CHECK_EQ(thr_group_members(g), THR_GROUP_MAX_MEMBERS);
	REQUIRE(fake[THR_GROUP_MAX_MEMBERS - 1] && fake[THR_GROUP_MAX_MEMBERS - 2]);
	if (self.start) {
		seg->slot[THR_GROUP_MAX_MEMBERS - 1].start = self.start + 12345;
		CHECK_EQ(thr_group_members(g), THR_GROUP_MAX_MEMBERS - 1);
		fake[THR_GROUP_MAX_MEMBERS - 1] = false;	/* reaped */
	}
	seg->slot[THR_GROUP_MAX_MEMBERS - 2].pid = pid;	/* waited for: gone */
	h = open_ok("stale", NULL);			/* takes a reaped slot */
	thr_group_close(h);
	for (int i = 0; i < THR_GROUP_MAX_MEMBERS - 2; i++)
		if (fake[i])
			seg->slot[i] = (struct thr_group_slot){ 0 };
	CHECK_EQ(thr_group_members(g), 1);
	thr_group_close(g);
}

/* Eight processes create the same new group at once: one segment, all
 * members, no temporary file left behind. */
static void test_create_race(void)
{
	enum { N = 8 };
	int go[2], done[2], hold[2];
	struct thr_group *g;
	pid_t pid[N];
	DIR *d;
	struct dirent *e;

	REQUIRE(pipe(go) == 0 && pipe(done) == 0 && pipe(hold) == 0);
	for (int c = 0; c < N; c++) {
		pid[c] = fork();
		REQUIRE(pid[c] >= 0);
		if (pid[c] == 0) {
			char x;

			close(go[1]);
			close(hold[1]);
			if (read(go[0], &x, 1) != 0)
				_exit(3);
			if (thr_group_open(dir, "race", &(struct thr_limits){ .iops = 100 },
					   &g, msg, sizeof(msg)))
				_exit(4);
			if (write(done[1], "x", 1) != 1 || read(hold[0], &x, 1) != 0)
				_exit(5);
			thr_group_close(g);
			_exit(0);
		}
	}
	close(go[0]);
	close(go[1]);
	close(hold[0]);
	for (int c = 0; c < N; c++) {
		char x;

		CHECK_EQ(read(done[0], &x, 1), 1);
	}
	g = open_ok("race", NULL);
	CHECK_EQ(thr_group_members(g), N + 1);
	close(hold[1]);
	for (int c = 0; c < N; c++)
		CHECK_EQ(wait_child(pid[c]), 0);
	CHECK_EQ(thr_group_members(g), 1);
	thr_group_close(g);
	d = opendir(dir);
	REQUIRE(d);
	while ((e = readdir(d)))
		CHECK(strncmp(e->d_name, ".limit-group-", 13) != 0);
	closedir(d);
}

static pid_t main_pid;

/* atexit: also after a failed REQUIRE; not in children (they exit too) */
static void cleanup(void)
{
	DIR *d;
	struct dirent *e;

	if (getpid() != main_pid)
		return;
	d = opendir(dir);

	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.' || strncmp(e->d_name, ".limit", 6) == 0)
			unlinkat(dirfd(d), e->d_name, 0);
	if (d)
		closedir(d);
	rmdir(dir);
}

int main(void)
{
	pthread_mutexattr_t attr;

	snprintf(dir, sizeof(dir), "/tmp/test-thr-group.XXXXXX");
	if (!mkdtemp(dir)) {
		printf("skip: mkdtemp: %s\n", strerror(errno));
		return 77;
	}
	if (pthread_mutexattr_init(&attr) ||
	    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) ||
	    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED)) {
		printf("skip: no robust process-shared mutexes here\n");
		rmdir(dir);
		return 77;
	}
	main_pid = getpid();
	atexit(cleanup);
	test_basic();
	test_bad_open();
	test_shared_rate();
	test_killed_in_lock();
	test_stale_slots();
	test_create_race();
	return test_done("test-throttle-group");
}
