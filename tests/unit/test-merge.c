/* Randomized model test of queue/merge.h: coalescing tiocbs into slots and
 * splitting a slot's result back, with no kernel involved.
 *
 * Each iteration builds a random batch of tiocbs (sequential runs broken by
 * gaps, other fds, other ops, FUA and NOMERGE flags), cuts it into slots
 * the way the submit thread does (tq_slot_start, then tq_slot_can_append /
 * tq_slot_append while they hold), checks the cut against a model that
 * decides from byte ranges alone (model_one_transfer), checks every slot, and
 * feeds tq_slot_split random results: full success, short counts, negative
 * errnos.  Retried tiocbs become new slots until nothing is left.  Every
 * tiocb must complete exactly once with the result merge.h documents.
 *
 * SEED=N picks the seed (printed), ITER=N the number of iterations. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "queue/merge.h"
#include "queue/tiocb.h"
#include "tests/lib/test.h"

#define IOCB_RESFD	(1u << 0)	/* IOCB_FLAG_RESFD of linux/aio_abi.h */
#define MAX_BATCH	64
#define MAX_IOV		8
#define MAX_ROUNDS	16

static uint64_t rng_state;
static unsigned long iteration;
static uint64_t seed;

static uint64_t rnd(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static uint64_t rnd_in(uint64_t lo, uint64_t hi)
{
	return lo + rnd() % (hi - lo + 1);
}

static bool chance(unsigned percent)
{
	return rnd() % 100 < percent;
}

/* Model of one tiocb. */
struct mt {
	struct tiocb t;
	struct iovec iov[MAX_IOV];
	unsigned id;
	unsigned shorts;	/* times left uncovered by a short completion */
	bool err_split;		/* retried alone after its merged iocb failed */
	unsigned completions;
	long final;
};

/* Model of one slot: the tiocbs in the order they were added. */
struct ms {
	struct mt *m[MAX_BATCH];
	unsigned count;
	unsigned iovcnt;
	size_t len;
};

static char fake_mem[1 << 16];	/* iov_base targets; never accessed */

#define FAIL_CTX() fprintf(stderr, "  (seed %" PRIu64 ", iteration %lu)\n", seed, iteration)

#define MCHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		FAIL_CTX(); \
		test_failures++; \
	} \
} while (0)

