/* Blocked submission does not starve completion.
 *
 * With tests/lib/stall-shim.so preloaded (this program re-executes itself
 * with LD_PRELOAD set when the shim is not loaded yet; under ASan libasan
 * goes first), io_submit hands the iocbs to the kernel and then sleeps
 * STALL_SUBMIT_MS (default 500) before returning to the submit thread.
 * The test queues reads, kicks, and checks that their completions are
 * reaped and their callbacks run on the main loop while io_submit has not
 * yet returned; then that requests queued during the stall are submitted
 * once it ends, and that the queue's books balance.  Both reaping paths
 * (user-space ring and io_getevents) are exercised.
 *
 * With the shim loaded anyway, a last phase turns on its fault injection:
 * io_submit answers -EAGAIN or takes only a prefix of the iocbs in 30% of
 * the calls, under a random read/write load checked against a model:
 * nothing may be lost, completed twice or corrupted. */
#include <dlfcn.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "queue/queue.h"
#include "queue/tiocb.h"
#include "tests/lib/test.h"

#define FILE_SIZE	(8u << 20)
#define BLK		4096u
#define NFIRST		8
#define NSECOND		4

/* The shim's variables. */
static int *shim_armed, *shim_stalled, *shim_release;
static unsigned long *shim_stalls, *shim_eagains, *shim_shorts;
static int *shim_fault_pct;
static long *shim_last_ret;
static uint64_t *shim_enter_ns, *shim_submitted_ns, *shim_return_ns;

static struct event_base *base;
static pthread_t main_thread;
static uint8_t *content;
static int fd = -1;
static long stall_ms;

struct rd {
	struct tiocb t;
	uint8_t *buf;
	uint64_t off;
	bool done;
	long res;
	int saw_stalled;
	uint64_t at_ns;
};

static unsigned left;

static int find_asan(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	if (info->dlpi_name && strstr(info->dlpi_name, "libasan")) {
		snprintf(arg, PATH_MAX, "%s", info->dlpi_name);
		return 1;
	}
	return 0;
}

/* Runs this program again with the shim preloaded (after libasan, which
 * must come first when the program uses ASan). */
static int reexec(char **argv)
{
	char self[PATH_MAX], dir[PATH_MAX], shim[PATH_MAX], asan[PATH_MAX] = "";
	char preload[3 * PATH_MAX + 8];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (getenv("STALL_SHIM_REEXEC")) {
		printf("FAIL: re-executed with LD_PRELOAD=%s but the shim is not loaded\n",
		       getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "");
		return 1;
	}
	if (n < 0) {
		printf("SKIP: readlink /proc/self/exe: %s\n", strerror(errno));
		return 77;
	}
	self[n] = 0;
	snprintf(dir, sizeof(dir), "%s", self);
	const char *tb = getenv("TESTS_BUILD");
	snprintf(shim, sizeof(shim), "%s/stall-shim.so", tb && *tb ? tb : dirname(dir));
	if (access(shim, R_OK) < 0) {
		printf("SKIP: %s not built (make tests builds it)\n", shim);
		return 77;
	}
	dl_iterate_phdr(find_asan, asan);
	const char *old = getenv("LD_PRELOAD");
	snprintf(preload, sizeof(preload), "%s%s%s%s%s", asan, *asan ? ":" : "", shim,
		 old && *old ? ":" : "", old ? old : "");
	setenv("LD_PRELOAD", preload, 1);
	setenv("STALL_SHIM_REEXEC", "1", 1);
	if (!getenv("STALL_SUBMIT_MS"))
		setenv("STALL_SUBMIT_MS", "500", 1);
	printf("re-executing with LD_PRELOAD=%s STALL_SUBMIT_MS=%s\n", preload,
	       getenv("STALL_SUBMIT_MS"));
	fflush(stdout);
	execv(self, argv);
	printf("FAIL: execv %s: %s\n", self, strerror(errno));
	return 1;
}

static void *shim_sym(const char *name)
{
	void *p = dlsym(RTLD_DEFAULT, name);
	REQUIRE(p);
	return p;
}

