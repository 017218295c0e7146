/* The request path: pool, checks, dispatch to the driver, completion.
 * Every function here runs on the main thread. */
#include <errno.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "core/vbd-int.h"
#include "queue/queue.h"

enum {
	VBD_POOL_BUF = 128 * 1024,	/* buffer every pooled request may keep */
	/* Larger buffers the free pool keeps, all of them together.  A
	 * client that moves data in requests of a few MiB (qemu-img convert:
	 * 2 MiB, 8 at once) then reuses them, instead of having every request
	 * map a fresh buffer and fault in each of its pages. */
	VBD_POOL_BIG_BYTES = 32 * 1024 * 1024,
	VBD_POOL_MAX_FREE = 256,	/* free requests kept: with the above, at
				 * most 64 MiB of buffers per disk after a
				 * burst */
	VBD_BUF_ALIGN = 4096,		/* O_DIRECT on any device */
};

static struct vbd_req *vbd_req_from_io(struct vd_io *io)
{
	return (struct vbd_req *)((char *)io - offsetof(struct vbd_req, io));
}

/* Free requests are kept on two lists: those whose buffer is at most
 * VBD_POOL_BUF, and those with a larger one, within VBD_POOL_BIG_BYTES. */
static void vbd_pool_push(struct vbd *vbd, struct vbd_req *req)
{
	if (req->cap > VBD_POOL_BUF) {
		if (vbd->pool_big_bytes + req->cap <= VBD_POOL_BIG_BYTES) {
			vbd->pool_big_bytes += req->cap;
			req->vbd_next = vbd->pool_big;
			vbd->pool_big = req;
			vbd->pool_free++;
			return;
		}
		free(req->pub.buf);
		req->pub.buf = NULL;
		req->cap = 0;
	}
	req->vbd_next = vbd->pool;
	vbd->pool = req;
	vbd->pool_free++;
}

/* The large buffer that fits buflen best: the smallest that is big
 * enough, so that a 2 MiB request leaves a 4 MiB buffer to a 4 MiB one. */
static struct vbd_req **vbd_pool_best(struct vbd *vbd, uint64_t buflen)
{
	struct vbd_req **best = NULL;

	for (struct vbd_req **pp = &vbd->pool_big; *pp; pp = &(*pp)->vbd_next)
		if ((*pp)->cap >= buflen && (!best || (*pp)->cap < (*best)->cap))
			best = pp;
	return best;
}

/* A free request for buflen bytes: for a large one the best large
 * buffer, else a small one, else any; NULL when none is free. */
static struct vbd_req *vbd_pool_take(struct vbd *vbd, uint64_t buflen)
{
	struct vbd_req **pp = NULL, *req;

	if (buflen > VBD_POOL_BUF)
		pp = vbd_pool_best(vbd, buflen);
	if (!pp)
		pp = vbd->pool ? &vbd->pool : &vbd->pool_big;
	req = *pp;
	if (!req)
		return NULL;
	*pp = req->vbd_next;
	vbd->pool_free--;
	if (req->cap > VBD_POOL_BUF)
		vbd->pool_big_bytes -= req->cap;
	return req;
}

struct vbd_request *vbd_request_get(struct vbd *vbd, uint64_t buflen)
{
	struct vbd_req *req;

	if (buflen > VBD_MAX_PAYLOAD)
		return NULL;
	req = vbd_pool_take(vbd, buflen);
	if (!req) {
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
			vbd_pool_push(vbd, req);
			return NULL;
		}
		free(req->pub.buf);
		req->pub.buf = buf;
		req->cap = cap;
	}
	void *buf = req->pub.buf;
	memset(&req->pub, 0, sizeof(req->pub));
	req->pub.buf = buf;
	req->charged = buflen;
	vbd->buffer_bytes += buflen;
	req->rejected = false;
	req->done_ns = 0;
	req->vbd_next = NULL;
	return &req->pub;
}

static void vbd_req_free(struct vbd_req *req)
{
	free(req->pub.buf);
	free(req->drv_ext);
	free(req);
}

