/* The real tiocb queue under load, on a temporary file.
 *
 * Thousands of random reads and writes (4 KiB aligned, 4 KiB..256 KiB,
 * many in sequential runs so that they coalesce), flushes, FUA writes and
 * worker calls, queued in random batches with one tq_kick per batch, some
 * queued again from inside completion callbacks.  Data is checked against
 * an in-memory copy of the file; writes never overlap other requests in
 * flight (the queue does not order them).  Each configuration runs on a
 * fresh queue and its statistics are checked exactly:
 *
 *   default            user-space ring reaping, IOCB_CMD_FDSYNC, RWF_DSYNC
 *   no_user_ring       io_getevents reaping
 *   no_fdsync+no_rwf   fdatasync on the worker, FUA as write + flush
 *   small              depth 4, at most 3 iovecs / 64 KiB per iocb
 *   no_merge           one iocb per tiocb
 *
 * Then failures (reads past EOF, writes on a read-only fd, misaligned
 * O_DIRECT buffers inside merged iocbs, failing calls), the merge ratio of
 * sequential 4 KiB writes, and tq_destroy with requests still queued.
 *
 * SEED=N picks the seed (printed), QUEUE_OPS=N the requests per
 * configuration. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/queue.h"
#include "queue/tiocb.h"
#include "tests/lib/test.h"

#define FILE_SIZE	(32u << 20)
#define MAX_IO		(256u << 10)
#define NREQ		160
#define BLK		4096u

static uint64_t rng_state, seed;
static pthread_t main_thread;
static struct event_base *base;
static struct tqueue *q;
static int fd_rw = -1, fd_ro = -1;
static bool direct;
static uint8_t *model;
static char path[PATH_MAX];

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd_in(uint64_t lo, uint64_t hi)
{
	return lo + rnd() % (hi - lo + 1);
}

static bool chance(unsigned percent)
{
	return rnd() % 100 < percent;
}

static void fill_random(uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t v = rnd();
		memcpy(p + i, &v, 8);
	}
}

/* ---- requests ---- */

enum kind { K_READ, K_WRITE, K_FUA, K_FLUSH, K_CALL };

struct req {
	struct tiocb t;
	struct iovec iov[4];
	uint8_t *mem;		/* MAX_IO + BLK, aligned */
	uint8_t *buf;		/* where the data goes (mem, or mem + 1) */
	enum kind kind;
	int fd;
	uint64_t off;
	size_t len;
	long want;
	bool busy;
	bool followups;		/* may queue more from its callback */
	bool call_off_main;	/* its call ran on another thread */
	struct req *next_free;
};

static struct req reqs[NREQ];
static struct req *free_reqs;

/* What the test expects the queue to have seen. */
static struct counts {
	unsigned long reads, writes, fua, flushes, calls, done, bytes;
	unsigned long followups, cb_stats;
} cnt;
static unsigned outstanding;	/* queued and not yet called back */
static bool allow_followups;
static bool failed_data;

static struct req *req_get(void)
{
	struct req *r = free_reqs;
	if (r) {
		free_reqs = r->next_free;
		r->busy = true;
	}
	return r;
}

static void req_put(struct req *r)
{
	r->busy = false;
	r->next_free = free_reqs;
	free_reqs = r;
}

static bool is_write(enum kind k)
{
	return k == K_WRITE || k == K_FUA;
}

/* A write must not overlap anything in flight, a read no write. */
static bool conflicts(enum kind k, uint64_t off, size_t len)
{
	for (unsigned i = 0; i < NREQ; i++) {
		const struct req *r = &reqs[i];
		if (!r->busy || r->kind == K_FLUSH || r->kind == K_CALL)
			continue;
		if (!is_write(k) && !is_write(r->kind))
			continue;
		if (off < r->off + r->len && r->off < off + len)
			return true;
	}
	return false;
}

static void req_done(struct tiocb *t, long res);

static long req_call(struct tiocb *t)
{
	struct req *r = t->data;
	/* Runs on the worker: anything but the main thread. */
	r->call_off_main = !pthread_equal(pthread_self(), main_thread);
	return r->want;
}