static int64_t now_ns(void)
{
	return (int64_t)vd_now_ns();
}

static double ms_between(uint64_t a, uint64_t b)
{
	return ((double)b - (double)a) / 1e6;
}

static void rd_done(struct tiocb *t, long res)
{
	struct rd *r = t->data;

	CHECK(pthread_equal(pthread_self(), main_thread));
	CHECK(!r->done);
	r->done = true;
	r->res = res;
	r->saw_stalled = __atomic_load_n(shim_stalled, __ATOMIC_ACQUIRE);
	r->at_ns = (uint64_t)now_ns();
	if (res == BLK)
		CHECK(memcmp(r->buf, content + r->off, BLK) == 0);
	left--;
}

static void rd_prep(struct rd *r, uint64_t off)
{
	memset(r, 0, sizeof(*r));
	r->buf = aligned_alloc(BLK, BLK);
	REQUIRE(r->buf);
	r->off = off;
	tiocb_prep_read(&r->t, fd, r->buf, BLK, off, rd_done, r);
}

static void run(bool no_user_ring)
{
	struct tq_options o;
	struct tq_fd_caps caps;
	struct tq_stats s;
	struct tqueue *q;
	struct rd first[NFIRST], second[NSECOND], warm;
	const char *name = no_user_ring ? "io_getevents" : "user ring";

	tq_options_default(&o);
	o.no_user_ring = no_user_ring;
	REQUIRE(tq_create(base, &o, &q) == 0);
	REQUIRE(tq_probe_fd(q, fd, &caps) == 0);
	alarm((unsigned)(stall_ms / 1000) * 4 + 30);

	/* Warm up: the threads run and one read goes through, unstalled. */
	rd_prep(&warm, 0);
	left = 1;
	tq_submit(q, &warm.t);
	while (left)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK_EQ(warm.res, BLK);
	free(warm.buf);

	/* Reads at scattered offsets (several iocbs) plus a sequential pair
	 * (one merged iocb), one kick: one io_submit, which stalls. */
	unsigned long stalls0 = __atomic_load_n(shim_stalls, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < NFIRST; i++)
		rd_prep(&first[i], i < 2 ? (1u << 20) + i * BLK : (uint64_t)(i * 7 + 3) * 16 * BLK);
	left = NFIRST;
	for (unsigned i = 0; i < NFIRST; i++)
		tq_queue(q, &first[i].t);
	__atomic_store_n(shim_armed, 1, __ATOMIC_RELEASE);
	uint64_t kick_ns = (uint64_t)now_ns();
	tq_kick(q);
	while (left)
		event_base_loop(base, EVLOOP_ONCE);
	uint64_t cb_ns = (uint64_t)now_ns();
	int still_stalled = __atomic_load_n(shim_stalled, __ATOMIC_ACQUIRE);

	unsigned during = 0;
	uint64_t last_cb = 0;
	for (unsigned i = 0; i < NFIRST; i++) {
		CHECK_EQ(first[i].res, BLK);
		during += first[i].saw_stalled == 1;
		if (first[i].at_ns > last_cb)
			last_cb = first[i].at_ns;
	}

	/* While io_submit is still blocked: more reads, kicked.  The submit
	 * thread is busy, so they wait for the stall to end. */
	for (unsigned i = 0; i < NSECOND; i++)
		rd_prep(&second[i], (4u << 20) + (uint64_t)(i * 5 + 1) * 32 * BLK);
	left = NSECOND;
	for (unsigned i = 0; i < NSECOND; i++)
		tq_queue(q, &second[i].t);
	tq_kick(q);
	tq_get_stats(q, &s);
	if (still_stalled && __atomic_load_n(shim_stalled, __ATOMIC_ACQUIRE))
		CHECK_EQ(s.waiting, NSECOND);	/* the submit thread is still blocked */
	while (left)
		event_base_loop(base, EVLOOP_ONCE);
	for (unsigned i = 0; i < NSECOND; i++) {
		CHECK_EQ(second[i].res, BLK);
		CHECK_EQ(second[i].saw_stalled, 0);
	}

	uint64_t enter = __atomic_load_n(shim_enter_ns, __ATOMIC_ACQUIRE);
	uint64_t submitted = __atomic_load_n(shim_submitted_ns, __ATOMIC_ACQUIRE);
	uint64_t ret = __atomic_load_n(shim_return_ns, __ATOMIC_ACQUIRE);
	unsigned long stalls = __atomic_load_n(shim_stalls, __ATOMIC_ACQUIRE) - stalls0;

	printf("%s: %u reads queued, one kick; io_submit (real call returned %ld after "
	       "%.2f ms) stalled\n", name, NFIRST,
	       __atomic_load_n(shim_last_ret, __ATOMIC_ACQUIRE), ms_between(enter, submitted));
	printf("%s: callbacks ran %.2f ms after submit (%.2f ms after the kick), "
	       "%u of %u while io_submit was blocked; io_submit returned after %.1f ms\n",
	       name, ms_between(submitted, last_cb), ms_between(kick_ns, last_cb), during,
	       NFIRST, ms_between(enter, ret));
	CHECK_EQ(stalls, 1);
	CHECK_EQ(during, NFIRST);
	CHECK(still_stalled);
	CHECK(last_cb < ret);
	CHECK(cb_ns < ret);
	CHECK(ms_between(enter, ret) >= (double)stall_ms * 0.9);
	printf("%s: %u reads queued during the stall completed after it\n", name, NSECOND);

	tq_get_stats(q, &s);
	CHECK_EQ(s.waiting, 0);
	CHECK_EQ(s.pending, 0);
	CHECK_EQ(tq_outstanding(q), 0);
	if (no_user_ring) {
		CHECK(s.getevents_reaps > 0);
		CHECK_EQ(s.ring_reaps, 0);
	} else {
		CHECK(s.ring_reaps > 0);
		CHECK_EQ(s.getevents_reaps, 0);
	}
	CHECK_EQ(s.ring_reaps + s.getevents_reaps, s.iocbs_submitted);
	CHECK_EQ(s.iocbs_submitted + s.merged, 1 + NFIRST + NSECOND);
	alarm(0);
	tq_destroy(q);
	for (unsigned i = 0; i < NFIRST; i++)
		free(first[i].buf);
	for (unsigned i = 0; i < NSECOND; i++)
		free(second[i].buf);
}

