/* The submit thread: inbox -> waiting -> slots, coalescing, io_submit.
 *
 * Bookkeeping for a batch is done before io_submit: the main thread may
 * reap (and recycle) a slot before io_submit returns, so after the call
 * this thread touches only the slots the kernel did not take. */
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/futex.h"
#include "common/log.h"
#include "queue/queue-int.h"

enum {
	TQ_POLL_WINDOW_NS = 1000000,	/* spin only within 1 ms of work */
};

static inline void tq_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static bool tq_for_worker(const struct tqueue *q, const struct tiocb *t)
{
	return t->op == TIOCB_CALL || (t->op == TIOCB_FLUSH && !q->caps.fdsync);
}

/* Moves the inbox (newest first) onto the end of waiting, oldest first. */
static void tq_take_inbox(struct tqueue *q)
{
	struct tiocb *t, *rev = NULL, *next;

	if (!__atomic_load_n(&q->inbox, __ATOMIC_RELAXED))
		return;
	t = __atomic_exchange_n(&q->inbox, NULL, __ATOMIC_ACQUIRE);
	for (; t; t = next) {
		next = t->next;
		t->next = rev;
		rev = t;
	}
	for (t = rev; t; t = next) {
		next = t->next;
		tq_list_append(&q->waiting, t);
	}
}

static void tq_take_freed(struct tqueue *q)
{
	struct tq_slot *s, *next;

	if (!__atomic_load_n(&q->freed, __ATOMIC_RELAXED))
		return;
	s = __atomic_exchange_n(&q->freed, NULL, __ATOMIC_ACQUIRE);
	for (; s; s = next) {
		next = s->next;
		s->next = q->free_slots;
		q->free_slots = s;
	}
}

/* Can this thread make progress on the waiting list now? */
static bool tq_can_progress(const struct tqueue *q)
{
	return q->waiting.head && (q->free_slots || tq_for_worker(q, q->waiting.head));
}

static void tq_to_worker(struct tqueue *q, struct tiocb *t)
{
	pthread_mutex_lock(&q->lock);
	tq_list_append(&q->work, t);
	pthread_cond_signal(&q->worker_cond);
	pthread_mutex_unlock(&q->lock);
}

/* Takes tiocbs off the waiting list into slots; returns the iocb count. */
static int tq_build_batch(struct tqueue *q, struct iocb **batch)
{
	uint64_t now = vd_now_ns();
	unsigned taken = 0, merged = 0;
	int n = 0;

	while (q->waiting.head && n < (int)q->opt.submit_batch) {
		struct tiocb *t = q->waiting.head;

		if (tq_for_worker(q, t)) {
			tq_list_pop(&q->waiting);
			t->taken_ns = now;
			tq_count(q, -1, 1);
			tq_to_worker(q, t);
			continue;
		}
		if (!q->free_slots)
			break;
		struct tq_slot *s = q->free_slots;
		q->free_slots = s->next;
		tq_list_pop(&q->waiting);
		t->taken_ns = now;
		tq_slot_start(s, t);
		while (q->waiting.head &&
		       tq_slot_can_append(s, q->waiting.head, &q->lim)) {
			struct tiocb *m = tq_list_pop(&q->waiting);

			m->taken_ns = now;
			tq_slot_append(s, m);
			merged++;
		}
		tq_slot_prep(s, q->efd, q->caps.rwf_dsync);
		taken += s->count;
		batch[n++] = &s->iocb;
	}
	/* Counted before io_submit: the main thread may complete (and a pause
	 * may report) these before this thread runs again. */
	tq_count(q, -(int64_t)taken, taken);
	__atomic_fetch_add(&q->sstats.merged, merged, __ATOMIC_RELAXED);
	return n;
}

/* Gives a slot the kernel never saw back: its tiocbs return to the list
 * back (in order), the slot to the free list. */
static void tq_unbuild(struct tqueue *q, struct tq_slot *s, struct tq_list *back)
{
	struct tiocb *t = s->head, *next;

	for (; t; t = next) {
		next = t->next;
		tq_list_append(back, t);
	}
	tq_count(q, s->count, -(int64_t)s->count);
	/* Counted again if rebuilt. */
	__atomic_fetch_sub(&q->sstats.merged, s->count - 1, __ATOMIC_RELAXED);
	s->next = q->free_slots;
	q->free_slots = s;
}

/* io_submit refused the slot outright: fail a lone tiocb, retry merged
 * ones alone so the error lands on the one that caused it. */
static void tq_fail_slot(struct tqueue *q, struct tq_slot *s, long err,
			 struct tq_list *back)
{
	struct tiocb *t = s->head;

	if (s->count > 1) {
		for (; t; t = t->next)
			t->flags |= TIOCB_NOMERGE;
		tq_unbuild(q, s, back);
		return;
	}
	t->res = err;
	/* pending stays counted until the main thread takes it off done. */
	s->next = q->free_slots;
	q->free_slots = s;
	tq_push_done(q, t);
}

/* A sleeper starved of slots is woken by freed slots only; one out of
 * work, by work only: any other wake would find nothing to do. */