/* Prepares r as kind at off/len (READ/WRITE/FUA), split into 1..4 iovecs. */
static void req_prep(struct req *r, enum kind k, int fd, uint64_t off, size_t len)
{
	r->kind = k;
	r->fd = fd;
	r->off = off;
	r->len = len;
	r->buf = r->mem;
	r->followups = false;
	r->call_off_main = false;
	switch (k) {
	case K_FLUSH:
		r->want = 0;
		tiocb_prep_flush(&r->t, fd, req_done, r);
		return;
	case K_CALL:
		r->want = chance(20) ? -ENOSPC : (long)rnd_in(0, 1 << 20);
		tiocb_prep_call(&r->t, req_call, req_done, r);
		return;
	default:
		break;
	}
	r->want = (long)len;
	if (is_write(k))
		fill_random(r->buf, len);
	unsigned nblk = (unsigned)(len / BLK);
	int iovcnt = nblk >= 2 && chance(30) ? (int)rnd_in(2, nblk < 4 ? nblk : 4) : 1;
	if (iovcnt == 1) {
		if (k == K_READ)
			tiocb_prep_read(&r->t, fd, r->buf, len, off, req_done, r);
		else
			tiocb_prep_write(&r->t, fd, r->buf, len, off, req_done, r);
	} else {
		size_t pos = 0;
		for (int i = 0; i < iovcnt; i++) {
			size_t left_blk = (len - pos) / BLK;
			size_t l = i == iovcnt - 1 ? len - pos
				   : rnd_in(1, left_blk - (size_t)(iovcnt - 1 - i)) * BLK;
			r->iov[i].iov_base = r->buf + pos;
			r->iov[i].iov_len = l;
			pos += l;
		}
		if (k == K_READ)
			tiocb_prep_readv(&r->t, fd, r->iov, iovcnt, off, req_done, r);
		else
			tiocb_prep_writev(&r->t, fd, r->iov, iovcnt, off, req_done, r);
	}
	if (k == K_FUA)
		r->t.flags |= TIOCB_FUA;
}

static void count_queued(const struct req *r)
{
	switch (r->kind) {
	case K_READ: cnt.reads++; break;
	case K_WRITE: cnt.writes++; break;
	case K_FUA: cnt.writes++; cnt.fua++; break;
	case K_FLUSH: cnt.flushes++; break;
	case K_CALL: cnt.calls++; break;
	}
	outstanding++;
}

static void req_queue(struct req *r)
{
	count_queued(r);
	tq_queue(q, &r->t);
}

static void req_done(struct tiocb *t, long res)
{
	struct req *r = t->data;

	if (!r->busy) {
		fprintf(stderr, "request at %" PRIu64 " (kind %d) completed twice\n",
			r->off, r->kind);
		test_failures++;
		return;
	}
	CHECK(pthread_equal(pthread_self(), main_thread));
	cnt.done++;
	outstanding--;
	if (res != r->want) {
		fprintf(stderr, "kind %d fd %d off %" PRIu64 " len %zu: res %ld, want %ld\n",
			r->kind, r->fd, r->off, r->len, res, r->want);
		test_failures++;
	}
	if (r->kind == K_CALL)
		CHECK(r->call_off_main);
	if (r->kind == K_READ || is_write(r->kind)) {
		CHECK_EQ(t->offset, r->off);
		CHECK_EQ(t->len, r->len);
		CHECK(t->op == (r->kind == K_READ ? TIOCB_READ : TIOCB_WRITE));
	}
	if (res == (long)r->len && r->len) {
		cnt.bytes += r->len;
		if (is_write(r->kind)) {
			memcpy(model + r->off, r->buf, r->len);
		} else if (r->kind == K_READ && memcmp(r->buf, model + r->off, r->len)) {
			size_t i = 0;
			while (r->buf[i] == model[r->off + i])
				i++;
			fprintf(stderr, "read %" PRIu64 "+%zu: data differs from the model at "
				"byte %zu\n", r->off, r->len, i);
			test_failures++;
			failed_data = true;
		}
	}

	bool again = r->kind == K_READ && allow_followups && res == r->want &&
		     chance(5);
	uint64_t off = r->off;
	size_t len = r->len;
	req_put(r);

	/* Callbacks run without the queue lock: the stats and queuing more
	 * from here must work (a held lock would deadlock). */
	if (allow_followups && chance(2)) {
		struct tq_stats s;
		tq_get_stats(q, &s);
		cnt.cb_stats++;
	}
	if (again && !conflicts(K_READ, off, len)) {
		struct req *n = req_get();
		if (n) {
			req_prep(n, K_READ, fd_rw, off, len);
			req_queue(n);
			tq_kick(q);
			cnt.followups++;
		}
	}
}

