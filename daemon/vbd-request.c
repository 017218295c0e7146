/* The request path: pool, checks, dispatch to the driver, completion.
 * Every function here runs on the main thread. */
#include <errno.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/vbd-int.h"
#include "queue/queue.h"

enum {
	VBD_POOL_BUF = 128 * 1024,	/* buffer a pooled request keeps */
	VBD_POOL_KEEP_BUF = 1024 * 1024,/* larger buffers are not kept */
	VBD_POOL_MAX_FREE = 256,	/* free requests kept: at most 32 MiB of
				 * buffers per disk after a burst */
	VBD_BUF_ALIGN = 4096,		/* O_DIRECT on any device */
};

static struct vbd_request *vbd_req_from_io(struct vd_io *io)
{
	return (struct vbd_request *)((char *)io - offsetof(struct vbd_request, io));
}

struct vbd_request *vbd_request_get(struct vbd *vbd, uint64_t buflen)
{
	struct vbd_request *req;

	if (buflen > VBD_MAX_PAYLOAD)
		return NULL;
	req = vbd->pool;
	if (req) {
		vbd->pool = req->vbd_next;
		vbd->pool_free--;
	} else {
		req = calloc(1, sizeof(*req));
		if (!req)
			return NULL;
		req->vbd = vbd;
		vbd->pool_total++;
	}
	if (req->cap < buflen) {
		size_t cap = buflen <= VBD_POOL_BUF ? VBD_POOL_BUF : (size_t)buflen;
		void *buf;
		if (posix_memalign(&buf, VBD_BUF_ALIGN, cap)) {
			req->vbd_next = vbd->pool;
			vbd->pool = req;
			vbd->pool_free++;
			return NULL;
		}
		free(req->io.buf);
		req->io.buf = buf;
		req->cap = cap;
	}
	void *buf = req->io.buf;
	size_t cap = req->cap;
	memset(&req->io, 0, sizeof(req->io));
	req->io.buf = buf;
	req->cap = cap;
	req->err = 0;
	req->rejected = false;
	req->done = NULL;
	req->owner = NULL;
	req->tag = 0;
	req->next = NULL;
	req->vbd_next = NULL;
	return req;
}

void vbd_request_put(struct vbd_request *req)
{
	struct vbd *vbd = req->vbd;

	if (vbd->pool_free >= VBD_POOL_MAX_FREE) {
		free(req->io.buf);
		free(req);
		vbd->pool_total--;
		return;
	}
	if (req->cap > VBD_POOL_KEEP_BUF) {
		/* Keep the pool's memory bounded: a 32 MiB buffer is rare. */
		free(req->io.buf);
		req->io.buf = NULL;
		req->cap = 0;
	}
	req->vbd_next = vbd->pool;
	vbd->pool = req;
	vbd->pool_free++;
}

void vbd_pool_free_all(struct vbd *vbd)
{
	while (vbd->pool) {
		struct vbd_request *req = vbd->pool;
		vbd->pool = req->vbd_next;
		free(req->io.buf);
		free(req);
	}
	vbd->pool_free = 0;
}

static void vbd_defer(struct vbd *vbd, struct vbd_request *req, int err)
{
	req->err = err;
	req->vbd_next = NULL;
	*vbd->deferred_tail = req;
	vbd->deferred_tail = &req->vbd_next;
	event_active(vbd->deferred_ev, 0, 0);
}

static const char *vbd_op_name(enum vbd_op op)
{
	static const char *const names[] = {
		[VBD_OP_READ] = "read", [VBD_OP_WRITE] = "write",
		[VBD_OP_FLUSH] = "flush", [VBD_OP_TRIM] = "trim",
		[VBD_OP_WRITE_ZEROES] = "write-zeroes", [VBD_OP_CACHE] = "cache",
		[VBD_OP_BLOCK_STATUS] = "block-status",
	};
	return (unsigned)op < sizeof(names) / sizeof(names[0]) ? names[op] : "?";
}

static void vbd_account(struct vbd *vbd, struct vbd_request *req)
{
	struct vbd_counters *c = &vbd->c;
	uint64_t us = (vd_now_ns() - req->start_ns) / 1000;

	if (req->err)
		c->errors++;
	switch (req->op) {
	case VBD_OP_READ:
		c->reads++;
		if (!req->err)
			c->bytes_read += req->io.len;
		lat_record(&c->read_lat, us);
		break;
	case VBD_OP_WRITE:
		c->writes++;
		if (!req->err)
			c->bytes_written += req->io.len;
		lat_record(&c->write_lat, us);
		break;
	case VBD_OP_FLUSH: c->flushes++; break;
	case VBD_OP_TRIM: c->trims++; break;
	case VBD_OP_WRITE_ZEROES: c->zeroes++; break;
	case VBD_OP_CACHE: c->caches++; break;
	case VBD_OP_BLOCK_STATUS: c->block_status++; break;
	}
}

/* A synthetic answer for drivers without block status: all data. */
static int vbd_block_status_data(struct vd_io *io)
{
	if (io->max_extents == 0 || !io->extents)
		return -EINVAL;
	uint64_t len = io->len > 0xfffff000u ? 0xfffff000u : io->len;
	io->extents[0].length = (uint32_t)len;
	io->extents[0].flags = 0;
	io->nr_extents = 1;
	return 0;
}

