/* The submit thread: waiting -> pending, coalescing, io_submit.
 *
 * Bookkeeping for a batch is done before the lock is dropped for
 * io_submit: the main thread may reap (and recycle) a slot before
 * io_submit returns, so after the call this thread touches only the slots
 * the kernel did not take. */
#include <errno.h>
#include <time.h>

#include "common/log.h"
#include "queue/queue-int.h"

enum { TQ_BATCH_MAX = 64 };	/* iocbs per io_submit call */

static bool tq_for_worker(const struct tqueue *q, const struct tiocb *t)
{
	return t->op == TIOCB_CALL || (t->op == TIOCB_FLUSH && !q->caps.fdsync);
}

/* Can the submit thread make progress on the waiting list now? */
static bool tq_can_progress(const struct tqueue *q)
{
	return q->waiting.head && (q->free_slots || tq_for_worker(q, q->waiting.head));
}

/* Takes tiocbs off the waiting list into slots; returns the iocb count.
 * Called with the lock held. */
static int tq_build_batch(struct tqueue *q, struct iocb **batch)
{
	int n = 0;
	bool woke_worker = false;

	while (q->waiting.head && n < TQ_BATCH_MAX) {
		struct tiocb *t = q->waiting.head;

		if (tq_for_worker(q, t)) {
			tq_list_pop(&q->waiting);
			tq_list_append(&q->work, t);
			q->pending++;
			woke_worker = true;
			continue;
		}
		if (!q->free_slots)
			break;
		struct tq_slot *s = q->free_slots;
		q->free_slots = s->next;
		tq_list_pop(&q->waiting);
		tq_slot_start(s, t);
		while (q->waiting.head &&
		       tq_slot_can_append(s, q->waiting.head, &q->lim)) {
			tq_slot_append(s, tq_list_pop(&q->waiting));
			q->stats.merged++;
		}
		tq_slot_prep(s, q->efd, q->caps.rwf_dsync);
		q->pending += s->count;
		batch[n++] = &s->iocb;
	}
	if (woke_worker)
		pthread_cond_signal(&q->worker_cond);
	return n;
}

/* Gives a slot the kernel never saw back: its tiocbs return to the
 * front of the waiting list (in order), the slot to the free list. */
static void tq_unbuild(struct tqueue *q, struct tq_slot *s, struct tq_list *back)
{
	struct tiocb *t = s->head, *next;

	for (; t; t = next) {
		next = t->next;
		tq_list_append(back, t);
	}
	q->pending -= s->count;
	q->stats.merged -= s->count - 1;	/* counted again if rebuilt */
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
	tq_list_append(&q->done, t);
	/* pending stays counted until the main thread takes it off done. */
	s->next = q->free_slots;
	q->free_slots = s;
}

static void tq_backoff(struct tqueue *q)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 1000000;	/* 1 ms, or until a completion frees a slot */
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	q->submitter_idle = true;
	pthread_cond_timedwait(&q->submit_cond, &q->lock, &ts);
	q->submitter_idle = false;
}

void *tq_submit_main(void *arg)
{
	struct tqueue *q = arg;
	struct iocb *batch[TQ_BATCH_MAX];
	static struct log_ratelimit rl_err = LOG_RATELIMIT_INIT;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->stop && !tq_can_progress(q)) {
			q->submitter_idle = true;
			pthread_cond_wait(&q->submit_cond, &q->lock);
			q->submitter_idle = false;
		}
		if (q->stop)
			break;

		int n = tq_build_batch(q, batch);
		if (n == 0)
			continue;	/* everything went to the worker */

		int off = 0;
		bool notify = false;
		while (off < n) {
			/* Counted before the unlock, like the rest of the
			 * bookkeeping: the main thread may complete (and a
			 * pause may report) these iocbs before this thread has
			 * the lock again.  What the kernel did not take is
			 * taken off after the call. */
			q->stats.io_submit_calls++;
			q->stats.iocbs_submitted += (unsigned)(n - off);
			pthread_mutex_unlock(&q->lock);
			int r = io_submit(q->ctx, n - off, batch + off);
			pthread_mutex_lock(&q->lock);

			q->stats.iocbs_submitted -= (unsigned)(n - off - (r > 0 ? r : 0));
			if (r > 0) {
				off += r;
				continue;
			}
			struct tq_list back;
			tq_list_init(&back);
			if (r == 0 || r == -EAGAIN) {
				/* The kernel is out of room: put the rest back
				 * and wait for completions to free some. */
				for (int i = off; i < n; i++)
					tq_unbuild(q, batch[i]->data, &back);
				tq_list_splice_front(&q->waiting, &back);
				tq_backoff(q);
				break;
			}
			if (log_ratelimit_ok(&rl_err))
				log_errno(LOG_LVL_ERR, r, "queue: io_submit");
			tq_fail_slot(q, batch[off]->data, r, &back);
			notify = true;
			off++;
			for (int i = off; i < n; i++)
				tq_unbuild(q, batch[i]->data, &back);
			tq_list_splice_front(&q->waiting, &back);
			break;
		}
		if (notify) {
			pthread_mutex_unlock(&q->lock);
			tq_notify_main(q);
			pthread_mutex_lock(&q->lock);
		}
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}