/* ---- the event loop ---- */

static void loop_once(bool block)
{
	event_base_loop(base, block ? EVLOOP_ONCE : EVLOOP_NONBLOCK);
}

static void drain(void)
{
	while (outstanding > 0)
		loop_once(true);
}

static void check_outstanding(void)
{
	struct tq_stats s;

	CHECK_EQ(tq_outstanding(q), outstanding);
	tq_get_stats(q, &s);
	CHECK_EQ(s.waiting + s.pending, outstanding);
}

/* ---- load ---- */

/* Queues one random batch (sequential runs, now and then a flush, a call
 * or a FUA write) and kicks once.  Returns the number queued. */
static unsigned queue_batch(unsigned max)
{
	unsigned n = (unsigned)rnd_in(1, 48), queued = 0;

	if (n > max)
		n = max;
	while (queued < n && free_reqs) {
		unsigned k = (unsigned)(rnd() % 100);
		struct req *r;

		if (k <= 2) {
			r = req_get();
			req_prep(r, k < 2 ? K_FLUSH : K_CALL, fd_rw, 0, 0);
			r->followups = false;
			req_queue(r);
			queued++;
			continue;
		}
		enum kind kind = k < 50 ? K_READ : (chance(8) ? K_FUA : K_WRITE);
		unsigned run = (unsigned)rnd_in(1, 16);
		uint64_t off = rnd_in(0, (FILE_SIZE - MAX_IO) / BLK) * BLK;
		for (unsigned i = 0; i < run && queued < n && free_reqs; i++) {
			size_t len = (chance(70) ? rnd_in(1, 4) : rnd_in(1, MAX_IO / BLK)) * BLK;
			if (off + len > FILE_SIZE || conflicts(kind, off, len))
				break;
			r = req_get();
			req_prep(r, kind, fd_rw, off, len);
			req_queue(r);
			queued++;
			off += len;
		}
	}
	if (queued)
		tq_kick(q);
	return queued;
}

struct config {
	const char *name;
	struct tq_options o;
};

static void run_config(struct config *c, unsigned nops)
{
	struct tq_fd_caps caps;
	struct tq_stats s;
	unsigned queued = 0;

	memset(&cnt, 0, sizeof(cnt));
	REQUIRE(tq_create(base, &c->o, &q) == 0);
	REQUIRE(tq_probe_fd(q, fd_rw, &caps) == 0);
	const struct tq_fd_caps *qc = tq_caps(q);
	bool fdsync = qc->fdsync, rwf = qc->rwf_dsync;
	if (c->o.no_fdsync)
		CHECK(!fdsync);
	if (c->o.no_rwf_dsync)
		CHECK(!rwf);

	alarm(180);
	allow_followups = true;
	while (queued < nops) {
		queued += queue_batch(nops - queued);
		check_outstanding();
		/* Sometimes let more batches pile up before waiting. */
		loop_once(outstanding > 0 && (!free_reqs || chance(50)));
		check_outstanding();
	}
	drain();
	alarm(0);
	allow_followups = false;

	tq_get_stats(q, &s);
	unsigned long kernel_tiocbs = cnt.reads + cnt.writes +
		(fdsync ? cnt.flushes + (rwf ? 0 : cnt.fua) : 0);
	unsigned long worker = cnt.calls + (fdsync ? 0 : cnt.flushes + (rwf ? 0 : cnt.fua));

	printf("%-16s FDSYNC %-3s RWF_DSYNC %-3s: %lu reads, %lu writes (%lu FUA), %lu flushes, "
	       "%lu calls, %lu follow-ups from callbacks, %.1f MiB; iocbs %" PRIu64
	       ", io_submit calls %" PRIu64 ", merged %" PRIu64 ", ring reaps %" PRIu64
	       ", getevents reaps %" PRIu64 ", worker %" PRIu64 "\n",
	       c->name, fdsync ? "yes" : "no", rwf ? "yes" : "no", cnt.reads, cnt.writes,
	       cnt.fua, cnt.flushes, cnt.calls, cnt.followups, cnt.bytes / 1048576.0,
	       s.iocbs_submitted, s.io_submit_calls, s.merged, s.ring_reaps,
	       s.getevents_reaps, s.worker_calls);

	CHECK_EQ(cnt.done, cnt.reads + cnt.writes + cnt.flushes + cnt.calls);
	CHECK_EQ(s.waiting, 0);
	CHECK_EQ(s.pending, 0);
	CHECK_EQ(tq_outstanding(q), 0);
	/* Every tiocb the kernel saw either had its own iocb or rode in one. */
	CHECK_EQ(s.iocbs_submitted + s.merged, kernel_tiocbs);
	CHECK_EQ(s.worker_calls, worker);
	CHECK(s.io_submit_calls > 0 && s.io_submit_calls <= s.iocbs_submitted);
	CHECK_EQ(s.ring_reaps + s.getevents_reaps, s.iocbs_submitted);
	if (c->o.no_user_ring) {
		CHECK_EQ(s.ring_reaps, 0);
		CHECK(s.getevents_reaps > 0);
	} else {
		CHECK(s.ring_reaps > 0);
		CHECK_EQ(s.getevents_reaps, 0);
	}
	if (c->o.no_merge) {
		CHECK_EQ(s.merged, 0);
	} else {
		CHECK(s.merged > 0);
		CHECK(s.iocbs_submitted < kernel_tiocbs);
	}
	if (c->o.no_fdsync || c->o.no_rwf_dsync)
		CHECK(s.worker_calls > cnt.calls);
	tq_destroy(q);
	q = NULL;
}