/* Hands the request back to the frontend and settles the counters. */
static void vbd_finish(struct vbd *vbd, struct vbd_request *req)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT;

	vbd->inflight--;
	/* Every frontend may count on at least one extent. */
	if (!req->err && req->op == VBD_OP_BLOCK_STATUS && req->io.nr_extents == 0)
		req->err = vbd_block_status_data(&req->io);
	vbd_account(vbd, req);
	if (req->err && !req->rejected && req->err != -ENOTSUP && log_ratelimit_ok(&rl))
		log_errno(LOG_LVL_WARN, req->err, "%s at %llu+%llu failed",
			  vbd_op_name(req->op), (unsigned long long)req->io.offset,
			  (unsigned long long)req->io.len);
	req->done(req);
	if (vbd->inflight == 0 && vbd->waiters)
		vbd_check_drained(vbd);
}

static void vbd_io_complete_cb(struct vd_io *io, int err)
{
	struct vbd_request *req = vbd_req_from_io(io);
	struct vbd *vbd = req->vbd;

	if (vbd->in_submit) {
		/* A driver that completes synchronously (ram): report it from
		 * the loop, so frontends may batch freely. */
		vbd_defer(vbd, req, err);
		return;
	}
	req->err = err;
	vbd_finish(vbd, req);
}

static int vbd_call_driver(struct vbd *vbd, struct vbd_request *req)
{
	const struct vd_driver *d = vbd->drv;
	struct vd_io *io = &req->io;

	switch (req->op) {
	case VBD_OP_READ:
		return d->read(vbd->drv_priv, io);
	case VBD_OP_WRITE:
		return d->write(vbd->drv_priv, io);
	case VBD_OP_FLUSH:
		return d->flush ? d->flush(vbd->drv_priv, io) : 1;
	case VBD_OP_TRIM:
		return d->trim ? d->trim(vbd->drv_priv, io) : -EOPNOTSUPP;
	case VBD_OP_WRITE_ZEROES:
		return d->write_zeroes ? d->write_zeroes(vbd->drv_priv, io) : -EOPNOTSUPP;
	case VBD_OP_CACHE:
		return 1;	/* a hint; the checks were the useful part */
	case VBD_OP_BLOCK_STATUS:
		/* Without the op, vbd_finish answers "all data". */
		return d->block_status ? d->block_status(vbd->drv_priv, io) : 1;
	}
	return -EINVAL;
}

void vbd_dispatch(struct vbd *vbd, struct vbd_request *req)
{
	bool nested = vbd->in_submit;

	vbd->inflight++;
	req->io.complete = vbd_io_complete_cb;
	vbd->in_submit = true;
	int r = vbd_call_driver(vbd, req);
	vbd->in_submit = nested;
	if (r != 0)	/* 1: done at once, no I/O needed */
		vbd_defer(vbd, req, r > 0 ? 0 : r);
}

/* The one place requests are checked (nbdkit's backend_* wrappers). */
static int vbd_check(const struct vbd *vbd, const struct vbd_request *req)
{
	const struct vd_info *info = &vbd->info;
	const struct vd_io *io = &req->io;
	bool writes = req->op == VBD_OP_WRITE || req->op == VBD_OP_TRIM ||
		      req->op == VBD_OP_WRITE_ZEROES;

	if (writes && info->read_only)
		return -EPERM;
	if (req->op == VBD_OP_FLUSH)
		return 0;
	if (io->len == 0 && req->op != VBD_OP_CACHE)
		return -EINVAL;
	if (io->offset > info->size || io->len > info->size - io->offset)
		return writes ? -ENOSPC : -EINVAL;
	if ((req->op == VBD_OP_READ || req->op == VBD_OP_WRITE) &&
	    (io->len > VBD_MAX_PAYLOAD || io->len > req->cap))
		return -EINVAL;
	if (req->op == VBD_OP_BLOCK_STATUS && (!io->extents || !io->max_extents))
		return -EINVAL;
	if (req->op == VBD_OP_WRITE_ZEROES && (io->flags & VD_IO_FAST_ZERO) &&
	    !info->can_fast_zero)
		return -ENOTSUP;
	return 0;
}

void vbd_request_submit(struct vbd_request *req)
{
	struct vbd *vbd = req->vbd;
	int r;

	req->start_ns = vd_now_ns();
	r = vbd_check(vbd, req);
	if (r < 0) {
		req->rejected = true;
		vbd->inflight++;	/* vbd_finish counts it down */
		vbd_defer(vbd, req, r);
		return;
	}
	if (vbd->state != VBD_RUNNING) {
		req->vbd_next = NULL;
		*vbd->held_tail = req;
		vbd->held_tail = &req->vbd_next;
		vbd->held++;
		return;
	}
	vbd_dispatch(vbd, req);
}

void vbd_kick(struct vbd *vbd)
{
	tq_kick(vbd->q);
}

void vbd_deferred_cb(int fd, short what, void *arg)
{
	struct vbd *vbd = arg;
	struct vbd_request *req = vbd->deferred_head;

	vbd->deferred_head = NULL;
	vbd->deferred_tail = &vbd->deferred_head;
	while (req) {
		struct vbd_request *next = req->vbd_next;
		vbd_finish(vbd, req);
		req = next;
	}
	if (vbd->inflight == 0 && vbd->waiters)
		vbd_check_drained(vbd);
	/* Done callbacks may have submitted more. */
	tq_kick(vbd->q);
}
