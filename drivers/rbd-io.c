/* The rbd driver's data path.
 *
 * A request goes on the inbox (main thread, a lock-free push, and a
 * futex wake only when the thread sleeps); the driver's submit thread
 * makes the rbd_aio_* call with a completion that has no callback, so
 * librbd runs nothing of ours on its threads.  When a
 * completion is ready librbd bumps the eventfd (rbd_set_image_notification);
 * the main loop reads it, collects the completions with rbd_poll_io_events
 * and completes the requests.  A call librbd refuses at once goes on the
 * fail list and the thread bumps the same eventfd.
 *
 * FUA is the write, then rbd_aio_flush once it has completed: with
 * librbd's cache on (or its default writearound policy) a completed
 * write may still be only in this process.  Block status comes from
 * rbd_diff_iterate2 on the queue's worker: it waits for the cluster. */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/futex.h"
#include "common/log.h"
#include "drivers/rbd-int.h"
#include "queue/queue.h"

enum {
	RBD_STAGE_OP = 0,	/* drv_u64[0]: the request itself */
	RBD_STAGE_FUA_FLUSH,	/* the flush after a FUA write */
	RBD_POLL_BATCH = 64,
};

/* drv_ptr links the inbox and the failed list; drv_u64[1] is a refusal,
 * drv_u64[2] the completion. */
static inline struct vd_io *rbd_next(struct vd_io *io) { return io->drv_ptr; }
static inline rbd_completion_t rbd_comp(struct vd_io *io)
{
	return (rbd_completion_t)(uintptr_t)io->drv_u64[2];
}

static int rbd_submit_one(struct rbd_disk *d, struct vd_io *io)
{
	rbd_completion_t c = rbd_comp(io);

	switch (io->op) {
	case VD_OP_READ:
		return rbd_aio_read(d->image, io->offset, io->len, io->buf, c);
	case VD_OP_WRITE:
		if (io->drv_u64[0] == RBD_STAGE_FUA_FLUSH)
			return rbd_aio_flush(d->image, c);
		return rbd_aio_write(d->image, io->offset, io->len, io->buf, c);
	case VD_OP_FLUSH:
		return rbd_aio_flush(d->image, c);
	case VD_OP_TRIM:
		return rbd_aio_discard(d->image, io->offset, io->len, c);
	case VD_OP_WRITE_ZEROES:
		return rbd_aio_write_zeroes(d->image, io->offset, io->len, c, 0, 0);
	default:
		return -EINVAL;
	}
}

static void rbd_bump(struct rbd_disk *d)
{
	uint64_t one = 1;

	if (write(d->efd, &one, sizeof(one)) < 0)
		log_errno(LOG_LVL_ERR, errno, "rbd: %s: eventfd", d->label);
}

/* Pushes io onto a newest-first stack (the inbox or the failed list). */
static void rbd_push(struct vd_io **stack, struct vd_io *io)
{
	struct vd_io *old = __atomic_load_n(stack, __ATOMIC_RELAXED);

	do
		io->drv_ptr = old;
	while (!__atomic_compare_exchange_n(stack, &old, io, true, __ATOMIC_SEQ_CST,
					    __ATOMIC_RELAXED));
}

/* Empties a stack, oldest first. */
static struct vd_io *rbd_take(struct vd_io **stack)
{
	struct vd_io *io, *next, *rev = NULL;

	if (!__atomic_load_n(stack, __ATOMIC_RELAXED))
		return NULL;
	for (io = __atomic_exchange_n(stack, NULL, __ATOMIC_ACQUIRE); io; io = next) {
		next = rbd_next(io);
		io->drv_ptr = rev;
		rev = io;
	}
	return rev;
}

static bool rbd_work_arrived(struct rbd_disk *d)
{
	return __atomic_load_n(&d->stop, __ATOMIC_SEQ_CST) ||
	       __atomic_load_n(&d->inbox, __ATOMIC_SEQ_CST) != NULL;
}

