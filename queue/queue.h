/* The tiocb queue: a libaio context, an eventfd, a waiting and a pending
 * list, one mutex, a submit thread and a worker thread.
 *
 * Threads:
 *   main thread   tq_queue/tq_kick, completion reaping (eventfd readable
 *                 on the event base), every done callback.
 *   submit thread waiting -> pending, coalescing, io_submit.
 *   worker thread TIOCB_CALL and the fdatasync fallback for TIOCB_FLUSH.
 * The mutex is never held across io_submit, io_getevents, a blocking call
 * or a callback. */
#ifndef VD_QUEUE_H
#define VD_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/latency.h"
#include "queue/tiocb.h"

struct event_base;
struct tqueue;

/* The kernel plugs an io_submit of more than two iocbs and starts none of
 * them before the call returns, so a long call keeps its first requests
 * from the device.  Eight measured best on the development VM: 13% more
 * 4k QD32 reads than 64 (docs/performance.md, "Shorter io_submit calls"). */
enum { TQ_SUBMIT_BATCH = 8, TQ_SUBMIT_BATCH_MAX = 64 };

struct tq_options {
	unsigned depth;		/* max iocbs in flight; default 128 */
	unsigned max_merge_iov;	/* cap on iovecs in one coalesced iocb; default 64 */
	size_t max_merge_bytes;	/* cap on bytes in one coalesced iocb; default 1 MiB */
	bool no_merge;		/* never coalesce */
	bool no_user_ring;	/* always reap with io_getevents (tests) */
	bool no_fdsync;		/* never use IOCB_CMD_FDSYNC (tests) */
	bool no_rwf_dsync;	/* emulate FUA with write + flush (tests) */
	unsigned submit_batch;	/* most iocbs in one io_submit call; default
				 * TQ_SUBMIT_BATCH, 1..TQ_SUBMIT_BATCH_MAX */
	unsigned poll_us;	/* submit thread: spin this long for more work
				 * before sleeping, within 1 ms of the last
				 * (0: never spin) */
};

/* Counters of the statistics contract, and where time goes per stage. */
struct tq_stats {
	uint64_t waiting;		/* tiocbs not yet handed to the kernel */
	uint64_t pending;		/* tiocbs in the kernel or on the worker */
	uint64_t iocbs_submitted;	/* iocbs the kernel accepted */
	uint64_t io_submit_calls;
	uint64_t merged;		/* tiocbs that rode in another's iocb */
	uint64_t ring_reaps;		/* completions read from the user ring */
	uint64_t getevents_reaps;	/* completions read with io_getevents */
	uint64_t worker_calls;		/* calls and fdatasyncs on the worker */
	uint64_t wakeups;		/* futex wakes of the submit thread */
	uint64_t polled;		/* batches its poll window caught */
	uint64_t moves;			/* times it followed the main thread to another CPU */
	struct lat_hist lat_queue;	/* tq_queue -> taken by the submit thread */
	struct lat_hist lat_submit;	/* one io_submit call */
	struct lat_hist lat_device;	/* taken -> completion reaped */
};

/* What the kernel accepts on an fd, probed once at open (tq_probe_fd). */
struct tq_fd_caps {
	bool fdsync;		/* IOCB_CMD_FDSYNC */
	bool rwf_dsync;		/* RWF_DSYNC in aio_rw_flags */
};

void tq_options_default(struct tq_options *o);

/* Creates the queue and starts its threads; registers the eventfd on
 * base.  Returns 0 or a negative errno. */
int tq_create(struct event_base *base, const struct tq_options *o,
	      struct tqueue **out);

/* Completes everything queued, running the callbacks (blocking: only at
 * shutdown, once the loop no longer runs). */
void tq_drain(struct tqueue *q);

/* tq_drain, then stops the threads and frees the queue. */
void tq_destroy(struct tqueue *q);

/* Probes FDSYNC and RWF_DSYNC on fd with a private context (blocking).
 * The queue remembers the answer for its flushes and FUA writes, and
 * for later fds on the same device (a reopen) skips the probe. */
int tq_probe_fd(struct tqueue *q, int fd, struct tq_fd_caps *caps);

/* Appends to the waiting list; nothing is submitted until tq_kick. */
void tq_queue(struct tqueue *q, struct tiocb *t);
/* Wakes the submit thread once for everything queued so far. */
void tq_kick(struct tqueue *q);
static inline void tq_submit(struct tqueue *q, struct tiocb *t)
{
	tq_queue(q, t);
	tq_kick(q);
}

/* Reaps completions and runs callbacks now (the eventfd handler calls it;
 * tests and shutdown may too).  Returns the number completed. */
int tq_poll(struct tqueue *q);

/* Blocks until at least one completion arrives, then runs callbacks.
 * Only for tests and for shutdown when the loop no longer runs. */
int tq_wait(struct tqueue *q);

/* tiocbs queued and not yet completed (waiting + pending + being reaped). */
unsigned tq_outstanding(struct tqueue *q);

/* Main thread: whether the submit thread runs on the CPU the main thread
 * runs on, moved when that changes (queue/affinity.c).  Off by default:
 * only the owner knows whether io_submit merely queues (O_DIRECT) or
 * does the copy itself (buffered), where the two threads want two CPUs.
 * Turned off, the thread gets back the CPUs it had before it moved. */
void tq_set_follow(struct tqueue *q, bool follow);

void tq_get_stats(struct tqueue *q, struct tq_stats *s);
const struct tq_fd_caps *tq_caps(struct tqueue *q);

#endif