void vbd_request_put(struct vbd_request *pub)
{
	struct vbd_req *req = vbd_req_of(pub);
	struct vbd *vbd = req->vbd;

	vbd->buffer_bytes -= req->charged;
	req->charged = 0;
	if (vbd->pool_free >= VBD_POOL_MAX_FREE) {
		vbd_req_free(req);
		vbd->pool_total--;
		return;
	}
	vbd_pool_push(vbd, req);
}

void vbd_request_replied(struct vbd_request *pub, uint64_t now_ns)
{
	struct vbd_req *req = vbd_req_of(pub);
	struct vbd_counters *c = &req->vbd->c;

	if (req->done_ns && now_ns >= req->done_ns)
		lat_record(&c->reply_lat, (now_ns - req->done_ns) / 1000);
	if (pub->recv_ns && now_ns >= pub->recv_ns)
		lat_record(&c->total_lat, (now_ns - pub->recv_ns) / 1000);
}

bool vbd_buffer_room(const struct vbd *vbd, uint64_t len)
{
	/* Alone, any request fits: a budget below one request must not
	 * stall it forever. */
	return vbd->buffer_bytes == 0 || vbd->buffer_bytes + len <= vbd->buffer_limit;
}

void vbd_pool_free_all(struct vbd *vbd)
{
	struct vbd_req *req;

	while ((req = vbd_pool_take(vbd, 0)))
		vbd_req_free(req);
}

static void vbd_defer(struct vbd *vbd, struct vbd_req *req, int err)
{
	req->pub.err = err;
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

static void vbd_account(struct vbd *vbd, struct vbd_req *rq)
{
	const struct vbd_request *req = &rq->pub;
	struct vbd_counters *c = &vbd->c;
	uint64_t now = vd_now_ns(), us = (now - rq->start_ns) / 1000;

	rq->done_ns = now;
	lat_record(&c->vbd_lat, us);
	if (req->err)
		c->errors++;
	switch (req->op) {
	case VBD_OP_READ:
		c->reads++;
		if (!req->err)
			c->bytes_read += req->len;
		lat_record(&c->read_lat, us);
		break;
	case VBD_OP_WRITE:
		c->writes++;
		if (!req->err)
			c->bytes_written += req->len;
		lat_record(&c->write_lat, us);
		break;
	case VBD_OP_FLUSH: c->flushes++; break;
	case VBD_OP_TRIM: c->trims++; break;
	case VBD_OP_WRITE_ZEROES: c->zeroes++; break;
	case VBD_OP_CACHE: c->caches++; break;
	case VBD_OP_BLOCK_STATUS: c->block_status++; break;
	}
}

/* The driver's extents become the frontend's; without any (a driver
 * that has no block status), the whole range is data. */
static int vbd_extents_out(struct vbd_req *req)
{
	struct vbd_request *pub = &req->pub;
	unsigned n = req->io.nr_extents;

	if (n > pub->max_extents)
		n = pub->max_extents;
	for (unsigned i = 0; i < n; i++)
		pub->extents[i] = (struct vbd_extent){
			.length = req->drv_ext[i].length,
			.flags = (req->drv_ext[i].flags & VD_EXTENT_HOLE ? VBD_EXTENT_HOLE : 0) |
				 (req->drv_ext[i].flags & VD_EXTENT_ZERO ? VBD_EXTENT_ZERO : 0),
		};
	pub->nr_extents = n;
	if (n == 0) {
		pub->extents[0] = (struct vbd_extent){ .length = pub->len, .flags = 0 };
		pub->nr_extents = 1;
	}
	return 0;
}

static void vbd_error_paused(void *arg, int err)
{
	struct vbd *vbd = arg;

	if (err == 0)
		log_msg(LOG_LVL_WARN, "paused by an I/O error (%s): 'vdiskctl resume' retries "
			"the held requests", vbd->pause_reason);
}

/* The error policy: true when req's error pauses the disk and req is
 * kept for a retry instead of being answered. */
static bool vbd_error_pauses(struct vbd *vbd, struct vbd_req *req)
{
	const struct vbd_request *pub = &req->pub;
	enum vbd_error_policy p;
	int err = pub->err;

	if (!err || req->rejected || err == -ENOTSUP || err == -EOPNOTSUPP)
		return false;
	switch (pub->op) {
	case VBD_OP_READ:
	case VBD_OP_BLOCK_STATUS:
		p = vbd->on_read_error;
		break;
	case VBD_OP_WRITE:
	case VBD_OP_TRIM:
	case VBD_OP_WRITE_ZEROES:
	case VBD_OP_FLUSH:
		p = vbd->on_write_error;
		break;
	default:
		return false;
	}
	if (p == VBD_ERR_REPORT || (p == VBD_ERR_ENOSPC && err != -ENOSPC))
		return false;
	if (vbd->state == VBD_RUNNING || !vbd->pause_reason[0] ||
	    strcmp(vbd->pause_reason, "operator") == 0) {
		snprintf(vbd->pause_reason, sizeof(vbd->pause_reason),
			 "%s on %s at offset %llu", strerrorname_np(-err) ?: "EIO",
			 vbd_op_name(pub->op), (unsigned long long)pub->offset);
		if (vbd->state == VBD_RUNNING)
			vbd_pause(vbd, vbd_error_paused, vbd);
	}
	req->vbd_next = NULL;
	*vbd->failed_tail = req;
	vbd->failed_tail = &req->vbd_next;
	vbd->held++;
	return true;
}

/* Hands the request back to the frontend and settles the counters. */
static void vbd_finish(struct vbd *vbd, struct vbd_req *req)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT;
	struct vbd_request *pub = &req->pub;

	vbd->inflight--;
	vbd->work++;
	if (pub->err && vbd_error_pauses(vbd, req)) {
		pub->err = 0;
		if (vbd->inflight == 0 && vbd->waiters)
			vbd_check_drained(vbd);
		return;
	}
	/* Every frontend may count on at least one extent. */
	if (!pub->err && pub->op == VBD_OP_BLOCK_STATUS)
		pub->err = vbd_extents_out(req);
	vbd_account(vbd, req);
	if (pub->err && !req->rejected && pub->err != -ENOTSUP && log_ratelimit_ok(&rl))
		log_errno(LOG_LVL_WARN, pub->err, "%s at %llu+%llu failed",
			  vbd_op_name(pub->op), (unsigned long long)pub->offset,
			  (unsigned long long)pub->len);
	pub->done(pub);
	if (vbd->inflight == 0 && vbd->waiters)
		vbd_check_drained(vbd);
}