static void *rbd_submit_thread(void *arg)
{
	struct rbd_disk *d = arg;

	for (;;) {
		struct vd_io *io = rbd_take(&d->inbox);

		if (!io) {
			if (__atomic_load_n(&d->stop, __ATOMIC_SEQ_CST))
				break;
			__atomic_store_n(&d->sleeping, 1, __ATOMIC_SEQ_CST);
			if (!rbd_work_arrived(d))
				vd_futex_wait(&d->sleeping, 1, NULL);
			__atomic_store_n(&d->sleeping, 0, __ATOMIC_RELAXED);
			continue;
		}
		/* librbd may block here (its throttle): the main thread goes on. */
		while (io) {
			struct vd_io *next = rbd_next(io);
			int r = rbd_submit_one(d, io);

			if (r < 0) {
				rbd_aio_release(rbd_comp(io));
				io->drv_u64[1] = (uint64_t)(int64_t)r;
				rbd_push(&d->failed, io);
				rbd_bump(d);
			}
			io = next;
		}
	}
	return NULL;
}

/* The completion is made here, on the main thread, which also releases
 * it: librbd's allocation and free stay in one thread's malloc cache. */
static int rbd_queue(struct rbd_disk *d, struct vd_io *io)
{
	rbd_completion_t c;
	int r = rbd_aio_create_completion(io, NULL, &c);

	if (r < 0)
		return r;
	io->drv_u64[2] = (uint64_t)(uintptr_t)c;
	rbd_push(&d->inbox, io);
	vd_futex_wake_sleeper(&d->sleeping);
	return 0;
}

static int rbd_start(struct rbd_disk *d, struct vd_io *io)
{
	int r;

	io->drv_u64[0] = RBD_STAGE_OP;
	r = rbd_queue(d, io);
	if (r < 0)
		return r;
	d->inflight++;
	return 0;
}

/* A cluster that went away fails every request: say so, not forever. */
static struct log_ratelimit rbd_err_rl = LOG_RATELIMIT_INIT;

static void rbd_finish(struct rbd_disk *d, struct vd_io *io, long res)
{
	if (res >= 0 && io->op == VD_OP_READ && (uint64_t)res != io->len) {
		log_msg(LOG_LVL_ERR, "rbd: %s: short read at %llu: %ld of %llu bytes",
			d->label, (unsigned long long)io->offset, res,
			(unsigned long long)io->len);
		res = -EIO;
	}
	if (res >= 0 && io->op == VD_OP_WRITE && (io->flags & VD_IO_FUA) &&
	    io->drv_u64[0] == RBD_STAGE_OP) {
		io->drv_u64[0] = RBD_STAGE_FUA_FLUSH;
		res = rbd_queue(d, io);
		if (res == 0)
			return;
	}
	if (res < 0 && log_ratelimit_ok(&rbd_err_rl))
		log_msg(LOG_LVL_WARN, "rbd: %s: %s at %llu (%llu bytes): %s", d->label,
			io->op == VD_OP_READ ? "read" : io->op == VD_OP_FLUSH ||
			io->drv_u64[0] == RBD_STAGE_FUA_FLUSH ? "flush" : "write",
			(unsigned long long)io->offset, (unsigned long long)io->len,
			strerror((int)-res));
	d->inflight--;
	vd_io_complete(io, res < 0 ? (int)res : 0);
}