/* ---- failures ---- */

static void errors_phase(void)
{
	struct tq_options o;
	struct tq_fd_caps caps;
	struct tq_stats s;
	struct req *r;

	tq_options_default(&o);
	REQUIRE(tq_create(base, &o, &q) == 0);
	REQUIRE(tq_probe_fd(q, fd_rw, &caps) == 0);
	memset(&cnt, 0, sizeof(cnt));
	alarm(60);

	/* A read wholly past EOF gets 0 bytes twice: -EIO, never success. */
	r = req_get();
	req_prep(r, K_READ, fd_rw, FILE_SIZE, BLK);
	r->want = -EIO;
	req_queue(r);
	/* A read across EOF: short twice, -EIO. */
	r = req_get();
	req_prep(r, K_READ, fd_rw, FILE_SIZE - BLK, 2 * BLK);
	r->want = -EIO;
	req_queue(r);
	tq_kick(q);
	drain();
	printf("errors: read past EOF and read across EOF fail with -EIO\n");

	/* A merged run that ends past EOF: the four inside complete with their
	 * data, the one outside with -EIO. */
	for (unsigned i = 0; i < 5; i++) {
		r = req_get();
		req_prep(r, K_READ, fd_rw, FILE_SIZE - 4 * BLK + i * BLK, BLK);
		if (i == 4)
			r->want = -EIO;
		req_queue(r);
	}
	tq_kick(q);
	drain();
	tq_get_stats(q, &s);
	printf("errors: merged run across EOF: 4 reads complete, the one past EOF gets "
	       "-EIO (merged %" PRIu64 ")\n", s.merged);

	/* io_submit refuses writes on a read-only fd (-EBADF): a lone one fails
	 * alone, a merged pair is split and each fails; reads queued in the
	 * same batch, before and after, are not hurt. */
	uint64_t base_off = 4u << 20;
	for (unsigned i = 0; i < 3; i++) {
		r = req_get();
		req_prep(r, K_READ, fd_rw, base_off + i * BLK, BLK);
		r->t.flags |= TIOCB_NOMERGE;
		req_queue(r);
	}
	r = req_get();
	req_prep(r, K_WRITE, fd_ro, 8u << 20, BLK);
	r->want = -EBADF;
	req_queue(r);
	for (unsigned i = 0; i < 2; i++) {
		r = req_get();
		req_prep(r, K_WRITE, fd_ro, (12u << 20) + i * BLK, BLK);
		r->want = -EBADF;
		req_queue(r);
	}
	for (unsigned i = 0; i < 3; i++) {
		r = req_get();
		req_prep(r, K_READ, fd_rw, base_off + (16 + i) * BLK, 2 * BLK);
		req_queue(r);
	}
	tq_kick(q);
	drain();
	printf("errors: writes on a read-only fd fail with -EBADF (alone and merged), "
	       "the reads around them succeed\n");

	/* Stats when the kernel refuses a merged iocb: nothing rode in an
	 * iocb the kernel took, so "merged" must not grow. */
	struct tq_stats s0;
	tq_get_stats(q, &s0);
	for (unsigned i = 0; i < 2; i++) {
		r = req_get();
		req_prep(r, K_WRITE, fd_ro, (13u << 20) + i * BLK, BLK);
		r->want = -EBADF;
		req_queue(r);
	}
	tq_kick(q);
	drain();
	tq_get_stats(q, &s);
	printf("errors: refused merged pair: iocbs_submitted +%" PRIu64 ", merged +%" PRIu64
	       ", io_submit calls +%" PRIu64 "\n", s.iocbs_submitted - s0.iocbs_submitted,
	       s.merged - s0.merged, s.io_submit_calls - s0.io_submit_calls);
	CHECK_EQ(s.iocbs_submitted - s0.iocbs_submitted, 0);
	CHECK_EQ(s.merged - s0.merged, 0);

	/* A misaligned buffer inside a merged O_DIRECT read: the merged iocb
	 * fails with -EINVAL, the split puts the error on that one alone. */
	if (direct) {
		for (unsigned i = 0; i < 5; i++) {
			r = req_get();
			req_prep(r, K_READ, fd_rw, (20u << 20) + i * BLK, BLK);
			if (i == 2) {
				r->buf = r->mem + 1;
				tiocb_prep_read(&r->t, fd_rw, r->buf, BLK, r->off,
						req_done, r);
				r->want = -EINVAL;
			}
			req_queue(r);
		}
		tq_kick(q);
		drain();
		printf("errors: misaligned O_DIRECT buffer in a merged read: -EINVAL on it "
		       "alone, its neighbours read their data\n");
	}

	/* Calls that fail report their error. */
	r = req_get();
	req_prep(r, K_CALL, -1, 0, 0);
	r->want = -ENOSPC;
	req_queue(r);
	tq_kick(q);
	drain();

	tq_get_stats(q, &s);
	CHECK_EQ(s.waiting, 0);
	CHECK_EQ(s.pending, 0);
	CHECK_EQ(tq_outstanding(q), 0);
	alarm(0);
	tq_destroy(q);
	q = NULL;
}

