/* Queue internals shared by the files of queue/; not for its users. */
#ifndef VD_QUEUE_INT_H
#define VD_QUEUE_INT_H

#include <libaio.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "queue/merge.h"
#include "queue/queue.h"

/* A singly linked FIFO of tiocbs through t->next. */
struct tq_list {
	struct tiocb *head;
	struct tiocb **tail;
	unsigned count;
};

struct tqueue {
	struct event_base *base;
	struct event *ev;		/* eventfd readable */
	io_context_t ctx;
	int efd;
	struct tq_options opt;
	struct tq_merge_limits lim;
	struct tq_fd_caps caps;		/* written at open, before I/O flows */
	dev_t caps_dev;			/* the filesystem caps were probed on */
	bool caps_probed;
	struct tq_slot *slots;
	struct io_event *events;	/* reaping scratch, opt.depth entries */

	/* Main thread only. */
	struct tq_list staged;		/* queued, not yet kicked */
	unsigned outstanding;		/* queued and not yet called back */

	pthread_t submit_thread;
	pthread_t worker_thread;
	bool submit_started, worker_started;

	/* Everything below is guarded by lock. */
	pthread_mutex_t lock;
	pthread_cond_t submit_cond;
	pthread_cond_t worker_cond;
	bool stop;
	bool submitter_idle;		/* sleeping on submit_cond */
	struct tq_list waiting;
	struct tq_list work;		/* for the worker thread */
	struct tq_list done;		/* finished off the kernel ring: worker
					 * results, failed submissions */
	struct tq_slot *free_slots;
	unsigned pending;		/* tiocbs in the kernel or on the worker */
	struct tq_stats stats;
};

void tq_list_init(struct tq_list *l);
void tq_list_append(struct tq_list *l, struct tiocb *t);
void tq_list_splice(struct tq_list *dst, struct tq_list *src);	/* src emptied */
void tq_list_splice_front(struct tq_list *dst, struct tq_list *src);
struct tiocb *tq_list_pop(struct tq_list *l);

/* Wakes the main loop (eventfd), for results on q->done. */
void tq_notify_main(struct tqueue *q);

void *tq_submit_main(void *arg);	/* queue/submit.c */
void *tq_worker_main(void *arg);	/* queue/worker.c */
void tq_reap_cb(int fd, short what, void *arg);	/* queue/reap.c */

#endif
