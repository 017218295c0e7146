/* Queue internals shared by the files of queue/; not for its users. */
#ifndef VD_QUEUE_INT_H
#define VD_QUEUE_INT_H

#include <libaio.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/latency.h"
#include "queue/merge.h"
#include "queue/queue.h"

/* A singly linked FIFO of tiocbs through t->next. */
struct tq_list {
	struct tiocb *head;
	struct tiocb **tail;
	unsigned count;
};

/* Counters the submit thread bumps and anyone reads (relaxed atomics). */
struct tq_submit_stats {
	uint64_t iocbs_submitted;
	uint64_t io_submit_calls;
	uint64_t merged;
	uint64_t wakeups;		/* futex wakes of a sleeping submit thread */
	uint64_t polled;		/* batches found by spinning, not by a wake */
};

/* The hand-offs between the main and the submit thread take no lock (the
 * mutex contended on nearly every batch): the main thread pushes tiocbs
 * onto inbox and freed slots onto freed, each a stack a CAS pushes on
 * and one exchange empties.  The submit thread sleeps on the futex word
 * sleeping; a pusher wakes it only when that word says it sleeps (the
 * push and the check, and the sleeper's store and re-check, are
 * sequentially consistent: one of the two sides sees the other).
 *
 * The mutex remains for the worker thread's list and for results handed
 * back outside the kernel ring (worker calls, refused submissions). */
struct tqueue {
	struct event_base *base;
	struct event *ev;		/* eventfd readable */
	io_context_t ctx;
	int efd;
	bool efd_edge;			/* registered edge-triggered: never read */
	struct tq_options opt;
	struct tq_merge_limits lim;
	struct tq_fd_caps caps;		/* written at open, before I/O flows */
	dev_t caps_dev;			/* the filesystem caps were probed on */
	bool caps_probed;
	struct tq_slot *slots;
	struct io_event *events;	/* reaping scratch, opt.depth entries */
	uint64_t poll_ns;		/* opt.poll_us: spin this long before sleeping */

	/* Main thread only. */
	struct tiocb *staged;		/* queued, not yet kicked: newest first */
	struct tiocb *staged_oldest;
	unsigned staged_count;
	unsigned outstanding;		/* queued and not yet called back */
	bool follow;			/* move the submit thread to our CPU */
	int submit_cpu;			/* where it was last moved (-1: nowhere) */
	cpu_set_t start_cpus;		/* its CPUs before the first move */
	uint64_t moves;
	uint64_t moved_ns;		/* when it last moved */
	uint64_t ring_reaps, getevents_reaps;
	struct lat_hist lat_queue;	/* tq_queue -> the submit thread took it */
	struct lat_hist lat_device;	/* taken -> completion reaped */

	/* Submit thread only. */
	struct tq_list waiting;		/* off the inbox, oldest first */
	struct tq_slot *free_slots;
	uint64_t last_work_ns;		/* when it last found work (poll window) */

	/* Shared, lock-free (see above). */
	struct tiocb *inbox;
	struct tq_slot *freed;
	int sleeping;			/* futex word */
	bool starved;			/* asleep for want of a slot */
	bool stop;
	/* Tiocbs on the inbox or waiting (high 32 bits) and in the kernel or
	 * on the worker (low 32 bits), in one word: a move from one to the
	 * other is one atomic add, so a reader never sees a tiocb in both or
	 * in neither. */
	uint64_t counts;
	unsigned long published;	/* slot hand-off for the memory model: see tq_poll */
	struct tq_submit_stats sstats;
	struct lat_hist lat_submit;	/* io_submit call durations */

	pthread_t submit_thread;
	pthread_t worker_thread;
	bool submit_started, worker_started;

	/* Guarded by lock. */
	pthread_mutex_t lock;
	pthread_cond_t worker_cond;
	struct tq_list work;		/* for the worker thread */
	struct tq_list done;		/* finished off the kernel ring: worker
					 * results, failed submissions */
	bool done_ready;		/* done is non-empty (read without the lock) */
	uint64_t worker_calls;
};

void tq_list_init(struct tq_list *l);
void tq_list_append(struct tq_list *l, struct tiocb *t);
void tq_list_splice(struct tq_list *dst, struct tq_list *src);	/* src emptied */
void tq_list_splice_front(struct tq_list *dst, struct tq_list *src);
struct tiocb *tq_list_pop(struct tq_list *l);

/* Wakes the main loop (eventfd), for results on q->done. */
void tq_notify_main(struct tqueue *q);
/* Main thread: hands a newest-first chain (first .. last) to the submit
 * thread, waking it if it sleeps. */
void tq_push_inbox(struct tqueue *q, struct tiocb *first, struct tiocb *last, unsigned n);
/* Any thread: puts t on the done list for the main thread. */
void tq_push_done(struct tqueue *q, struct tiocb *t);
void tq_wake_submitter(struct tqueue *q, bool for_slots);
/* Main thread: moves the submit thread to this CPU if it is not there. */
void tq_follow_main(struct tqueue *q);

/* Moves counts: dw tiocbs to waiting, dp to pending (either negative). */
static inline void tq_count(struct tqueue *q, int64_t dw, int64_t dp)
{
	__atomic_fetch_add(&q->counts, ((uint64_t)dw << 32) + (uint64_t)dp,
			   __ATOMIC_RELAXED);
}

void *tq_submit_main(void *arg);	/* queue/submit.c */
void *tq_worker_main(void *arg);	/* queue/worker.c */
void tq_reap_cb(int fd, short what, void *arg);	/* queue/reap.c */

#endif