/* ---- merge ratio ---- */

struct seqw {
	struct tiocb t;
	long res;
	bool done;
};

static unsigned seq_left;

static void seq_done(struct tiocb *t, long res)
{
	struct seqw *w = t->data;
	CHECK(!w->done);
	w->done = true;
	w->res = res;
	seq_left--;
}

/* Waits for every seq request, then takes the queue's statistics and
 * destroys it. */
static void seq_finish(struct tq_stats *s)
{
	while (seq_left)
		loop_once(true);
	alarm(0);
	tq_get_stats(q, s);
	tq_destroy(q);
	q = NULL;
}

/* 4096 sequential 4 KiB writes, batches of 32 (one kick each).  With
 * wait_each the next batch is queued only when the last one is done (a
 * client with 32 requests in flight); else batches pile up. */
static double merge_ratio(bool wait_each, uint64_t region)
{
	enum { N = 4096, BATCH = 32 };
	struct tq_options o;
	struct tq_stats s;
	struct seqw *w = calloc(N, sizeof(*w));
	uint8_t *buf = aligned_alloc(BLK, (size_t)N * BLK);

	REQUIRE(w && buf);
	fill_random(buf, (size_t)N * BLK);
	tq_options_default(&o);
	REQUIRE(tq_create(base, &o, &q) == 0);
	alarm(60);
	seq_left = N;
	for (unsigned i = 0; i < N; i += BATCH) {
		for (unsigned j = i; j < i + BATCH; j++) {
			tiocb_prep_write(&w[j].t, fd_rw, buf + (size_t)j * BLK, BLK,
					 region + (uint64_t)j * BLK, seq_done, &w[j]);
			tq_queue(q, &w[j].t);
		}
		tq_kick(q);
		if (wait_each)
			while (seq_left > N - i - BATCH)
				loop_once(true);
		else
			loop_once(false);
	}
	seq_finish(&s);

	unsigned bad = 0;
	for (unsigned j = 0; j < N; j++)
		bad += !w[j].done || w[j].res != (long)BLK;
	CHECK_EQ(bad, 0);
	memcpy(model + region, buf, (size_t)N * BLK);
	CHECK_EQ(s.iocbs_submitted + s.merged, N);
	free(w);
	free(buf);
	return s.iocbs_submitted ? (double)N / (double)s.iocbs_submitted : 0;
}