/* ---- short submits and EAGAIN ---- */

#define FNREQ	64
#define FMAX	(64u << 10)

struct frq {
	struct tiocb t;
	uint8_t *buf;
	uint64_t off;
	size_t len;
	bool write, busy;
};

static struct frq frqs[FNREQ];
static uint8_t *fmodel;
static unsigned f_out, f_done, f_bad;
static uint64_t rng = 4242;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void frq_done(struct tiocb *t, long res)
{
	struct frq *r = t->data;

	if (!r->busy) {
		fprintf(stderr, "faults: request at %" PRIu64 " completed twice\n", r->off);
		test_failures++;
		return;
	}
	if (res != (long)r->len) {
		fprintf(stderr, "faults: %s %" PRIu64 "+%zu: res %ld\n",
			r->write ? "write" : "read", r->off, r->len, res);
		f_bad++;
	} else if (r->write) {
		memcpy(fmodel + r->off, r->buf, r->len);
	} else if (memcmp(r->buf, fmodel + r->off, r->len)) {
		fprintf(stderr, "faults: read %" PRIu64 "+%zu: wrong data\n", r->off, r->len);
		f_bad++;
	}
	r->busy = false;
	f_out--;
	f_done++;
}

static bool f_conflict(bool write, uint64_t off, size_t len)
{
	for (unsigned i = 0; i < FNREQ; i++) {
		const struct frq *r = &frqs[i];
		if (r->busy && (write || r->write) && off < r->off + r->len &&
		    r->off < off + len)
			return true;
	}
	return false;
}

