/* The vhd driver's data path.  A request walks the blocks it covers; a
 * block whose bitmap is not cached waits for its load (vhd-meta.c) and
 * the walk resumes where it stopped.
 *
 *  read   present runs of the bitmap go to the file, absent runs are
 *         zeroes (dynamic) or go to the parent (differencing); adjacent
 *         pieces of one kind are merged, so an allocated range is one read.
 *         Bytes that are not whole sectors: the covering sectors into a
 *         bounce buffer.
 *  write  whole sectors, holding the range shared (vhd-lock.c).  Into an
 *         allocated block: in place, then the bits are set in the cached
 *         bitmap (dirty).  Into an unallocated block: the block is placed
 *         past every other, below the end footer (vhd-meta.c grows the
 *         file ahead), and written with a zeroed bitmap unless its place
 *         reads zeroes already; once the writes are done the BAT entry
 *         takes it.  Writes to a block being allocated
 *         wait for that; reads of it see absent sectors until then, i.e.
 *         the old contents.
 *         Partial sectors: a read-modify-write holding the covering
 *         sectors exclusive: the edge sectors are read through the read
 *         path (the leaf when their bit is set, else the parent or
 *         zeroes), the new bytes laid over them in a bounce buffer, and
 *         that written through the whole-sector path.
 *  FUA    a write whose bits and BAT entry are already on disk is written
 *         with FUA; any other joins a sync round before it completes.
 *  flush  a sync round (vhd-meta.c).
 *  trim   whole sectors inside the range, held exclusive.  Parentless
 *         (dynamic): the sectors' bits are cleared (they read as zeroes)
 *         and their data punched out of the file; a block left with no
 *         bit set, or trimmed whole, is deallocated (its BAT entry unused;
 *         its space in the file is never reused).  Differencing: nothing
 *         (see docs/architecture.md: clearing bits would bring back the
 *         parent's older data, zeroing would allocate).  Fixed: the file's
 *         trim (a punched hole).
 *  zeroes written as zeroes, 1 MiB at a time; unallocated blocks of a
 *         dynamic image already read as zeroes and are left alone.
 *         Partial sectors at the edges go through the read-modify-write.
 *  status the BAT and bitmaps; absent runs of a differencing image ask
 *         the parent. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/vhd-drv-int.h"

enum { ACC_NONE, ACC_FILE, ACC_ABSENT };

struct vhd_piece {
	struct vd_io child;
	struct vhd_req *r;
	struct vhd_bm *e;
	uint32_t first, count;
	struct vhd_piece *cache_next;
};

struct vhd_req {
	struct vhd_wait w;		/* first: resume finds us */
	struct vhd_wait gw;		/* a grow ahead (vhd_grow_ahead) */
	struct vhd *v;
	struct vd_io *io;
	uint64_t pos, end;
	unsigned refs;
	int err;
	bool need_sync;
	bool locked;			/* lk is in v's lock list */
	void (*walk)(struct vhd_req *r);	/* goes on after a wait or a lock */
	struct vhd_lock lk;
	int acc;			/* reads: the piece being gathered */
	uint64_t acc_pos, acc_len, acc_file;
	struct vd_io sub;		/* write zeroes, block status */
	struct vd_extent pext[64];
	/* The common request has one piece: no malloc for it, and none for
	 * the request (v->req_cache keeps some for reuse).  A request over
	 * several blocks takes its other pieces from v->piece_cache. */
	bool p0_busy;
	struct vhd_piece p0;
	struct vhd_req *cache_next;
};

#define VHD_REQ_CACHE 128
#define VHD_PIECE_CACHE 128

/* Sub-I/Os sent to another image find their owner by their address:
 * the image's driver may use the vd_io's scratch fields. */
struct vhd_alloc_io {
	struct vd_io io;
	struct vhd_alloc *a;
};

struct vhd_alloc {
	struct vhd_req *r;
	struct vhd_bm *e;
	uint32_t first, count;
	unsigned pending;
	int err;
	struct vhd_alloc_io ios[2];
};

static struct vhd_req *req_of_wait(struct vhd_wait *w)
{
	return (struct vhd_req *)w;
}

static struct vhd_req *req_new(struct vhd *v, struct vd_io *io)
{
	struct vhd_req *r = v->req_cache;