#define MCHECK_EQ(a, b) do { \
	long long a_ = (long long)(a), b_ = (long long)(b); \
	if (a_ != b_) { \
		fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n", \
			__FILE__, __LINE__, #a, #b, a_, b_); \
		FAIL_CTX(); \
		test_failures++; \
	} \
} while (0)

static void done_cb(struct tiocb *t, long res)
{
	/* tq_slot_split never calls callbacks; the queue does. */
	(void)t; (void)res;
	fprintf(stderr, "done callback called by merge code\n");
	abort();
}

/* Prepares m as a READ or WRITE of len bytes at off, split into iovcnt
 * buffers (the single-buffer helpers when iovcnt == 1, sometimes). */
static void mt_prep(struct mt *m, unsigned id, enum tiocb_op op, int fd,
		    uint64_t off, size_t len, int iovcnt, unsigned flags)
{
	memset(m, 0, sizeof(*m));
	m->id = id;
	m->final = LONG_MIN;
	if (iovcnt > (int)len)
		iovcnt = (int)len;
	size_t left = len;
	for (int i = 0; i < iovcnt; i++) {
		size_t l = i == iovcnt - 1 ? left : rnd_in(1, left - (size_t)(iovcnt - 1 - i));
		m->iov[i].iov_base = fake_mem + rnd_in(0, sizeof(fake_mem) - 1);
		m->iov[i].iov_len = l;
		left -= l;
	}
	if (iovcnt == 1 && chance(50)) {
		if (op == TIOCB_READ)
			tiocb_prep_read(&m->t, fd, m->iov[0].iov_base, len, off, done_cb, m);
		else
			tiocb_prep_write(&m->t, fd, m->iov[0].iov_base, len, off, done_cb, m);
	} else if (op == TIOCB_READ) {
		tiocb_prep_readv(&m->t, fd, m->iov, iovcnt, off, done_cb, m);
	} else {
		tiocb_prep_writev(&m->t, fd, m->iov, iovcnt, off, done_cb, m);
	}
	m->t.flags = flags;
}

/* Could tiocbs t[0..n) ride in one iocb?  Decided from byte ranges, not
 * from merge.c's rule (header words, "offset == end of the slot"): one
 * preadv/pwritev moves the bytes [t[0]->offset, t[0]->offset + total) into
 * the iovecs in order, so the tiocbs must be READs or WRITEs of one kind
 * (fd, op, flags; none NOMERGE) whose ranges, in list order, ascend, never
 * overlap (checked pair by pair), and leave no gap (the union spans exactly
 * the sum of the lengths); and the limits hold.  One tiocb alone always
 * makes a slot, whatever its size. */
static bool model_one_transfer(const struct tiocb *const *t, unsigned n,
			       const struct tq_merge_limits *lim)
{
	uint64_t lo = UINT64_MAX, hi = 0, sum = 0;
	unsigned iovs = 0;

	if (n == 1)
		return true;
	for (unsigned k = 0; k < n; k++) {
		uint64_t a = t[k]->offset, b = t[k]->offset + t[k]->len;

		if (t[k]->op != TIOCB_READ && t[k]->op != TIOCB_WRITE)
			return false;
		if (t[k]->op != t[0]->op || t[k]->fd != t[0]->fd ||
		    t[k]->flags != t[0]->flags || (t[k]->flags & TIOCB_NOMERGE))
			return false;
		if (k > 0 && a <= t[k - 1]->offset)
			return false;			/* not in offset order */
		for (unsigned j = 0; j < k; j++)
			if (a < t[j]->offset + t[j]->len && t[j]->offset < b)
				return false;		/* overlap */
		lo = a < lo ? a : lo;
		hi = b > hi ? b : hi;
		sum += t[k]->len;
		iovs += (unsigned)t[k]->iovcnt;
	}
	if (hi - lo != sum)
		return false;				/* a gap */
	return sum <= lim->max_bytes && iovs <= lim->max_iov && iovs <= TQ_SLOT_IOV_MAX;
}

/* The coalescing the submit thread must produce for list[0..n): greedy,
 * each slot the longest run from where the last one ended that is one
 * transfer (a run that is one transfer stays one with its last tiocb
 * dropped, so greedy is well defined).  sizes[] gets the slot sizes;
 * returns the slot count. */
static unsigned model_partition(struct mt *const *list, unsigned n,
				const struct tq_merge_limits *lim, unsigned *sizes)
{
	const struct tiocb *t[MAX_BATCH];
	unsigned nslots = 0;

	for (unsigned i = 0; i < n; i++)
		t[i] = &list[i]->t;
	for (unsigned i = 0; i < n;) {
		unsigned len = 1;

		while (i + len < n && model_one_transfer(t + i, len + 1, lim))
			len++;
		sizes[nslots++] = len;
		i += len;
	}
	return nslots;
}

/* Would the model take candidate c into the slot sm? */
static bool model_can_append(const struct ms *sm, const struct tiocb *c,
			     const struct tq_merge_limits *lim)
{
	const struct tiocb *t[MAX_BATCH + 1];

	for (unsigned i = 0; i < sm->count; i++)
		t[i] = &sm->m[i]->t;
	t[sm->count] = c;
	return model_one_transfer(t, sm->count + 1, lim);
}

static void ms_add(struct ms *sm, struct mt *m)
{
	sm->m[sm->count++] = m;
	sm->iovcnt += (unsigned)m->t.iovcnt;
	sm->len += m->t.len;
}

/* The slot's own bookkeeping against the model. */
static void check_slot(const struct tq_slot *s, const struct ms *sm,
		       const struct tq_merge_limits *lim)
{
	MCHECK_EQ(s->count, sm->count);
	MCHECK_EQ(s->iovcnt, sm->iovcnt);
	MCHECK_EQ(s->len, sm->len);
	MCHECK(s->head == &sm->m[0]->t);
	MCHECK(s->tail == &sm->m[sm->count - 1]->t);

	const struct tiocb *t = s->head;
	for (unsigned i = 0; i < sm->count && t; i++) {
		MCHECK(t == &sm->m[i]->t);
		if (t != &sm->m[i]->t)
			break;
		if (i + 1 < sm->count)
			t = t->next;
	}
	MCHECK(t == s->tail);

	if (sm->count > 1) {
		const struct tiocb *h = &sm->m[0]->t;
		MCHECK(sm->iovcnt <= lim->max_iov && sm->iovcnt <= TQ_SLOT_IOV_MAX);
		MCHECK(sm->len <= lim->max_bytes);
		for (unsigned i = 1; i < sm->count; i++) {
			const struct tiocb *p = &sm->m[i - 1]->t, *c = &sm->m[i]->t;
			MCHECK_EQ(c->offset, p->offset + p->len);
			MCHECK(c->fd == h->fd && c->op == h->op && c->flags == h->flags);
			MCHECK(!(c->flags & TIOCB_NOMERGE));
			MCHECK(c->op == TIOCB_READ || c->op == TIOCB_WRITE);
		}
	}
}

/* The iocb tq_slot_prep fills, against the model. */
static void check_prep(struct tq_slot *s, const struct ms *sm, int resfd,
		       bool rwf_dsync)
{
	const struct tiocb *h = &sm->m[0]->t;
	struct iocb *io = &s->iocb;

	MCHECK(io->data == s);
	MCHECK_EQ(io->aio_fildes, h->fd);
	MCHECK_EQ(io->u.v.offset, h->offset);

	bool vec = h->op == TIOCB_READ ? io->aio_lio_opcode == IO_CMD_PREADV
				       : io->aio_lio_opcode == IO_CMD_PWRITEV;
	bool single = h->op == TIOCB_READ ? io->aio_lio_opcode == IO_CMD_PREAD
					  : io->aio_lio_opcode == IO_CMD_PWRITE;
	MCHECK(vec || (single && sm->count == 1 && h->iovcnt == 1));

	if (vec) {
		MCHECK_EQ(io->u.v.nr, sm->iovcnt);
		if (sm->count == 1) {
			/* "A single tiocb uses its own iovec array" */
			MCHECK(io->u.v.vec == h->iov);
		} else {
			MCHECK(io->u.v.vec == s->iov);
			unsigned k = 0;
			for (unsigned i = 0; i < sm->count; i++) {
				const struct tiocb *t = &sm->m[i]->t;
				for (int j = 0; j < t->iovcnt; j++, k++) {
					MCHECK(s->iov[k].iov_base == t->iov[j].iov_base);
					MCHECK_EQ(s->iov[k].iov_len, t->iov[j].iov_len);
				}
			}
		}
	} else if (single) {
		MCHECK(io->u.c.buf == h->iov[0].iov_base);
		MCHECK_EQ(io->u.c.nbytes, h->len);
	}

	if (resfd >= 0) {
		MCHECK(io->u.c.flags & IOCB_RESFD);
		MCHECK_EQ(io->u.c.resfd, resfd);
	} else {
		MCHECK(!(io->u.c.flags & IOCB_RESFD));
	}
	bool want_dsync = rwf_dsync && h->op == TIOCB_WRITE && (h->flags & TIOCB_FUA);
	if (want_dsync)
		MCHECK(io->aio_rw_flags & RWF_DSYNC);
	else if (h->op == TIOCB_WRITE)
		MCHECK(!(io->aio_rw_flags & RWF_DSYNC));
}

/* Targeted questions to tq_slot_can_append about a slot: each condition of
 * the header broken alone, and the limits exactly met. */
static unsigned probes;

static void probe_one(const struct tq_slot *s, const struct ms *sm,
		      const struct tq_merge_limits *lim, struct mt *p)
{
	bool want = model_can_append(sm, &p->t, lim);
	bool got = tq_slot_can_append(s, &p->t, lim);
	probes++;
	if (want != got) {
		const struct tiocb *h = &sm->m[0]->t;
		fprintf(stderr, "can_append: want %d got %d: slot op %d fd %d flags %#x "
			"off %" PRIu64 " len %zu iovcnt %u; t op %d fd %d flags %#x "
			"off %" PRIu64 " len %zu iovcnt %d; limits iov %u bytes %zu\n",
			want, got, h->op, h->fd, h->flags, h->offset, sm->len, sm->iovcnt,
			p->t.op, p->t.fd, p->t.flags, p->t.offset, p->t.len, p->t.iovcnt,
			lim->max_iov, lim->max_bytes);
		FAIL_CTX();
		test_failures++;
	}
}

static void probe_slot(const struct tq_slot *s, const struct ms *sm,
		       const struct tq_merge_limits *lim)
{
	const struct tiocb *h = &sm->m[0]->t;
	uint64_t end = h->offset + sm->len;
	struct mt p;
	size_t room = lim->max_bytes > sm->len ? lim->max_bytes - sm->len : 0;
	size_t len = room ? rnd_in(1, room < 8192 ? room : 8192) : 512;

	if (h->op != TIOCB_READ && h->op != TIOCB_WRITE)
		return;
	/* adjacent, otherwise identical */
	mt_prep(&p, 9999, h->op, h->fd, end, len, 1, h->flags);
	probe_one(s, sm, lim, &p);
	/* one byte of gap, one byte of overlap */
	mt_prep(&p, 9999, h->op, h->fd, end + 1, len, 1, h->flags);
	probe_one(s, sm, lim, &p);
	if (end > 0) {
		mt_prep(&p, 9999, h->op, h->fd, end - 1, len, 1, h->flags);
		probe_one(s, sm, lim, &p);
	}
	/* the slot's first tiocb again (its offset is not the end) */
	mt_prep(&p, 9999, h->op, h->fd, h->offset, len, 1, h->flags);
	probe_one(s, sm, lim, &p);
	/* other fd, other op, other flags */
	mt_prep(&p, 9999, h->op, h->fd + 1, end, len, 1, h->flags);
	probe_one(s, sm, lim, &p);
	mt_prep(&p, 9999, h->op == TIOCB_READ ? TIOCB_WRITE : TIOCB_READ, h->fd,
		end, len, 1, h->flags);
	probe_one(s, sm, lim, &p);
	mt_prep(&p, 9999, h->op, h->fd, end, len, 1, h->flags ^ TIOCB_FUA);
	probe_one(s, sm, lim, &p);
	mt_prep(&p, 9999, h->op, h->fd, end, len, 1, h->flags | TIOCB_NOMERGE);
	probe_one(s, sm, lim, &p);
	/* byte limit: exactly met, then one over */
	if (room > 0) {
		mt_prep(&p, 9999, h->op, h->fd, end, room, 1, h->flags);
		probe_one(s, sm, lim, &p);
	}
	mt_prep(&p, 9999, h->op, h->fd, end, room + 1, 1, h->flags);
	probe_one(s, sm, lim, &p);
	/* iovec limit: exactly met, then one over (when it fits MAX_IOV) */
	for (unsigned extra = 1; extra <= MAX_IOV; extra++) {
		if (sm->iovcnt + extra == lim->max_iov ||
		    sm->iovcnt + extra == lim->max_iov + 1) {
			mt_prep(&p, 9999, h->op, h->fd, end, 512 * extra, (int)extra, h->flags);
			probe_one(s, sm, lim, &p);
		}
	}
	/* a flush and a call are never appended */
	memset(&p, 0, sizeof(p));
	tiocb_prep_flush(&p.t, h->fd, done_cb, &p);
	p.t.offset = end;
	probe_one(s, sm, lim, &p);
	memset(&p, 0, sizeof(p));
	tiocb_prep_call(&p.t, NULL, done_cb, &p);
	p.t.fd = h->fd;
	p.t.offset = end;
	probe_one(s, sm, lim, &p);
}

/* A slot made of one flush: a flush never takes anything. */
static void probe_flush_slot(const struct tq_merge_limits *lim, struct tq_slot *s)
{
	struct mt f1, f2;
	struct ms sm = { .count = 0 };

	memset(&f1, 0, sizeof(f1));
	memset(&f2, 0, sizeof(f2));
	tiocb_prep_flush(&f1.t, 3, done_cb, &f1);
	tiocb_prep_flush(&f2.t, 3, done_cb, &f2);
	memset(s, 0xa5, sizeof(*s));
	tq_slot_start(s, &f1.t);
	ms_add(&sm, &f1);
	MCHECK(!tq_slot_can_append(s, &f2.t, lim));
	mt_prep(&f2, 9999, TIOCB_WRITE, 3, f1.t.offset + f1.t.len, 4096, 1, 0);
	MCHECK(!tq_slot_can_append(s, &f2.t, lim));
	probes += 2;
}

/* Makes a random batch of tiocbs: sequential runs, broken now and then. */
static unsigned make_batch(struct mt *ms_arr, struct mt **list)
{
	unsigned n = (unsigned)rnd_in(1, MAX_BATCH);
	unsigned i = 0;
	static unsigned next_id;

	while (i < n) {
		enum tiocb_op op = chance(50) ? TIOCB_READ : TIOCB_WRITE;
		int fd = chance(80) ? 3 : 4;
		unsigned flags = chance(20) ? TIOCB_FUA : 0;
		uint64_t off = rnd_in(0, 1u << 20) * 512;
		unsigned run = (unsigned)rnd_in(1, 32);

		for (unsigned r = 0; r < run && i < n; r++, i++) {
			size_t len;
			switch (rnd() % 8) {
			case 0: len = rnd_in(1, 4096); break;		/* odd sizes */
			case 1: len = rnd_in(1, 2048) * 512; break;	/* up to 1 MiB */
			case 2: case 3: len = rnd_in(1, 64) * 4096; break;
			default: len = rnd_in(1, 4) * 4096; break;
			}
			int iovcnt = chance(60) ? 1 : (int)rnd_in(2, MAX_IOV);
			unsigned f = flags;
			if (chance(5))
				f |= TIOCB_NOMERGE;
			if (chance(5))
				f ^= TIOCB_FUA;
			int tfd = chance(3) ? 7 - fd : fd;
			enum tiocb_op top = chance(3) ? (op == TIOCB_READ ? TIOCB_WRITE : TIOCB_READ) : op;
			uint64_t toff = off;
			if (chance(4))
				toff += rnd_in(1, 8) * 512;	/* gap */
			else if (chance(2) && toff >= 512)
				toff -= 512;			/* overlap */
			mt_prep(&ms_arr[i], next_id++, top, tfd, toff, len, iovcnt, f);
			list[i] = &ms_arr[i];
			off = toff + len;
		}
	}
	/* Now and then the waiting list is not in offset order. */
	if (n > 1 && chance(10)) {
		for (unsigned k = 0; k < n / 4 + 1; k++) {
			unsigned a = (unsigned)rnd_in(0, n - 1), b = (unsigned)rnd_in(0, n - 1);
			struct mt *tmp = list[a];
			list[a] = list[b];
			list[b] = tmp;
		}
	}
	return n;
}

static void random_limits(struct tq_merge_limits *lim)
{
	static const unsigned iovs[] = { 1, 2, 3, 4, 8, 16, 64, 256 };
	static const size_t bytes[] = { 512, 4096, 65536, 131072, 1u << 20, 4u << 20 };

	if (chance(40)) {	/* the queue's defaults */
		lim->max_iov = 64;
		lim->max_bytes = 1u << 20;
		return;
	}
	lim->max_iov = chance(20) ? (unsigned)rnd_in(1, TQ_SLOT_IOV_MAX)
				  : iovs[rnd() % (sizeof(iovs) / sizeof(iovs[0]))];
	lim->max_bytes = chance(20) ? rnd_in(1, 2u << 20)
				    : bytes[rnd() % (sizeof(bytes) / sizeof(bytes[0]))];
}

static const long errnos[] = { -EIO, -ENOSPC, -EINVAL, -EBADF, -ENOMEM, -EFAULT };

/* Stats over the whole run, printed at the end. */
static struct {
	unsigned long slots, merged_slots, tiocbs, splits_ok, splits_short,
		splits_err, retried, eio, errs, max_count, rounds_max;
} st;

/* Splits one slot with a random result and checks the outcome.  Retried
 * tiocbs are appended to *retry (in order). */
static void split_one(struct tq_slot *s, struct ms *sm, struct mt **retry,
		      unsigned *nretry)
{
	long res;
	unsigned kind = (unsigned)(rnd() % 10);

	if (kind < 4) {
		res = (long)sm->len;
		st.splits_ok++;
	} else if (kind < 7) {
		/* short: on a tiocb boundary or anywhere */
		if (chance(50)) {
			unsigned k = (unsigned)rnd_in(0, sm->count - 1);
			res = 0;
			for (unsigned i = 0; i < k; i++)
				res += (long)sm->m[i]->t.len;
		} else {
			res = (long)rnd_in(0, sm->len - 1);
		}
		st.splits_short++;
	} else {
		res = errnos[rnd() % (sizeof(errnos) / sizeof(errnos[0]))];
		st.splits_err++;
	}

	/* What each tiocb may become: 'D' done with want[i]; 'R' retried;
	 * 'E' either retried or done with -EIO (see below). */
	char want_kind[MAX_BATCH];
	long want[MAX_BATCH];
	size_t cum = 0;
	bool uncovered = false;
	for (unsigned i = 0; i < sm->count; i++) {
		struct mt *m = sm->m[i];
		cum += m->t.len;
		if (res < 0) {
			want_kind[i] = sm->count == 1 ? 'D' : 'R';
			want[i] = res;
		} else if (!uncovered && cum <= (size_t)res) {
			want_kind[i] = 'D';
			want[i] = (long)m->t.len;
		} else {
			uncovered = true;
			if (m->shorts > 0) {
				want_kind[i] = 'D';
				want[i] = -EIO;
			} else if (m->err_split) {
				/* Retried alone after an error; whether that
				 * retry counts as its one retry is the
				 * implementation's choice. */
				want_kind[i] = 'E';
				want[i] = -EIO;
			} else {
				want_kind[i] = 'R';
				want[i] = 0;
			}
		}
	}

	struct tiocb *done = NULL, **dt = &done, *rt_head = NULL, **rt = &rt_head;
	unsigned n = tq_slot_split(s, res, &dt, &rt);
	*dt = NULL;
	*rt = NULL;

	/* Walk both lists: each tiocb of the slot exactly once, in order. */
	unsigned seen[MAX_BATCH] = { 0 };
	unsigned ndone = 0, nret = 0, last_done = 0, last_ret = 0;
	bool in_order = true;
	for (struct tiocb *t = done; t && ndone <= sm->count; t = t->next, ndone++) {
		unsigned i;
		for (i = 0; i < sm->count && &sm->m[i]->t != t; i++)
			;
		if (i == sm->count) {
			fprintf(stderr, "split: done list holds a tiocb not in the slot\n");
			FAIL_CTX();
			test_failures++;
			break;
		}
		if (ndone && i < last_done)
			in_order = false;
		last_done = i;
		seen[i]++;
		struct mt *m = sm->m[i];
		m->completions++;
		m->final = t->res;
		if (want_kind[i] == 'R') {
			fprintf(stderr, "split: tiocb %u completed with %ld, should have been "
				"retried (slot of %u, len %zu, res %ld, tiocb shorts %u)\n",
				m->id, t->res, sm->count, sm->len, res, m->shorts);
			FAIL_CTX();
			test_failures++;
		} else if (t->res != want[i]) {
			fprintf(stderr, "split: tiocb %u (#%u of %u, len %zu) completed with %ld, "
				"want %ld (slot len %zu, res %ld, shorts %u, err_split %d)\n",
				m->id, i, sm->count, m->t.len, t->res, want[i], sm->len, res,
				m->shorts, m->err_split);
			FAIL_CTX();
			test_failures++;
		}
		if (t->res >= 0 && (size_t)t->res != m->t.len) {
			fprintf(stderr, "split: short count %ld of %zu reported as success\n",
				t->res, m->t.len);
			FAIL_CTX();
			test_failures++;
		}
		if (t->res == -EIO && res >= 0)
			st.eio++;
		else if (t->res < 0)
			st.errs++;
	}
	for (struct tiocb *t = rt_head; t && nret <= sm->count; t = t->next, nret++) {
		unsigned i;
		for (i = 0; i < sm->count && &sm->m[i]->t != t; i++)
			;
		if (i == sm->count) {
			fprintf(stderr, "split: retry list holds a tiocb not in the slot\n");
			FAIL_CTX();
			test_failures++;
			break;
		}
		if (nret && i < last_ret)
			in_order = false;
		last_ret = i;
		seen[i]++;
		struct mt *m = sm->m[i];
		if (want_kind[i] == 'D') {
			fprintf(stderr, "split: tiocb %u (#%u of %u) retried, should have "
				"completed with %ld (slot len %zu, res %ld, shorts %u)\n",
				m->id, i, sm->count, want[i], sm->len, res, m->shorts);
			FAIL_CTX();
			test_failures++;
		}
		if (res < 0) {
			MCHECK(m->t.flags & TIOCB_NOMERGE);
			m->err_split = true;
		} else {
			m->shorts++;
		}
		retry[(*nretry)++] = m;
		st.retried++;
	}
	MCHECK_EQ(n, ndone);
	MCHECK_EQ(ndone + nret, sm->count);
	MCHECK(in_order);
	for (unsigned i = 0; i < sm->count; i++) {
		if (seen[i] != 1) {
			fprintf(stderr, "split: tiocb %u (#%u of %u) came out %u times "
				"(slot len %zu, res %ld)\n", sm->m[i]->id, i, sm->count,
				seen[i], sm->len, res);
			FAIL_CTX();
			test_failures++;
		}
	}
}

/* Cuts list[0..n) into slots like the submit thread and splits each. */
static void run_round(struct mt **list, unsigned n, struct mt **retry,
		      unsigned *nretry, const struct tq_merge_limits *lim,
		      struct tq_slot *s)
{
	unsigned sizes[MAX_BATCH], nslots = model_partition(list, n, lim, sizes);
	unsigned i = 0, k = 0;

	while (i < n) {
		struct ms sm = { .count = 0 };

		/* Slots come from a free list: never assume they are zeroed.
		 * Filled as the submit thread fills them. */
		memset(s, 0xa5, sizeof(*s));
		tq_slot_start(s, &list[i]->t);
		ms_add(&sm, list[i]);
		i++;
		while (i < n && tq_slot_can_append(s, &list[i]->t, lim)) {
			tq_slot_append(s, &list[i]->t);
			ms_add(&sm, list[i]);
			i++;
		}
		if (k >= nslots || sm.count != sizes[k]) {
			const struct tiocb *h = &sm.m[0]->t;
			fprintf(stderr, "coalescing: slot %u took %u tiocb(s), the byte-range "
				"model %u (head op %d fd %d flags %#x off %" PRIu64 "; limits "
				"iov %u bytes %zu)\n", k, sm.count, k < nslots ? sizes[k] : 0,
				h->op, h->fd, h->flags, h->offset, lim->max_iov, lim->max_bytes);
			FAIL_CTX();
			test_failures++;
			/* Follow the code from here: re-cut the model's rest. */
			nslots = k + 1 + model_partition(list + i, n - i, lim, sizes + k + 1);
		}
		k++;
		check_slot(s, &sm, lim);
		if (chance(10))
			probe_slot(s, &sm, lim);

		int resfd = chance(50) ? -1 : (int)rnd_in(3, 100);
		bool rwf = chance(50);
		tq_slot_prep(s, resfd, rwf);
		check_prep(s, &sm, resfd, rwf);

		st.slots++;
		st.tiocbs += sm.count;
		if (sm.count > 1)
			st.merged_slots++;
		if (sm.count > st.max_count)
			st.max_count = sm.count;
		split_one(s, &sm, retry, nretry);
	}
}

int main(void)
{
	const char *e = getenv("SEED");
	seed = e && *e ? strtoull(e, NULL, 0) : 20240611;
	e = getenv("ITER");
	unsigned long iters = e && *e ? strtoul(e, NULL, 0) : 5000;
	rng_state = seed;
	printf("test-merge: seed %" PRIu64 " (set SEED= to change), %lu iterations\n",
	       seed, iters);

	static struct mt mts[MAX_BATCH];
	struct mt *list[MAX_BATCH], *retry[MAX_BATCH];
	struct tq_slot *s = malloc(sizeof(*s));
	REQUIRE(s);

	for (iteration = 0; iteration < iters && test_failures < 20; iteration++) {
		struct tq_merge_limits lim;
		random_limits(&lim);
		if (iteration % 97 == 0)
			probe_flush_slot(&lim, s);

		unsigned n = make_batch(mts, list);
		unsigned rounds = 0;
		while (n > 0 && rounds < MAX_ROUNDS && test_failures < 20) {
			unsigned nretry = 0;
			run_round(list, n, retry, &nretry, &lim, s);
			memcpy(list, retry, nretry * sizeof(*list));
			n = nretry;
			rounds++;
		}
		if (rounds > st.rounds_max)
			st.rounds_max = rounds;
		if (n > 0) {
			fprintf(stderr, "tiocbs still retried after %u rounds\n", rounds);
			FAIL_CTX();
			test_failures++;
		}
		for (unsigned i = 0; i < MAX_BATCH; i++) {
			struct mt *m = &mts[i];
			if (m->t.done == NULL)
				break;
			if (m->completions != 1) {
				fprintf(stderr, "tiocb %u completed %u times\n", m->id, m->completions);
				FAIL_CTX();
				test_failures++;
			}
		}
		/* next batch starts clean: unused entries have done == NULL */
		memset(mts, 0, sizeof(mts));
	}
	free(s);

	printf("checked: the cut of every batch against the byte-range model, plus %u can_append probes "
	       "(gap, overlap, fd, op, flags, NOMERGE, byte and iovec limits, flush, call)\n",
	       probes);
	printf("checked: slot count/len/iovcnt/chain/contiguity/limits, iocb opcode/fd/"
	       "offset/iovecs/RESFD/RWF_DSYNC after tq_slot_prep\n");
	printf("checked: split of %lu slots (%lu ok, %lu short, %lu failed; %lu merged, "
	       "largest %lu tiocbs): every tiocb done exactly once, full length or the "
	       "error, -EIO after a second short (%lu), %lu retries, %lu errors, "
	       "at most %lu rounds\n",
	       st.slots, st.splits_ok, st.splits_short, st.splits_err, st.merged_slots,
	       st.max_count, st.eio, st.retried, st.errs, st.rounds_max);
	if (test_failures)
		fprintf(stderr, "rerun with SEED=%" PRIu64 "\n", seed);
	return test_done("test-merge");
}