static struct frq *frq_get(void)
{
	for (unsigned i = 0; i < FNREQ; i++)
		if (!frqs[i].busy)
			return &frqs[i];
	return NULL;
}

static void faults_phase(void)
{
	const char *dir = getenv("TESTS_TMP");
	char path[PATH_MAX];
	struct tq_options o;
	struct tq_stats s;
	struct tqueue *q;
	unsigned queued = 0, total = 2000;
	unsigned long e0 = __atomic_load_n(shim_eagains, __ATOMIC_ACQUIRE);
	unsigned long s0 = __atomic_load_n(shim_shorts, __ATOMIC_ACQUIRE);

	snprintf(path, sizeof(path), "%s/test-queue-faults.XXXXXX", dir && *dir ? dir : "/tmp");
	int wfd = mkstemp(path);
	REQUIRE(wfd >= 0);
	fmodel = malloc(FILE_SIZE);
	REQUIRE(fmodel);
	for (size_t i = 0; i < FILE_SIZE; i += 8) {
		uint64_t v = rnd();
		memcpy(fmodel + i, &v, 8);
	}
	REQUIRE(pwrite(wfd, fmodel, FILE_SIZE, 0) == FILE_SIZE);
	close(wfd);
	int ffd = open(path, O_RDWR | O_DIRECT);
	if (ffd < 0)
		ffd = open(path, O_RDWR);
	REQUIRE(ffd >= 0);
	unlink(path);
	for (unsigned i = 0; i < FNREQ; i++) {
		frqs[i].buf = aligned_alloc(BLK, FMAX);
		REQUIRE(frqs[i].buf);
	}

	tq_options_default(&o);
	o.depth = 16;
	REQUIRE(tq_create(base, &o, &q) == 0);
	alarm(120);
	__atomic_store_n(shim_fault_pct, 30, __ATOMIC_RELEASE);
	while (queued < total || f_out) {
		unsigned n = (unsigned)(rnd() % 32) + 1, k = 0;
		while (queued < total && k < n) {
			bool w = rnd() % 2;
			unsigned run = (unsigned)(rnd() % 8) + 1;
			uint64_t off = rnd() % ((FILE_SIZE - FMAX) / BLK) * BLK;
			for (unsigned j = 0; j < run && k < n && queued < total; j++) {
				size_t len = (rnd() % (FMAX / BLK) + 1) * BLK;
				struct frq *r = frq_get();
				if (!r || off + len > FILE_SIZE || f_conflict(w, off, len))
					break;
				r->busy = true;
				r->write = w;
				r->off = off;
				r->len = len;
				if (w) {
					for (size_t b = 0; b < len; b += 8) {
						uint64_t v = rnd();
						memcpy(r->buf + b, &v, 8);
					}
					tiocb_prep_write(&r->t, ffd, r->buf, len, off, frq_done, r);
				} else {
					tiocb_prep_read(&r->t, ffd, r->buf, len, off, frq_done, r);
				}
				tq_queue(q, &r->t);
				f_out++;
				queued++;
				k++;
				off += len;
			}
			if (!frq_get())
				break;
		}
		tq_kick(q);
		if (f_out)
			event_base_loop(base, EVLOOP_ONCE);
	}
	__atomic_store_n(shim_fault_pct, 0, __ATOMIC_RELEASE);
	alarm(0);
	tq_get_stats(q, &s);
	unsigned long eagains = __atomic_load_n(shim_eagains, __ATOMIC_ACQUIRE) - e0;
	unsigned long shorts = __atomic_load_n(shim_shorts, __ATOMIC_ACQUIRE) - s0;
	printf("faults: %u reads/writes, io_submit calls %" PRIu64 " (%lu answered -EAGAIN, "
	       "%lu took a prefix), iocbs %" PRIu64 ", merged %" PRIu64 "; %u completed, "
	       "%u wrong\n", total, s.io_submit_calls, eagains, shorts, s.iocbs_submitted,
	       s.merged, f_done, f_bad);
	CHECK(eagains > 0);
	CHECK(shorts > 0);
	CHECK_EQ(f_done, total);
	CHECK_EQ(f_bad, 0);
	CHECK_EQ(s.waiting, 0);
	CHECK_EQ(s.pending, 0);
	CHECK_EQ(tq_outstanding(q), 0);
	CHECK_EQ(s.iocbs_submitted + s.merged, total);
	CHECK_EQ(s.ring_reaps + s.getevents_reaps, s.iocbs_submitted);
	tq_destroy(q);

	uint8_t *buf = aligned_alloc(BLK, FILE_SIZE);
	REQUIRE(buf);
	REQUIRE(pread(ffd, buf, FILE_SIZE, 0) == FILE_SIZE);
	CHECK(memcmp(buf, fmodel, FILE_SIZE) == 0);
	printf("faults: file contents match the model\n");
	free(buf);
	for (unsigned i = 0; i < FNREQ; i++)
		free(frqs[i].buf);
	free(fmodel);
	close(ffd);
}