	if (r) {
		v->req_cache = r->cache_next;
		v->req_cached--;
	} else {
		r = malloc(sizeof(*r));
		if (!r)
			return NULL;
	}
	r->p0_busy = false;
	r->v = v;
	r->io = io;
	r->pos = io->offset;
	r->end = io->offset + io->len;
	r->refs = 1;
	r->err = 0;
	r->need_sync = false;
	r->locked = false;
	r->acc = ACC_NONE;
	return r;
}

static void req_free(struct vhd *v, struct vhd_req *r)
{
	if (v->req_cached >= VHD_REQ_CACHE) {
		free(r);
		return;
	}
	r->cache_next = v->req_cache;
	v->req_cache = r;
	v->req_cached++;
}

static void req_put(struct vhd_req *r, int err);

static void req_synced(struct vhd_wait *w, int err)
{
	req_put(req_of_wait(w), err);
}

static void req_put(struct vhd_req *r, int err)
{
	struct vd_io *io;

	if (!vd_piece_done(&r->err, &r->refs, err))
		return;
	if (!r->err && r->need_sync) {
		r->need_sync = false;
		r->refs = 1;
		r->w.resume = req_synced;
		vhd_sync(r->v, &r->w);
		return;
	}
	io = r->io;
	err = r->err;
	if (r->locked)
		vhd_lock_release(r->v, &r->lk);
	req_free(r->v, r);
	vd_io_complete(io, err);
}

void vhd_io_cache_free(struct vhd *v)
{
	while (v->req_cache) {
		struct vhd_req *r = v->req_cache;

		v->req_cache = r->cache_next;
		free(r);
	}
	v->req_cached = 0;
	while (v->piece_cache) {
		struct vhd_piece *p = v->piece_cache;

		v->piece_cache = p->cache_next;
		free(p);
	}
	v->piece_cached = 0;
}

static struct vhd_req *req_of_lock(struct vhd_lock *l)
{
	return (struct vhd_req *)((char *)l - offsetof(struct vhd_req, lk));
}

/* A wait (bitmap load, allocation, sync) or a lock ended: go on. */
static void req_resume(struct vhd_wait *w, int err)
{
	struct vhd_req *r = req_of_wait(w);

	if (err)
		req_put(r, err);
	else
		r->walk(r);
}

static void req_lock_run(struct vhd_lock *l)
{
	struct vhd_req *r = req_of_lock(l);

	r->walk(r);
}

/* Sets how r goes on after waits. */
static void req_walk_with(struct vhd_req *r, void (*walk)(struct vhd_req *r))
{
	r->walk = walk;
	r->w.resume = req_resume;
}

/* Takes [start, end) for r; false when r waits (r->walk starts it). */
static bool req_lock(struct vhd_req *r, uint64_t start, uint64_t end, bool excl)
{
	r->lk = (struct vhd_lock){ .start = start, .end = end, .excl = excl,
				   .run = req_lock_run };
	r->locked = true;
	return vhd_lock_acquire(r->v, &r->lk);
}

/* Gives back a piece of r: p0 to r, others to the cache (as req_free). */
static void piece_free(struct vhd_req *r, struct vhd_piece *p)
{
	struct vhd *v = r->v;

	if (p == &r->p0) {
		r->p0_busy = false;
		return;
	}
	if (v->piece_cached >= VHD_PIECE_CACHE) {
		free(p);
		return;
	}
	p->cache_next = v->piece_cache;
	v->piece_cache = p;
	v->piece_cached++;
}

static void piece_done(struct vd_io *child, int err)
{
	struct vhd_piece *p = (struct vhd_piece *)child;
	struct vhd_req *r = p->r;

	if (p->e) {
		if (!err)
			vhd_bm_set(p->e, p->first, p->count);
		vhd_bm_unpin(r->v, p->e);
	}
	piece_free(r, p);
	req_put(r, err);
}

/* A piece for r: its own p0 if free, else a cached one, else a new one. */
static struct vhd_piece *piece_new(struct vhd_req *r)
{
	struct vhd *v = r->v;
	struct vhd_piece *p = v->piece_cache;

	if (!r->p0_busy) {
		r->p0_busy = true;
		return &r->p0;
	}
	if (!p)
		return malloc(sizeof(*p));
	v->piece_cache = p->cache_next;
	v->piece_cached--;
	return p;
}

/* A sub-I/O of r to img; false when out of memory (r carries -ENOMEM). */
static bool piece_send(struct vhd_req *r, struct vd_image *img, enum vd_op op,
		       uint64_t off, uint64_t len, void *buf, unsigned flags,
		       struct vhd_bm *e, uint32_t first, uint32_t count)
{
	struct vhd_piece *p = piece_new(r);