static void rbd_event(evutil_socket_t fd, short what, void *arg)
{
	struct rbd_disk *d = arg;
	rbd_completion_t comps[RBD_POLL_BATCH];
	struct vd_io *failed;
	uint64_t n;
	int got;

	if (!d->efd_edge && read(d->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_errno(LOG_LVL_ERR, errno, "rbd: %s: eventfd", d->label);
	do {
		got = rbd_poll_io_events(d->image, comps, RBD_POLL_BATCH);
		for (int i = 0; i < got; i++) {
			struct vd_io *io = rbd_aio_get_arg(comps[i]);
			long res = (long)rbd_aio_get_return_value(comps[i]);

			rbd_aio_release(comps[i]);
			rbd_finish(d, io, res);
		}
	} while (got == RBD_POLL_BATCH);

	for (failed = rbd_take(&d->failed); failed;) {
		struct vd_io *next = rbd_next(failed);

		rbd_finish(d, failed, (long)(int64_t)failed->drv_u64[1]);
		failed = next;
	}
}

int vrbd_io_start(struct rbd_disk *d, struct event_base *base)
{
	int r;

	d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->efd < 0)
		return -errno;
	/* Before the first aio: completions then wait for rbd_poll_io_events. */
	r = rbd_set_image_notification(d->image, d->efd, EVENT_TYPE_EVENTFD);
	if (r < 0)
		return r;
	/* Edge-triggered, as the queue's: epoll reports every write librbd
	 * makes (one per completion), and rbd_poll_io_events drains them, so
	 * the counter need never be read: one read(2) per wake saved. */
	d->efd_edge = event_base_get_features(base) & EV_FEATURE_ET;
	d->ev = event_new(base, d->efd, EV_READ | EV_PERSIST | (d->efd_edge ? EV_ET : 0),
			  rbd_event, d);
	if (!d->ev || event_add(d->ev, NULL) < 0)
		return -ENOMEM;
	r = pthread_create(&d->thread, NULL, rbd_submit_thread, d);
	if (r)
		return -r;
	d->thread_started = true;
	pthread_setname_np(d->thread, "vdiskd-rbd");
	return 0;
}

void vrbd_io_stop(struct rbd_disk *d)
{
	if (d->thread_started) {
		__atomic_store_n(&d->stop, true, __ATOMIC_SEQ_CST);
		vd_futex_wake_sleeper(&d->sleeping);
		pthread_join(d->thread, NULL);
		d->thread_started = false;
	}
	if (d->ev) {
		event_free(d->ev);
		d->ev = NULL;
	}
}

int vrbd_read(void *priv, struct vd_io *io) { return rbd_start(priv, io); }
int vrbd_write(void *priv, struct vd_io *io) { return rbd_start(priv, io); }
int vrbd_flush(void *priv, struct vd_io *io) { return rbd_start(priv, io); }
int vrbd_trim(void *priv, struct vd_io *io) { return rbd_start(priv, io); }

/* librbd zeroes whole objects by removing them, so NO_HOLE is not
 * honoured to the letter: the range reads back as zeroes either way and
 * RBD images are thin anyway. */
int vrbd_write_zeroes(void *priv, struct vd_io *io) { return rbd_start(priv, io); }

struct rbd_status_ctx {
	struct vd_io *io;
	unsigned max;
	uint64_t pos, end;
	bool full;
};

static int rbd_status_extent(uint64_t off, size_t len, int exists, void *arg)
{
	struct rbd_status_ctx *c = arg;
	uint64_t end = off + len;

	if (end > c->end)
		end = c->end;
	if (end <= c->pos)
		return 0;
	if (off < c->pos)
		off = c->pos;
	if (off > c->pos &&
	    !vd_extent_add(c->io, c->max, VD_EXTENT_HOLE | VD_EXTENT_ZERO, off - c->pos))
		goto full;
	c->pos = off;
	if (!vd_extent_add(c->io, c->max, exists ? 0 : VD_EXTENT_HOLE | VD_EXTENT_ZERO,
			   end - off))
		goto full;
	c->pos = end;
	return 0;
full:
	c->full = true;
	return -ECANCELED;	/* a prefix is an answer: stop here */
}

static long rbd_status_call(struct tiocb *t)
{
	struct vd_io *io = t->data;
	struct rbd_disk *d = io->drv_ptr;
	struct rbd_status_ctx c = {
		.io = io,
		.max = io->flags & VD_IO_REQ_ONE ? 1 : io->max_extents,
		.pos = io->offset,
		.end = io->offset + io->len,
	};
	int r;

	io->nr_extents = 0;
	r = rbd_diff_iterate2(d->image, NULL, io->offset, io->len, 1, 0,
			      rbd_status_extent, &c);
	if (r < 0 && !(r == -ECANCELED && c.full))
		return r;
	if (!c.full && c.pos < c.end)
		vd_extent_add(io, c.max, VD_EXTENT_HOLE | VD_EXTENT_ZERO, c.end - c.pos);
	return io->nr_extents ? 0 : -EIO;
}

static void rbd_status_done(struct tiocb *t, long res)
{
	vd_io_complete(t->data, res < 0 ? (int)res : 0);
}

int vrbd_block_status(void *priv, struct vd_io *io)
{
	struct rbd_disk *d = priv;

	io->drv_ptr = d;
	tiocb_prep_call(&io->tiocb, rbd_status_call, rbd_status_done, io);
	tq_submit(d->q, &io->tiocb);
	return 0;
}