void tq_wake_submitter(struct tqueue *q, bool for_slots)
{
	if (!__atomic_load_n(&q->sleeping, __ATOMIC_SEQ_CST))
		return;
	if (__atomic_load_n(&q->starved, __ATOMIC_RELAXED) != for_slots &&
	    !__atomic_load_n(&q->stop, __ATOMIC_RELAXED))
		return;
	if (vd_futex_wake_sleeper(&q->sleeping))
		__atomic_fetch_add(&q->sstats.wakeups, 1, __ATOMIC_RELAXED);
}

/* Has what this thread waits for arrived? */
static bool tq_work_arrived(struct tqueue *q, bool starved)
{
	if (__atomic_load_n(&q->stop, __ATOMIC_SEQ_CST))
		return true;
	if (starved)
		return __atomic_load_n(&q->freed, __ATOMIC_SEQ_CST) != NULL;
	return __atomic_load_n(&q->inbox, __ATOMIC_SEQ_CST) != NULL;
}

/* The poll window: right after work, spin up to poll_ns for more before
 * paying for a sleep and a wake.  An idle queue never spins, and neither
 * does one with more than one request in the kernel: there a sleep lets
 * requests gather into one io_submit, and on a VM each call's device
 * notification costs tens of µs (a spinning thread took them one by one
 * and lost 10-25% at QD32). */
static bool tq_spin(struct tqueue *q, bool starved)
{
	uint64_t now, end;

	if (!q->poll_ns)
		return false;
	if ((uint32_t)__atomic_load_n(&q->counts, __ATOMIC_RELAXED) > 1)
		return false;
	now = vd_now_ns();
	if (now - q->last_work_ns > TQ_POLL_WINDOW_NS)
		return false;
	end = now + q->poll_ns;
	do {
		for (int i = 0; i < 64; i++) {
			if (tq_work_arrived(q, starved)) {
				__atomic_fetch_add(&q->sstats.polled, 1, __ATOMIC_RELAXED);
				return true;
			}
			tq_cpu_relax();
		}
	} while (vd_now_ns() < end);
	return false;
}

/* Sleeps until a pusher wakes it (or timeout).  starved: what it waits
 * for is a free slot. */
static void tq_sleep(struct tqueue *q, bool starved, const struct timespec *timeout)
{
	__atomic_store_n(&q->starved, starved, __ATOMIC_RELAXED);
	__atomic_store_n(&q->sleeping, 1, __ATOMIC_SEQ_CST);
	if (!tq_work_arrived(q, starved))
		vd_futex_wait(&q->sleeping, 1, timeout);
	__atomic_store_n(&q->sleeping, 0, __ATOMIC_RELAXED);
}

/* Submits the batch; what the kernel does not take goes back to the
 * front of waiting.  Returns true when it ran out of kernel room. */
static bool tq_submit_batch(struct tqueue *q, struct iocb **batch, int n)
{
	static struct log_ratelimit rl_err = LOG_RATELIMIT_INIT;
	int off = 0;

	while (off < n) {
		/* Counted before the call: the main thread may complete these
		 * (and a pause may report the counters) before io_submit
		 * returns.  What the kernel did not take is taken off after. */
		__atomic_fetch_add(&q->sstats.io_submit_calls, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&q->sstats.iocbs_submitted, (unsigned)(n - off),
				   __ATOMIC_RELAXED);
		/* Publishes the slots and the counters (see tq_poll) before
		 * the kernel can have them. */
		__atomic_fetch_add(&q->published, 1, __ATOMIC_RELEASE);
		uint64_t t0 = vd_now_ns();
		int r = io_submit(q->ctx, n - off, batch + off);

		lat_record_shared(&q->lat_submit, (vd_now_ns() - t0) / 1000);
		__atomic_fetch_sub(&q->sstats.iocbs_submitted,
				   (unsigned)(n - off - (r > 0 ? r : 0)), __ATOMIC_RELAXED);
		if (r > 0) {
			off += r;
			continue;
		}
		struct tq_list back;
		tq_list_init(&back);
		if (r == 0 || r == -EAGAIN) {
			/* The kernel is out of room: put the rest back and
			 * wait for completions to free some. */
			for (int i = off; i < n; i++)
				tq_unbuild(q, batch[i]->data, &back);
			tq_list_splice_front(&q->waiting, &back);
			return true;
		}
		if (log_ratelimit_ok(&rl_err))
			log_errno(LOG_LVL_ERR, r, "queue: io_submit");
		tq_fail_slot(q, batch[off]->data, r, &back);
		off++;
		for (int i = off; i < n; i++)
			tq_unbuild(q, batch[i]->data, &back);
		tq_list_splice_front(&q->waiting, &back);
		return false;
	}
	return false;
}

void *tq_submit_main(void *arg)
{
	struct tqueue *q = arg;
	struct iocb *batch[TQ_SUBMIT_BATCH_MAX];
	const struct timespec backoff = { 0, 1000000 };	/* 1 ms, or a freed slot */

	while (!__atomic_load_n(&q->stop, __ATOMIC_ACQUIRE)) {
		tq_take_inbox(q);
		tq_take_freed(q);
		if (!tq_can_progress(q)) {
			bool starved = q->waiting.head != NULL;

			if (!tq_spin(q, starved))
				tq_sleep(q, starved, NULL);
			continue;
		}
		q->last_work_ns = vd_now_ns();
		int n = tq_build_batch(q, batch);
		if (n > 0 && tq_submit_batch(q, batch, n))
			tq_sleep(q, true, &backoff);
	}
	return NULL;
}