	if (!p) {
		if (!r->err)
			r->err = -ENOMEM;
		return false;
	}
	memset(&p->child, 0, sizeof(p->child));
	p->child.op = op;
	p->child.offset = off;
	p->child.len = len;
	p->child.buf = buf;
	p->child.flags = flags;
	p->child.complete = piece_done;
	p->r = r;
	p->e = e;
	p->first = first;
	p->count = count;
	if (e)
		vhd_bm_pin(e);
	r->refs++;
	vhd_submit(img, &p->child);
	return true;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* ---- read ---- */

/* A grow ahead ended: its error is the grow's, not this request's (the
 * writes that need the space see it). */
static void req_grown(struct vhd_wait *w, int err)
{
	struct vhd_req *r = (struct vhd_req *)((char *)w - offsetof(struct vhd_req, gw));

	(void)err;
	req_put(r, 0);
}

static void rd_issue(struct vhd_req *r)
{
	struct vhd *v = r->v;
	uint8_t *buf;
	uint64_t n;

	if (r->acc == ACC_NONE)
		return;
	buf = (uint8_t *)r->io->buf + (r->acc_pos - r->io->offset);
	switch (r->acc) {
	case ACC_FILE:
		piece_send(r, v->file, VD_OP_READ, r->acc_file, r->acc_len, buf, 0, NULL, 0, 0);
		break;
	case ACC_ABSENT:
		n = !v->parent || r->acc_pos >= v->parent_size ? 0 :
		    min64(r->acc_len, v->parent_size - r->acc_pos);
		if (n < r->acc_len)
			memset(buf + n, 0, r->acc_len - n);
		if (n)
			piece_send(r, v->parent, VD_OP_READ, r->acc_pos, n, buf, 0, NULL, 0, 0);
		break;
	}
	r->acc = ACC_NONE;
}

static void rd_emit(struct vhd_req *r, int kind, uint64_t pos, uint64_t len, uint64_t file)
{
	if (r->acc == kind && r->acc_pos + r->acc_len == pos &&
	    (kind != ACC_FILE || r->acc_file + r->acc_len == file)) {
		r->acc_len += len;
		return;
	}
	rd_issue(r);
	r->acc = kind;
	r->acc_pos = pos;
	r->acc_len = len;
	r->acc_file = file;
}

static void rd_walk(struct vhd_req *r)
{
	struct vhd *v = r->v;

	while (r->pos < r->end) {
		uint32_t b = (uint32_t)(r->pos >> v->block_shift);
		uint64_t boff = r->pos & (v->block_size - 1);
		uint64_t n = min64(r->end - r->pos, v->block_size - boff);
		uint32_t first = (uint32_t)(boff / 512), count = (uint32_t)(n / 512), i = 0;
		uint64_t base;
		struct vhd_bm *e;
		int err;

		if (v->bat[b] == VHD_BAT_UNUSED) {
			rd_emit(r, ACC_ABSENT, r->pos, n, 0);
			r->pos += n;
			continue;
		}
		e = vhd_bm_get(v, b, &r->w, &err);
		if (!e) {
			if (err)
				req_put(r, err);
			return;		/* resumes from the load */
		}
		base = vhd_block_file_off(v, v->bat[b]) + boff;
		while (i < count) {
			bool set;
			uint32_t run = vhd_bitmap_run(e->bits, first + i, count - i, &set);

			rd_emit(r, set ? ACC_FILE : ACC_ABSENT, r->pos + (uint64_t)i * 512,
				(uint64_t)run * 512, base + (uint64_t)i * 512);
			i += run;
		}
		r->pos += n;
	}
	rd_issue(r);
	req_put(r, 0);
}

static bool vhd_sector_aligned(const struct vd_io *io)
{
	return ((io->offset | io->len) & 511) == 0;
}

/* A read that does not start and end on sectors: the covering sectors
 * into a bounce buffer, then the bytes asked for. */
struct vhd_bounce {
	struct vd_io inner;
	struct vd_io *io;
};

static void bounce_done(struct vd_io *inner, int err)
{
	struct vhd_bounce *b = (struct vhd_bounce *)inner;
	struct vd_io *io = b->io;

	if (!err)
		memcpy(io->buf, (uint8_t *)inner->buf + (io->offset - inner->offset), io->len);
	free(inner->buf);
	free(b);
	vd_io_complete(io, err);
}

static int vhd_read_unaligned(struct vhd *v, struct vd_io *io)
{
	uint64_t start = io->offset & ~(uint64_t)511;
	uint64_t end = (io->offset + io->len + 511) & ~(uint64_t)511;
	struct vhd_bounce *b = calloc(1, sizeof(*b));
	void *buf = NULL;
	int err;

	if (!b || posix_memalign(&buf, 4096, end - start)) {
		free(b);
		return -ENOMEM;
	}
	b->io = io;
	b->inner = (struct vd_io){
		.op = VD_OP_READ, .offset = start, .len = end - start, .buf = buf,
		.complete = bounce_done,
	};
	err = vhd_read(v, &b->inner);
	if (err) {
		free(buf);
		free(b);
	}
	return err;
}

int vhd_read(void *priv, struct vd_io *io)
{
	struct vhd *v = priv;
	struct vhd_req *r;

	if (v->type != VHD_TYPE_FIXED && !vhd_sector_aligned(io))
		return vhd_read_unaligned(v, io);
	r = req_new(v, io);
	if (!r)
		return -ENOMEM;
	if (v->type == VHD_TYPE_FIXED) {
		piece_send(r, v->file, VD_OP_READ, io->offset, io->len, io->buf, 0, NULL, 0, 0);
		req_put(r, 0);
		return 0;
	}
	req_walk_with(r, rd_walk);
	rd_walk(r);
	return 0;
}

/* ---- write ---- */

static void alloc_io_done(struct vd_io *io, int err)
{
	struct vhd_alloc *a = ((struct vhd_alloc_io *)io)->a;
	struct vhd_req *r = a->r;

	if (!vd_piece_done(&a->err, &a->pending, err))
		return;
	if (!a->err)
		vhd_bm_set(a->e, a->first, a->count);
	vhd_alloc_commit(r->v, a->e, a->err);
	vhd_bm_unpin(r->v, a->e);
	err = a->err;
	free(a);
	req_put(r, err);
}

static bool wr_alloc(struct vhd_req *r, struct vhd_bm *e, uint64_t boff, uint64_t n)
{
	struct vhd *v = r->v;
	struct vhd_alloc *a = calloc(1, sizeof(*a));
	uint64_t bm_off = (uint64_t)e->alloc_sector * 512, data = bm_off + v->bitmap_bytes;
	uint8_t *buf = (uint8_t *)r->io->buf + (r->pos - r->io->offset);
	unsigned nr = 0;

	if (!a) {
		vhd_alloc_commit(v, e, -ENOMEM);
		vhd_bm_unpin(v, e);
		return false;
	}
	a->r = r;
	a->e = e;
	a->first = (uint32_t)(boff / 512);
	a->count = (uint32_t)(n / 512);
	/* The file already covers the block (it lies below the end footer);
	 * in space a grow added, the bitmap's place reads zeroes already. */
	if (!e->alloc_zeroed)
		a->ios[nr++].io = (struct vd_io){
			.op = VD_OP_WRITE, .offset = bm_off, .len = v->bitmap_bytes,
			.buf = v->zeroes,
		};
	a->ios[nr++].io = (struct vd_io){
		.op = VD_OP_WRITE, .offset = data + boff, .len = n, .buf = buf,
	};
	if (r->io->flags & VD_IO_FUA)
		r->need_sync = true;
	r->refs++;
	a->pending = nr;
	for (unsigned i = 0; i < nr; i++) {
		a->ios[i].io.complete = alloc_io_done;
		a->ios[i].a = a;
		vhd_submit(v->file, &a->ios[i].io);
	}
	return true;
}

static void wr_walk(struct vhd_req *r)
{
	struct vhd *v = r->v;

	while (r->pos < r->end) {
		uint32_t b = (uint32_t)(r->pos >> v->block_shift);
		uint64_t boff = r->pos & (v->block_size - 1);
		uint64_t n = min64(r->end - r->pos, v->block_size - boff);
		uint32_t first = (uint32_t)(boff / 512), count = (uint32_t)(n / 512);
		struct vhd_bm *e;
		int err;

		if (v->bat[b] == VHD_BAT_UNUSED) {
			e = vhd_bm_lookup(v, b);
			if (e && e->allocating) {
				vhd_bm_wait(e, &r->w);
				return;		/* resumes at the commit */
			}
			err = vhd_alloc_begin(v, b, &r->w, &e);
			if (err == 1)
				return;		/* resumes after a sync round */
			if (err < 0 || !wr_alloc(r, e, boff, n)) {
				req_put(r, err < 0 ? err : -ENOMEM);
				return;
			}
			r->gw.resume = req_grown;
			if (vhd_grow_ahead(v, &r->gw))
				r->refs++;
		} else {
			unsigned flags = 0;

			e = vhd_bm_get(v, b, &r->w, &err);
			if (!e) {
				if (err)
					req_put(r, err);
				return;
			}
			if (r->io->flags & VD_IO_FUA) {
				/* FUA is enough when nothing but the data changes. */
				if (!v->round && !e->dirty && !vhd_bat_sector_dirty(v, b) &&
				    vhd_bitmap_range_is(e->bits, first, count, true))
					flags = VD_IO_FUA;
				else
					r->need_sync = true;
			}
			if (!piece_send(r, v->file, VD_OP_WRITE,
					vhd_block_file_off(v, v->bat[b]) + boff, n,
					(uint8_t *)r->io->buf + (r->pos - r->io->offset),
					flags, e, first, count)) {
				req_put(r, -ENOMEM);
				return;
			}
		}
		r->pos += n;
	}
	req_put(r, 0);
}

/* Whole sectors; lock: take the range shared (a read-modify-write holds
 * its own exclusive range already). */
static int wr_start(struct vhd *v, struct vd_io *io, bool lock)
{
	struct vhd_req *r = req_new(v, io);

	if (!r)
		return -ENOMEM;
	req_walk_with(r, wr_walk);
	if (lock && !req_lock(r, io->offset, io->offset + io->len, false))
		return 0;		/* starts when granted */
	wr_walk(r);
	return 0;
}

/* ---- read-modify-write of partial sectors ---- */

struct vhd_rmw;

struct vhd_rmw_io {
	struct vd_io io;
	struct vhd_rmw *m;
};

struct vhd_rmw {
	struct vhd_lock lk;		/* first: run() finds us */
	struct vhd *v;
	struct vd_io *io;
	uint8_t *bounce;		/* the covering sectors */
	unsigned pending;
	int err;
	struct vhd_rmw_io rd[2], wr;
};

static void rmw_finish(struct vhd_rmw *m, int err)
{
	struct vd_io *io = m->io;

	vhd_lock_release(m->v, &m->lk);
	free(m->bounce);
	free(m);
	vd_io_complete(io, err);
}

static void rmw_write_done(struct vd_io *io, int err)
{
	rmw_finish(((struct vhd_rmw_io *)io)->m, err);
}

/* Both edges are in: the new bytes over them, then the sectors whole. */
static void rmw_read_done(struct vd_io *rd, int err)
{
	struct vhd_rmw *m = ((struct vhd_rmw_io *)rd)->m;
	struct vd_io *io = m->io;

	if (!vd_piece_done(&m->err, &m->pending, err))
		return;
	if (m->err) {
		rmw_finish(m, m->err);
		return;
	}
	memcpy(m->bounce + (io->offset - m->lk.start), io->buf, io->len);
	m->wr.m = m;
	m->wr.io = (struct vd_io){
		.op = VD_OP_WRITE, .offset = m->lk.start, .len = m->lk.end - m->lk.start,
		.buf = m->bounce, .flags = io->flags & VD_IO_FUA, .complete = rmw_write_done,
	};
	err = wr_start(m->v, &m->wr.io, false);
	if (err)
		rmw_finish(m, err);
}

static void rmw_read(struct vhd_rmw *m, int i, uint64_t off)
{
	int err;

	m->rd[i].m = m;
	m->rd[i].io = (struct vd_io){
		.op = VD_OP_READ, .offset = off, .len = 512,
		.buf = m->bounce + (off - m->lk.start), .complete = rmw_read_done,
	};
	m->pending++;
	err = vhd_read(m->v, &m->rd[i].io);
	if (err)
		rmw_read_done(&m->rd[i].io, err < 0 ? err : 0);
}

/* The covering sectors are ours: read the partial edge ones. */
static void rmw_run(struct vhd_lock *l)
{
	struct vhd_rmw *m = (struct vhd_rmw *)l;
	struct vd_io *io = m->io;
	bool head = io->offset != l->start;
	bool tail = io->offset + io->len != l->end && !(head && l->end - l->start == 512);

	m->pending = 1;
	if (head)
		rmw_read(m, 0, l->start);
	if (tail)
		rmw_read(m, 1, l->end - 512);
	rmw_read_done(&m->rd[0].io, 0);		/* our own reference */
}

static int vhd_write_rmw(struct vhd *v, struct vd_io *io)
{
	struct vhd_rmw *m = calloc(1, sizeof(*m));
	uint64_t start = io->offset & ~(uint64_t)511;
	uint64_t end = (io->offset + io->len + 511) & ~(uint64_t)511;

	if (!m || posix_memalign((void **)&m->bounce, 4096, end - start)) {
		free(m);
		return -ENOMEM;
	}
	m->v = v;
	m->io = io;
	m->rd[0].m = m;
	m->lk = (struct vhd_lock){ .start = start, .end = end, .excl = true, .run = rmw_run };
	if (vhd_lock_acquire(v, &m->lk))
		rmw_run(&m->lk);
	return 0;
}

int vhd_write(void *priv, struct vd_io *io)
{
	struct vhd *v = priv;
	struct vhd_req *r;

	if (v->type != VHD_TYPE_FIXED)
		return vhd_sector_aligned(io) ? wr_start(v, io, true) : vhd_write_rmw(v, io);
	r = req_new(v, io);
	if (!r)
		return -ENOMEM;
	piece_send(r, v->file, VD_OP_WRITE, io->offset, io->len, io->buf,
		   io->flags & VD_IO_FUA, NULL, 0, 0);
	req_put(r, 0);
	return 0;
}

/* Requests of r to this driver itself (the parts of an unaligned write
 * zeroes). */
struct vhd_self {
	struct vd_io io;
	struct vhd_req *r;
};

static void self_done(struct vd_io *io, int err)
{
	struct vhd_self *c = (struct vhd_self *)io;
	struct vhd_req *r = c->r;

	free(c);
	req_put(r, err);
}

static void self_send(struct vhd_req *r, enum vd_op op, uint64_t off, uint64_t len, void *buf)
{
	struct vhd_self *c = calloc(1, sizeof(*c));
	int err;

	if (!c) {
		if (!r->err)
			r->err = -ENOMEM;
		return;
	}
	c->r = r;
	c->io = (struct vd_io){
		.op = op, .offset = off, .len = len, .buf = buf,
		.flags = r->io->flags & (VD_IO_FUA | VD_IO_NO_HOLE), .complete = self_done,
	};
	r->refs++;
	err = op == VD_OP_WRITE ? vhd_write(r->v, &c->io) : vhd_write_zeroes(r->v, &c->io);
	if (err)
		self_done(&c->io, err < 0 ? err : 0);
}

/* ---- flush, trim ---- */

int vhd_flush(void *priv, struct vd_io *io)
{
	struct vhd *v = priv;
	struct vhd_req *r;

	if (v->read_only)
		return 1;
	r = req_new(v, io);
	if (!r)
		return -ENOMEM;
	if (v->type == VHD_TYPE_FIXED)
		piece_send(r, v->file, VD_OP_FLUSH, 0, 0, NULL, 0, NULL, 0, 0);
	else
		r->need_sync = true;
	req_put(r, 0);
	return 0;
}

/* Parentless dynamic image: clears the bits of whole sectors, punches
 * their data out of the file, deallocates blocks left empty. */
static void trim_walk(struct vhd_req *r)
{
	struct vhd *v = r->v;

	while (r->pos < r->end) {
		uint32_t b = (uint32_t)(r->pos >> v->block_shift);
		uint64_t boff = r->pos & (v->block_size - 1);
		uint64_t n = min64(r->end - r->pos, v->block_size - boff);
		uint32_t first = (uint32_t)(boff / 512), count = (uint32_t)(n / 512);
		uint64_t data;
		struct vhd_bm *e = NULL;
		int err;

		/* Unallocated, or being allocated by a write elsewhere in the
		 * block (its bits here are clear): nothing to do. */
		if (v->bat[b] == VHD_BAT_UNUSED) {
			r->pos += n;
			continue;
		}
		if (count < v->spb) {
			e = vhd_bm_get(v, b, &r->w, &err);
			if (!e) {
				if (err)
					req_put(r, err);
				return;		/* resumes from the load */
			}
			vhd_bm_clear(e, first, count);
		}
		data = vhd_block_file_off(v, v->bat[b]);
		/* A write elsewhere in the block still in flight (it pins the
		 * bitmap) sets its bits when done: keep the block for it. */
		if (count == v->spb ||
		    (!e->pins && vhd_bitmap_range_is(e->bits, 0, v->spb, false))) {
			vhd_dealloc(v, b);
			boff = 0;
			n = v->block_size;
		}
		/* The sectors read as zeroes whatever survives a crash: clear
		 * bits, or set bits over punched data.  The space is never
		 * reused, so the punch may run before the bits are on disk. */
		if (!piece_send(r, v->file, VD_OP_TRIM, data + boff, n, NULL, 0, NULL, 0, 0)) {
			req_put(r, -ENOMEM);
			return;
		}
		r->pos = ((uint64_t)b << v->block_shift) + boff + n;
		if (r->pos > r->end)
			r->pos = r->end;
	}
	if (r->io->flags & VD_IO_FUA)
		r->need_sync = true;
	req_put(r, 0);
}

int vhd_trim(void *priv, struct vd_io *io)
{
	struct vhd *v = priv;
	uint64_t start = (io->offset + 511) & ~(uint64_t)511;
	uint64_t end = (io->offset + io->len) & ~(uint64_t)511;
	struct vhd_req *r;

	if (v->type == VHD_TYPE_DIFF || start >= end)
		return 1;		/* a hint; see the top of the file */
	if (v->type == VHD_TYPE_FIXED) {
		/* Through the file: the data starts at offset 0. */
		r = req_new(v, io);
		if (!r)
			return -ENOMEM;
		piece_send(r, v->file, VD_OP_TRIM, start, end - start, NULL, 0, NULL, 0, 0);
		req_put(r, 0);
		return 0;
	}
	r = req_new(v, io);
	if (!r)
		return -ENOMEM;
	r->pos = start;
	r->end = end;
	req_walk_with(r, trim_walk);
	if (req_lock(r, start, end, true))
		trim_walk(r);
	return 0;
}

/* ---- write zeroes ---- */

static void zero_step(struct vhd_req *r);

static void zero_sub_done(struct vd_io *sub, int err)
{
	struct vhd_req *r = (struct vhd_req *)((char *)sub - offsetof(struct vhd_req, sub));

	if (err)
		req_put(r, err);
	else
		zero_step(r);
}

static void zero_step(struct vhd_req *r)
{
	struct vhd *v = r->v;

	while (r->pos < r->end) {
		uint32_t b = (uint32_t)(r->pos >> v->block_shift);
		uint64_t boff = r->pos & (v->block_size - 1);
		uint64_t n = min64(min64(r->end - r->pos, v->block_size - boff), VHD_ZERO_CHUNK);
		struct vhd_bm *e;
		int err;

		if (!v->parent && v->bat[b] == VHD_BAT_UNUSED &&
		    !((e = vhd_bm_lookup(v, b)) && e->allocating)) {
			r->pos += n;
			continue;
		}
		r->sub = (struct vd_io){
			.op = VD_OP_WRITE, .offset = r->pos, .len = n, .buf = v->zeroes,
			.flags = r->io->flags & VD_IO_FUA, .complete = zero_sub_done,
		};
		r->pos += n;
		err = vhd_write(v, &r->sub);
		if (err)
			zero_sub_done(&r->sub, err < 0 ? err : 0);
		return;
	}
	req_put(r, 0);
}

/* Partial sectors at the edges: read-modify-writes of zeroes; the
 * whole sectors between: zeroed as usual. */
static int vhd_zero_unaligned(struct vhd *v, struct vd_io *io)
{
	uint64_t end = io->offset + io->len;
	uint64_t a = (io->offset + 511) & ~(uint64_t)511, b = end & ~(uint64_t)511;
	struct vhd_req *r = req_new(v, io);

	if (!r)
		return -ENOMEM;
	if (a > b) {
		self_send(r, VD_OP_WRITE, io->offset, io->len, v->zeroes);
	} else {
		if (io->offset < a)
			self_send(r, VD_OP_WRITE, io->offset, a - io->offset, v->zeroes);
		if (a < b)
			self_send(r, VD_OP_WRITE_ZEROES, a, b - a, NULL);
		if (b < end)
			self_send(r, VD_OP_WRITE, b, end - b, v->zeroes);
	}
	req_put(r, 0);
	return 0;
}

int vhd_write_zeroes(void *priv, struct vd_io *io)
{
	struct vhd *v = priv;
	struct vhd_req *r;

	if (v->type != VHD_TYPE_FIXED && !vhd_sector_aligned(io))
		return vhd_zero_unaligned(v, io);
	r = req_new(v, io);
	if (!r)
		return -ENOMEM;
	if (v->type == VHD_TYPE_FIXED) {
		piece_send(r, v->file, VD_OP_WRITE_ZEROES, io->offset, io->len, NULL,
			   io->flags, NULL, 0, 0);
		req_put(r, 0);
		return 0;
	}
	zero_step(r);
	return 0;
}

/* ---- block status ---- */

static void bs_walk(struct vhd_req *r);

static unsigned bs_max(const struct vhd_req *r)
{
	return r->io->flags & VD_IO_REQ_ONE ? 1 : r->io->max_extents;
}

static void bs_sub_done(struct vd_io *sub, int err)
{
	struct vhd_req *r = (struct vhd_req *)((char *)sub - offsetof(struct vhd_req, sub));
	uint64_t covered = 0;

	if (err) {
		req_put(r, err);
		return;
	}
	if (sub->nr_extents == 0) {
		/* No answer: data. */
		if (!vd_extent_add(r->io, bs_max(r), 0, sub->len)) {
			req_put(r, 0);
			return;
		}
		covered = sub->len;
	}
	for (unsigned i = 0; i < sub->nr_extents; i++) {
		if (!vd_extent_add(r->io, bs_max(r), sub->extents[i].flags,
				   sub->extents[i].length)) {
			req_put(r, 0);
			return;
		}
		covered += sub->extents[i].length;
	}
	r->pos += covered;
	bs_walk(r);
}

/* Asks the parent about [r->pos, r->pos+len); false when the walk ends. */
static bool bs_parent(struct vhd_req *r, uint64_t len)
{
	struct vhd *v = r->v;
	uint64_t n = r->pos >= v->parent_size ? 0 : min64(len, v->parent_size - r->pos);

	if (n == 0) {
		if (!vd_extent_add(r->io, bs_max(r), VD_EXTENT_HOLE | VD_EXTENT_ZERO, len))
			return false;
		r->pos += len;
		bs_walk(r);
		return true;
	}
	r->sub = (struct vd_io){
		.op = VD_OP_BLOCK_STATUS, .offset = r->pos, .len = n,
		.flags = r->io->flags & VD_IO_REQ_ONE, .extents = r->pext,
		.max_extents = sizeof(r->pext) / sizeof(r->pext[0]),
		.complete = bs_sub_done,
	};
	vhd_submit(v->parent, &r->sub);
	return true;
}

static void bs_walk(struct vhd_req *r)
{
	struct vhd *v = r->v;
	const uint32_t hole = VD_EXTENT_HOLE | VD_EXTENT_ZERO;
	const uint64_t cap = UINT64_C(1) << 31;

	while (r->pos < r->end) {
		uint32_t b = (uint32_t)(r->pos >> v->block_shift);
		uint64_t boff = r->pos & (v->block_size - 1);
		uint64_t n = min64(r->end - r->pos, v->block_size - boff);
		uint32_t first = (uint32_t)(boff / 512), count = (uint32_t)(n / 512), i = 0;
		struct vhd_bm *e;
		int err;

		if (v->bat[b] == VHD_BAT_UNUSED) {
			while (r->pos + n < r->end && n < cap &&
			       v->bat[(r->pos + n) >> v->block_shift] == VHD_BAT_UNUSED)
				n += min64(r->end - r->pos - n, v->block_size);
			if (v->parent) {
				if (!bs_parent(r, n))
					break;
				return;
			}
			if (!vd_extent_add(r->io, bs_max(r), hole, n))
				break;
			r->pos += n;
			continue;
		}
		e = vhd_bm_get(v, b, &r->w, &err);
		if (!e) {
			if (err)
				req_put(r, err);
			return;
		}
		while (i < count) {
			bool set;
			uint32_t run = vhd_bitmap_run(e->bits, first + i, count - i, &set);

			if (!set && v->parent) {
				r->pos += (uint64_t)i * 512;
				if (!bs_parent(r, (uint64_t)run * 512))
					goto done;
				return;
			}
			if (!vd_extent_add(r->io, bs_max(r), set ? 0 : hole, (uint64_t)run * 512))
				goto done;
			i += run;
		}
		r->pos += n;
	}
done:
	req_put(r, 0);
}

int vhd_block_status(void *priv, struct vd_io *io)
{
	struct vhd *v = priv;
	struct vhd_req *r;

	io->nr_extents = 0;
	if (v->type == VHD_TYPE_FIXED) {
		vd_extent_add(io, 1, 0, min64(io->len, UINT32_MAX & ~511u));
		vd_io_complete(io, 0);
		return 0;
	}
	r = req_new(v, io);
	if (!r)
		return -ENOMEM;
	req_walk_with(r, bs_walk);
	bs_walk(r);
	return 0;
}