/* ---- io_submit call size ---- */

/* 64 scattered 4 KiB reads in one kick: no io_submit call may carry more
 * than the queue's submit_batch iocbs (the kernel would hold them all back
 * until the call returns), and every read brings the file's data. */
static void submit_batch_phase(unsigned batch)
{
	enum { N = 64 };
	const uint64_t region = 24u << 20;
	struct tq_options o;
	struct tq_stats s;
	struct seqw *w = calloc(N, sizeof(*w));
	uint8_t *buf = aligned_alloc(BLK, (size_t)N * BLK);
	unsigned bad = 0;

	REQUIRE(w && buf);
	tq_options_default(&o);
	if (batch)
		o.submit_batch = batch;
	REQUIRE(tq_create(base, &o, &q) == 0);
	alarm(60);
	seq_left = N;
	for (unsigned j = 0; j < N; j++) {
		/* Every other block: nothing to coalesce. */
		tiocb_prep_read(&w[j].t, fd_rw, buf + (size_t)j * BLK, BLK,
				region + (uint64_t)j * 2 * BLK, seq_done, &w[j]);
		tq_queue(q, &w[j].t);
	}
	tq_kick(q);
	seq_finish(&s);

	for (unsigned j = 0; j < N; j++)
		bad += !w[j].done || w[j].res != (long)BLK ||
		       memcmp(buf + (size_t)j * BLK, model + region + (uint64_t)j * 2 * BLK, BLK);
	batch = batch ? batch : TQ_SUBMIT_BATCH;
	printf("submit batch %u: %d scattered reads in one kick took %" PRIu64 " io_submit "
	       "calls (at least %u)\n", batch, N, s.io_submit_calls, (N + batch - 1) / batch);
	CHECK_EQ(bad, 0);
	CHECK_EQ(s.iocbs_submitted, N);
	CHECK_EQ(s.merged, 0);
	CHECK(s.io_submit_calls >= (N + batch - 1) / batch);
	CHECK(s.io_submit_calls <= N);
	free(w);
	free(buf);
}

static void submit_batch_bad(void)
{
	struct tq_options o;
	struct tqueue *bq = NULL;

	tq_options_default(&o);
	o.submit_batch = TQ_SUBMIT_BATCH_MAX + 1;
	CHECK_EQ(tq_create(base, &o, &bq), -EINVAL);
	CHECK(bq == NULL);
}

/* ---- tq_destroy with requests queued ---- */

static void destroy_phase(void)
{
	struct tq_options o;
	unsigned n = 0, before;

	tq_options_default(&o);
	o.depth = 8;
	REQUIRE(tq_create(base, &o, &q) == 0);
	memset(&cnt, 0, sizeof(cnt));
	alarm(60);
	/* Kicked ones (more than the depth), then staged ones never kicked. */
	for (unsigned round = 0; round < 2; round++) {
		for (unsigned i = 0; i < 48 && free_reqs; i++) {
			enum kind k = chance(50) ? K_READ : K_WRITE;
			uint64_t off = (uint64_t)(round * 64 + i) * 64 * BLK;
			size_t len = rnd_in(1, 16) * BLK;
			struct req *r = req_get();
			req_prep(r, k, fd_rw, off, len);
			req_queue(r);
			n++;
		}
		if (round == 0)
			tq_kick(q);
	}
	before = outstanding;
	tq_destroy(q);
	q = NULL;
	alarm(0);
	CHECK_EQ(before, n);
	CHECK_EQ(outstanding, 0);
	CHECK_EQ(cnt.done, n);
	printf("tq_destroy with %u requests queued (%u never kicked): all completed, "
	       "data checked\n", n, n / 2);
}

/* ---- set-up ---- */