static void vbd_io_complete_cb(struct vd_io *io, int err)
{
	struct vbd_req *req = vbd_req_from_io(io);
	struct vbd *vbd = req->vbd;

	if (vbd->in_submit) {
		/* A driver that completes synchronously (ram): report it from
		 * the loop, so frontends may batch freely. */
		vbd_defer(vbd, req, err);
		return;
	}
	req->pub.err = err;
	vbd_finish(vbd, req);
}

static unsigned vbd_io_flags(unsigned f)
{
	return (f & VBD_REQ_FUA ? VD_IO_FUA : 0) |
	       (f & VBD_REQ_NO_HOLE ? VD_IO_NO_HOLE : 0) |
	       (f & VBD_REQ_FAST_ZERO ? VD_IO_FAST_ZERO : 0) |
	       (f & VBD_REQ_ONE_EXTENT ? VD_IO_REQ_ONE : 0);
}

/* What the driver sees, from what the frontend asked. */
static int vbd_build_io(struct vbd_req *req)
{
	static const enum vd_op ops[] = {
		[VBD_OP_READ] = VD_OP_READ, [VBD_OP_WRITE] = VD_OP_WRITE,
		[VBD_OP_FLUSH] = VD_OP_FLUSH, [VBD_OP_TRIM] = VD_OP_TRIM,
		[VBD_OP_WRITE_ZEROES] = VD_OP_WRITE_ZEROES,
		[VBD_OP_BLOCK_STATUS] = VD_OP_BLOCK_STATUS,
	};
	const struct vbd_request *pub = &req->pub;
	struct vd_io *io = &req->io;

	/* Field by field: the tiocb is set up by whoever queues it, and a
	 * memset of the whole thing is most of this function's cost. */
	io->op = ops[pub->op];
	io->offset = pub->offset;
	io->len = pub->len;
	io->flags = vbd_io_flags(pub->flags);
	io->buf = pub->buf;
	io->extents = NULL;
	io->nr_extents = io->max_extents = 0;
	io->complete = vbd_io_complete_cb;
	io->parent = NULL;
	io->refs = 0;
	io->first_err = 0;
	io->drv_ptr = NULL;
	memset(io->drv_u64, 0, sizeof(io->drv_u64));
	if (pub->op == VBD_OP_BLOCK_STATUS) {
		if (req->drv_ext_cap < pub->max_extents) {
			/* Once per pooled request: kept with it. */
			struct vd_extent *e = reallocarray(req->drv_ext, pub->max_extents,
							   sizeof(*e));
			if (!e)
				return -ENOMEM;
			req->drv_ext = e;
			req->drv_ext_cap = pub->max_extents;
		}
		io->extents = req->drv_ext;
		io->max_extents = pub->max_extents;
	}
	return 0;
}