static int open_file(void)
{
	const char *dir = getenv("TESTS_TMP");
	char path[PATH_MAX];

	if (!dir || !*dir)
		dir = "/tmp";
	snprintf(path, sizeof(path), "%s/test-queue-stall.XXXXXX", dir);
	int wfd = mkstemp(path);
	if (wfd < 0) {
		printf("SKIP: cannot create a file in %s: %s\n", dir, strerror(errno));
		return -1;
	}
	content = malloc(FILE_SIZE);
	REQUIRE(content);
	for (size_t i = 0; i < FILE_SIZE; i++)
		content[i] = (uint8_t)(i * 2654435761u >> 13);
	REQUIRE(pwrite(wfd, content, FILE_SIZE, 0) == FILE_SIZE);
	REQUIRE(fsync(wfd) == 0);
	close(wfd);
	fd = open(path, O_RDONLY | O_DIRECT);
	if (fd < 0) {
		printf("note: O_DIRECT refused in %s: buffered reads\n", dir);
		fd = open(path, O_RDONLY);
	}
	REQUIRE(fd >= 0);
	unlink(path);
	return 0;
}

int main(int argc, char **argv)
{
	(void)argc;
	if (!dlsym(RTLD_DEFAULT, "stall_shim_stalled"))
		return reexec(argv);

	const char *e = getenv("STALL_SUBMIT_MS");
	stall_ms = e ? strtol(e, NULL, 10) : 0;
	if (stall_ms <= 0) {
		printf("SKIP: STALL_SUBMIT_MS is not set: the shim would not stall\n");
		return 77;
	}
	if (getenv("STALL_SUBMIT_AFTER") || getenv("STALL_SUBMIT_FILE")) {
		printf("SKIP: unset STALL_SUBMIT_AFTER/STALL_SUBMIT_FILE: this test arms "
		       "the shim itself\n");
		return 77;
	}
	printf("test-queue-stall: io_submit stalls %ld ms after handing its iocbs to "
	       "the kernel\n", stall_ms);
	shim_armed = shim_sym("stall_shim_armed");
	shim_stalled = shim_sym("stall_shim_stalled");
	shim_release = shim_sym("stall_shim_release");
	shim_stalls = shim_sym("stall_shim_stalls");
	shim_last_ret = shim_sym("stall_shim_last_ret");
	shim_enter_ns = shim_sym("stall_shim_enter_ns");
	shim_submitted_ns = shim_sym("stall_shim_submitted_ns");
	shim_return_ns = shim_sym("stall_shim_return_ns");
	shim_eagains = shim_sym("stall_shim_eagains");
	shim_shorts = shim_sym("stall_shim_shorts");
	shim_fault_pct = shim_sym("stall_shim_fault_pct");
	(void)shim_release;

	main_thread = pthread_self();
	test_timeout("test-queue-stall", 0);	/* each part arms its own alarm() */
	base = event_base_new();
	REQUIRE(base);
	if (open_file() < 0)
		return 77;
	run(false);
	run(true);
	faults_phase();
	close(fd);
	free(content);
	event_base_free(base);
	return test_done("test-queue-stall");
}