static int open_file(void)
{
	const char *dir = getenv("TESTS_TMP");
	if (!dir || !*dir)
		dir = "/tmp";
	snprintf(path, sizeof(path), "%s/test-queue.XXXXXX", dir);
	int fd = mkstemp(path);
	if (fd < 0) {
		printf("SKIP: cannot create a file in %s: %s\n", dir, strerror(errno));
		return -1;
	}
	model = malloc(FILE_SIZE);
	REQUIRE(model);
	fill_random(model, FILE_SIZE);
	for (size_t off = 0; off < FILE_SIZE; off += 1 << 20)
		REQUIRE(pwrite(fd, model + off, 1 << 20, (off_t)off) == 1 << 20);
	REQUIRE(fsync(fd) == 0);
	close(fd);

	fd_rw = open(path, O_RDWR | O_DIRECT);
	direct = fd_rw >= 0;
	if (!direct) {
		printf("note: O_DIRECT refused in %s (%s): testing buffered I/O\n", dir,
		       strerror(errno));
		fd_rw = open(path, O_RDWR);
	}
	fd_ro = open(path, O_RDONLY);
	REQUIRE(fd_rw >= 0 && fd_ro >= 0);
	unlink(path);
	printf("file: %u MiB in %s, %s\n", FILE_SIZE >> 20, dir,
	       direct ? "O_DIRECT" : "buffered");
	return 0;
}

/* The file must hold exactly the model at the end. */
static void check_file(void)
{
	uint8_t *buf = aligned_alloc(BLK, 1 << 20);
	REQUIRE(buf);
	for (size_t off = 0; off < FILE_SIZE; off += 1 << 20) {
		REQUIRE(pread(fd_rw, buf, 1 << 20, (off_t)off) == 1 << 20);
		if (memcmp(buf, model + off, 1 << 20)) {
			fprintf(stderr, "file differs from the model in MiB %zu\n", off >> 20);
			test_failures++;
			break;
		}
	}
	free(buf);
	printf("file contents match the model\n");
}

int main(void)
{
	const char *e = getenv("SEED");
	seed = e && *e ? strtoull(e, NULL, 0) : 7031;
	rng_state = seed;
	e = getenv("QUEUE_OPS");
	unsigned nops = e && *e ? (unsigned)strtoul(e, NULL, 0) : 3000;
	printf("test-queue: seed %" PRIu64 " (set SEED= to change), %u requests per "
	       "configuration\n", seed, nops);

	main_thread = pthread_self();
	test_timeout("test-queue", 0);	/* each part arms its own alarm() */
	base = event_base_new();
	REQUIRE(base);
	if (open_file() < 0)
		return 77;
	for (unsigned i = 0; i < NREQ; i++) {
		reqs[i].mem = aligned_alloc(BLK, MAX_IO + BLK);
		REQUIRE(reqs[i].mem);
		req_put(&reqs[i]);
	}

	struct config cfgs[5];
	for (unsigned i = 0; i < 5; i++)
		tq_options_default(&cfgs[i].o);
	cfgs[0].name = "default";
	cfgs[1].name = "no_user_ring";
	cfgs[1].o.no_user_ring = true;
	cfgs[2].name = "no_fdsync+no_rwf";
	cfgs[2].o.no_fdsync = true;
	cfgs[2].o.no_rwf_dsync = true;
	cfgs[3].name = "small";
	cfgs[3].o.depth = 4;
	cfgs[3].o.max_merge_iov = 3;
	cfgs[3].o.max_merge_bytes = 64 << 10;
	cfgs[4].name = "no_merge";
	cfgs[4].o.no_merge = true;
	for (unsigned i = 0; i < 5 && !failed_data; i++)
		run_config(&cfgs[i], nops);

	errors_phase();

	double r1 = merge_ratio(false, 0);
	double r2 = merge_ratio(true, 16u << 20);
	printf("merge ratio seq 4k writes: %.1f tiocbs per iocb (4096 writes, batches of 32 "
	       "queued back to back)\n", r1);
	printf("merge ratio seq 4k writes, one batch of 32 in flight at a time: %.1f tiocbs "
	       "per iocb\n", r2);
	CHECK(r1 >= 2.0);
	CHECK(r2 >= 2.0);

	submit_batch_phase(0);
	submit_batch_phase(1);
	submit_batch_phase(TQ_SUBMIT_BATCH_MAX);
	submit_batch_bad();

	destroy_phase();
	check_file();

	for (unsigned i = 0; i < NREQ; i++)
		free(reqs[i].mem);
	free(model);
	close(fd_rw);
	close(fd_ro);
	event_base_free(base);
	if (test_failures)
		fprintf(stderr, "rerun with SEED=%" PRIu64 "\n", seed);
	return test_done("test-queue");
}