void vbd_start(struct vbd *vbd, struct vbd_req *req)
{
	bool nested = vbd->in_submit;
	int r;

	if (req->pub.op == VBD_OP_CACHE) {
		/* A hint; the checks were the useful part. */
		vbd_defer(vbd, req, 0);
		return;
	}
	r = vbd_build_io(req);
	if (r == 0) {
		vbd->in_submit = true;
		r = vd_image_submit(vbd->img, &req->io);
		vbd->in_submit = nested;
	}
	if (r != 0)	/* 1: done at once, no I/O needed */
		vbd_defer(vbd, req, r > 0 ? 0 : r);
}

void vbd_dispatch(struct vbd *vbd, struct vbd_req *req)
{
	vbd->inflight++;
	vbd_start(vbd, req);
}

void vbd_admit(struct vbd *vbd, struct vbd_req *req)
{
	if (vbd->limit.on && vbd_limit_hold(vbd, req))
		return;
	vbd_dispatch(vbd, req);
}

/* The one place requests are checked (nbdkit's backend_* wrappers). */
static int vbd_check(const struct vbd *vbd, const struct vbd_req *req)
{
	const struct vbd_info *info = &vbd->info;
	const struct vbd_request *r = &req->pub;
	bool writes = r->op == VBD_OP_WRITE || r->op == VBD_OP_TRIM ||
		      r->op == VBD_OP_WRITE_ZEROES;

	if ((unsigned)r->op > VBD_OP_BLOCK_STATUS)
		return -EINVAL;
	if (writes && info->read_only)
		return -EPERM;
	if (r->op == VBD_OP_FLUSH)
		return 0;
	if (r->len == 0 && r->op != VBD_OP_CACHE)
		return -EINVAL;
	if (r->offset > info->size || r->len > info->size - r->offset)
		return writes ? -ENOSPC : -EINVAL;
	if ((r->op == VBD_OP_READ || r->op == VBD_OP_WRITE) &&
	    (r->len > VBD_MAX_PAYLOAD || r->len > req->cap))
		return -EINVAL;
	if (r->op == VBD_OP_BLOCK_STATUS && (!r->extents || !r->max_extents))
		return -EINVAL;
	if (r->op == VBD_OP_WRITE_ZEROES && (r->flags & VBD_REQ_FAST_ZERO) &&
	    !info->can_fast_zero)
		return -ENOTSUP;
	return 0;
}

void vbd_request_submit(struct vbd_request *pub)
{
	struct vbd_req *req = vbd_req_of(pub);
	struct vbd *vbd = req->vbd;
	int r;

	req->start_ns = vd_now_ns();
	vbd->work++;
	if (pub->recv_ns && pub->recv_ns <= req->start_ns)
		lat_record(&vbd->c.recv_lat, (req->start_ns - pub->recv_ns) / 1000);
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
	vbd_admit(vbd, req);
}

void vbd_kick(struct vbd *vbd)
{
	tq_kick(vbd->q);
}

void vbd_deferred_cb(int fd, short what, void *arg)
{
	struct vbd *vbd = arg;
	struct vbd_req *req = vbd->deferred_head;

	vbd->deferred_head = NULL;
	vbd->deferred_tail = &vbd->deferred_head;
	while (req) {
		struct vbd_req *next = req->vbd_next;
		vbd_finish(vbd, req);
		req = next;
	}
	if (vbd->inflight == 0 && vbd->waiters)
		vbd_check_drained(vbd);
	/* Done callbacks may have submitted more. */
	tq_kick(vbd->q);
}
