/* The vhd driver's metadata in memory: the BAT (4 bytes a block, loaded
 * at open), a bounded LRU cache of sector bitmaps read on demand,
 * allocation of new blocks at the end of the file, and the sync rounds
 * that make bitmaps and BAT durable; growing the file.
 *
 * The cache bound is soft: an entry in use (pinned: being loaded, written,
 * or allocated) or dirty (bits not yet on disk) cannot be dropped.  When
 * the cache is full and some entries are dirty, the request that needs a
 * new one waits for a sync round to clean them; when all are pinned, the
 * cache grows past the bound by what the requests in flight hold.
 *
 * A sync round (at most one runs; requests arriving meanwhile wait for
 * the next):
 *   1. snapshot: copy the dirty bitmaps of committed blocks and the dirty
 *      BAT sectors (committed entries only);
 *   2. FLUSH the file: every data write completed before the snapshot is
 *      durable, and so is the zeroed bitmap of every committed block;
 *   3. write the copies, in parallel;
 *   4. FLUSH again; the round's waiters are told.
 * Whatever subset of step 3 survives a crash, each bitmap bit and each BAT
 * entry on disk describes data made durable in step 2.
 *
 * Growing the file: the footer stays the file's last 512 bytes at every
 * moment that can survive a crash.  A block is placed only below
 * footer_at; when it does not fit, a grow (a worker call) writes the
 * footer GROW further on, which also extends the file (a hole between),
 * and fdatasyncs, before any block may use the space, so an old footer
 * that a new block overwrites is never the last one on disk.  The blocks'
 * data writes are then never extending writes (which ext4 makes
 * synchronous), and a block's bitmap in space a grow added reads zeroes
 * without being written.  At close the file is cut back: footer behind
 * the last block, fdatasync, truncate, fdatasync. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "drivers/vhd-drv-int.h"
#include "queue/queue.h"

void vhd_submit(struct vd_image *img, struct vd_io *io)
{
	int r = vd_image_submit(img, io);

	if (r)
		io->complete(io, r < 0 ? r : 0);
}

static void *vhd_alloc_aligned(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, len ? len : 1))
		return NULL;
	return p;
}

int vhd_meta_init(struct vhd *v)
{
	uint32_t hsize = 1;

	v->max_bm = VHD_CACHE_BYTES / v->bitmap_bytes;
	if (v->max_bm < VHD_CACHE_MIN)
		v->max_bm = VHD_CACHE_MIN;
	while (hsize < v->max_bm * 2)
		hsize <<= 1;
	v->hash = calloc(hsize, sizeof(*v->hash));
	v->hash_mask = hsize - 1;
	v->bat_sectors = (uint32_t)(vhd_bat_bytes(v->bat_entries) / 512);
	v->bat_dirty = calloc((v->bat_sectors + 7) / 8, 1);
	v->sync_next_tail = &v->sync_next;
	if (!v->read_only)
		v->zeroes = vhd_alloc_aligned(VHD_ZERO_CHUNK);
	if (!v->hash || !v->bat_dirty || (!v->read_only && !v->zeroes))
		return -ENOMEM;
	if (!v->read_only)
		memset(v->zeroes, 0, VHD_ZERO_CHUNK);
	return 0;
}

static void bm_free(struct vhd_bm *e)
{
	free(e->bits);
	free(e);
}

void vhd_meta_free(struct vhd *v)
{
	struct vhd_bm *e = v->lru_head;

	while (e) {
		struct vhd_bm *n = e->next;
		bm_free(e);
		e = n;
	}
	free(v->hash);
	free(v->bat_dirty);
	free(v->zeroes);
}

static uint32_t bm_hash(const struct vhd *v, uint32_t block)
{
	return (block * 2654435761u) & v->hash_mask;
}

struct vhd_bm *vhd_bm_lookup(struct vhd *v, uint32_t block)
{
	struct vhd_bm *e;

	if (!v->hash)
		return NULL;
	for (e = v->hash[bm_hash(v, block)]; e; e = e->hnext)
		if (e->block == block)
			return e;
	return NULL;
}

static void lru_unlink(struct vhd *v, struct vhd_bm *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		v->lru_head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		v->lru_tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push(struct vhd *v, struct vhd_bm *e)
{
	e->prev = NULL;
	e->next = v->lru_head;
	if (v->lru_head)
		v->lru_head->prev = e;
	v->lru_head = e;
	if (!v->lru_tail)
		v->lru_tail = e;
}

static void bm_remove(struct vhd *v, struct vhd_bm *e)
{
	struct vhd_bm **p = &v->hash[bm_hash(v, e->block)];

	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
	lru_unlink(v, e);
	v->nr_bm--;
	bm_free(e);
}

static bool bm_evictable(const struct vhd_bm *e)
{
	return !e->pins && !e->dirty && !e->allocating && !e->waiters;
}

/* Room for one more entry: true when there is, else false with *dirty
 * telling whether a sync round would make some. */
static bool bm_make_room(struct vhd *v, bool *dirty)
{
	*dirty = false;
	if (v->nr_bm < v->max_bm)
		return true;
	for (struct vhd_bm *e = v->lru_tail; e; e = e->prev) {
		if (bm_evictable(e)) {
			bm_remove(v, e);
			return true;
		}
		*dirty |= e->dirty && !e->allocating;
	}
	return false;
}

/* A new entry, or NULL with w queued for a sync round (cache full of
 * dirty bitmaps) or -ENOMEM in *err. */
static struct vhd_bm *bm_new(struct vhd *v, uint32_t block, struct vhd_wait *w, int *err)
{
	struct vhd_bm *e;
	bool dirty;

	*err = 0;
	if (!bm_make_room(v, &dirty) && dirty && w) {
		vhd_sync(v, w);
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (e)
		e->bits = vhd_alloc_aligned(v->bitmap_bytes);
	if (!e || !e->bits) {
		free(e);
		*err = -ENOMEM;
		return NULL;
	}
	e->block = block;
	e->v = v;
	e->hnext = v->hash[bm_hash(v, block)];
	v->hash[bm_hash(v, block)] = e;
	lru_push(v, e);
	v->nr_bm++;
	return e;
}

static void bm_wake(struct vhd_bm *e, int err)
{
	struct vhd_wait *w = e->waiters;

	e->waiters = NULL;
	while (w) {
		struct vhd_wait *n = w->next;
		w->resume(w, err);
		w = n;
	}
}

void vhd_bm_pin(struct vhd_bm *e)
{
	e->pins++;
}

void vhd_bm_unpin(struct vhd *v, struct vhd_bm *e)
{
	e->pins--;
	if (e->dead) {
		if (!e->pins)
			bm_free(e);
		return;
	}
	if (!e->loaded && !e->allocating && bm_evictable(e))
		bm_remove(v, e);	/* a failed load or allocation */
}

static void bm_load_done(struct vd_io *io, int err)
{
	struct vhd_bm *e = (struct vhd_bm *)((char *)io - offsetof(struct vhd_bm, io));
	struct vhd *v = e->v;

	e->loaded = err == 0;
	e->err = err;
	if (err)
		log_errno(LOG_LVL_ERR, err, "vhd: %s: reading the bitmap of block %u",
			  v->path, e->block);
	/* Nothing of v may be touched once the waiters ran: the last request
	 * to complete may get the image closed (a reopen after a drain). */
	{
		struct vhd_wait *w = e->waiters;

		e->waiters = NULL;
		vhd_bm_unpin(v, e);
		while (w) {
			struct vhd_wait *n = w->next;
			w->resume(w, err);
			w = n;
		}
	}
}

void vhd_bm_wait(struct vhd_bm *e, struct vhd_wait *w)
{
	w->next = e->waiters;
	e->waiters = w;
}

struct vhd_bm *vhd_bm_get(struct vhd *v, uint32_t block, struct vhd_wait *w, int *err)
{
	struct vhd_bm *e = vhd_bm_lookup(v, block);

	*err = 0;
	if (e) {
		if (e->loaded) {
			if (v->lru_head != e) {
				lru_unlink(v, e);
				lru_push(v, e);
			}
			return e;
		}
		vhd_bm_wait(e, w);
		return NULL;
	}
	e = bm_new(v, block, w, err);
	if (!e)
		return NULL;
	vhd_bm_pin(e);
	vhd_bm_wait(e, w);
	e->io = (struct vd_io){
		.op = VD_OP_READ, .offset = (uint64_t)v->bat[block] * 512,
		.len = v->bitmap_bytes, .buf = e->bits, .complete = bm_load_done,
	};
	vhd_submit(v->file, &e->io);
	return NULL;
}

/* ---- growing the file ---- */

static uint64_t grow_chunk(const struct vhd *v)
{
	uint64_t span = (uint64_t)v->bitmap_bytes + v->block_size + VHD_DATA_ALIGN;
	uint64_t c = 16 * span;

	return c < (32u << 20) ? (32u << 20) : c;
}

/* Worker thread: the footer at the new end, durable. */
static long grow_call(struct tiocb *t)
{
	struct vhd *v = t->data;
	int err = vd_pwrite_all(v->grow_fd, v->footer_raw, VHD_FOOTER_SIZE, v->grow_to);

	if (!err && fdatasync(v->grow_fd) < 0)
		err = -errno;
	return err;
}

static void grow_done(struct tiocb *t, long res)
{
	struct vhd *v = t->data;
	struct vhd_wait *w = v->grow_waiters;

	v->growing = false;
	v->grow_waiters = NULL;
	if (res < 0) {
		log_errno(LOG_LVL_ERR, (int)res, "vhd: %s: growing the file to %" PRIu64
			  " bytes", v->path, v->grow_to + VHD_FOOTER_SIZE);
	} else {
		/* The old footer's bytes are below zero_from: a block placed
		 * over them writes its bitmap. */
		v->zero_from = v->footer_at + VHD_FOOTER_SIZE > v->zero_from ?
			       v->footer_at + VHD_FOOTER_SIZE : v->zero_from;
		v->footer_at = v->grow_to;
		v->footer_ok = true;
	}
	/* The waiters place their blocks again (or fail: a write error). */
	while (w) {
		struct vhd_wait *n = w->next;
		w->resume(w, res < 0 ? (int)res : 0);
		w = n;
	}
}

/* Starts a grow that leaves room for a block ending at need. */
static void grow_start(struct vhd *v, uint64_t need)
{
	uint64_t to = (need > v->footer_at ? need : v->footer_at) + grow_chunk(v);

	if (v->growing)
		return;
	/* vhd_alloc_begin refused blocks past this already. */
	if (to + VHD_FOOTER_SIZE > (uint64_t)UINT32_MAX * 512)
		to = (uint64_t)UINT32_MAX * 512 - VHD_FOOTER_SIZE;
	v->growing = true;
	v->grow_to = to & ~(uint64_t)511;
	tiocb_prep_call(&v->grow_t, grow_call, grow_done, v);
	tq_queue(v->q, &v->grow_t);
}

/* Where the next block goes: its data aligned, behind everything else,
 * below the end footer. */
int vhd_alloc_begin(struct vhd *v, uint32_t block, struct vhd_wait *w, struct vhd_bm **out)
{
	uint64_t bm_off = ((v->next_alloc + v->bitmap_bytes + VHD_DATA_ALIGN - 1) &
			   ~(uint64_t)(VHD_DATA_ALIGN - 1)) - v->bitmap_bytes;
	uint64_t end = bm_off + v->bitmap_bytes + v->block_size;
	struct vhd_bm *e = vhd_bm_lookup(v, block);
	int err = 0;

	if (end + VHD_FOOTER_SIZE * 2 > (uint64_t)UINT32_MAX * 512) {
		log_msg(LOG_LVL_ERR, "vhd: %s: file would pass 2 TiB; cannot allocate "
			"block %u", v->path, block);
		return -ENOSPC;
	}
	if (end > v->footer_at) {
		if (!v->can_grow) {
			log_msg(LOG_LVL_ERR, "vhd: %s: no room for block %u before the "
				"footer (a device cannot grow)", v->path, block);
			return -ENOSPC;
		}
		w->next = v->grow_waiters;
		v->grow_waiters = w;
		grow_start(v, end);
		return 1;
	}
	if (!e) {
		e = bm_new(v, block, w, &err);
		if (!e)
			return err ? err : 1;
	}
	memset(e->bits, 0, v->bitmap_bytes);
	e->loaded = true;
	e->err = 0;
	e->allocating = true;
	e->alloc_zeroed = bm_off >= v->zero_from;
	e->alloc_sector = (uint32_t)(bm_off / 512);
	vhd_bm_pin(e);
	v->next_alloc = end;
	v->allocs_inflight++;
	*out = e;
	return 0;
}

bool vhd_grow_ahead(struct vhd *v, struct vhd_wait *w)
{
	if (!v->can_grow || v->growing || v->footer_at - v->next_alloc >= grow_chunk(v) / 2)
		return false;
	w->next = v->grow_waiters;
	v->grow_waiters = w;
	grow_start(v, v->next_alloc);
	return true;
}

void vhd_alloc_commit(struct vhd *v, struct vhd_bm *e, int err)
{
	e->allocating = false;
	v->allocs_inflight--;
	if (!err) {
		uint32_t s = (uint32_t)((uint64_t)e->block * 4 / 512);

		v->bat[e->block] = e->alloc_sector;
		v->bat_dirty[s / 8] |= (uint8_t)(1u << (s % 8));
	} else {
		e->loaded = false;
		memset(e->bits, 0, v->bitmap_bytes);
	}
	bm_wake(e, err);
}

bool vhd_bm_set(struct vhd_bm *e, uint32_t first, uint32_t count)
{
	if (vhd_bitmap_range_is(e->bits, first, count, true))
		return false;
	vhd_bitmap_set_range(e->bits, first, count, true);
	e->dirty = true;
	return true;
}

bool vhd_bm_clear(struct vhd_bm *e, uint32_t first, uint32_t count)
{
	if (vhd_bitmap_range_is(e->bits, first, count, false))
		return false;
	vhd_bitmap_set_range(e->bits, first, count, false);
	e->dirty = true;
	return true;
}

uint32_t vhd_dealloc(struct vhd *v, uint32_t block)
{
	struct vhd_bm *e = vhd_bm_lookup(v, block);
	uint32_t old = v->bat[block], s = (uint32_t)((uint64_t)block * 4 / 512);

	if (e) {
		struct vhd_bm **p = &v->hash[bm_hash(v, block)];

		/* Out of the cache now; one still pinned (a load with its
		 * waiters, a sync round writing it to its old place, which is
		 * harmless) is freed by its last unpin.  Its waiters look at
		 * the BAT again and find the block unallocated. */
		while (*p != e)
			p = &(*p)->hnext;
		*p = e->hnext;
		lru_unlink(v, e);
		v->nr_bm--;
		e->dirty = false;
		if (e->pins || e->waiters)
			e->dead = true;
		else
			bm_free(e);
	}
	v->bat[block] = VHD_BAT_UNUSED;
	v->bat_dirty[s / 8] |= (uint8_t)(1u << (s % 8));
	return old;
}

bool vhd_bat_sector_dirty(const struct vhd *v, uint32_t block)
{
	uint32_t s = (uint32_t)((uint64_t)block * 4 / 512);

	return v->bat_dirty[s / 8] & (1u << (s % 8));
}

bool vhd_meta_dirty(const struct vhd *v)
{
	for (uint32_t i = 0; i < (v->bat_sectors + 7) / 8; i++)
		if (v->bat_dirty[i])
			return true;
	for (struct vhd_bm *e = v->lru_head; e; e = e->next)
		if (e->dirty)
			return true;
	return false;
}

/* ---- sync rounds ---- */

/* Sub-I/Os find their round by address (the file's driver may use the
 * vd_io's scratch fields). */
struct vhd_round_io {
	struct vd_io io;
	struct vhd_round *r;
};

struct vhd_round {
	struct vhd *v;
	struct vhd_wait *members;
	struct vhd_round_io flush;
	int stage;			/* 1: first flush, 2: writes, 3: second flush */
	unsigned pending;
	int err;
	struct vhd_bm **bms;
	uint64_t *bm_offs;		/* where each goes, taken at the snapshot */
	unsigned nr_bms;
	uint32_t *bat_secs;
	unsigned nr_bat;
	uint8_t *buf;			/* bitmaps, then BAT sectors */
	struct vhd_round_io *ios;
};

static void round_start(struct vhd *v);

static void round_finish(struct vhd_round *r)
{
	struct vhd *v = r->v;
	struct vhd_wait *w = r->members;

	if (r->err) {
		log_errno(LOG_LVL_ERR, r->err, "vhd: %s: writing metadata", v->path);
		for (unsigned i = 0; i < r->nr_bms; i++)
			r->bms[i]->dirty = !r->bms[i]->dead;
		for (unsigned i = 0; i < r->nr_bat; i++)
			v->bat_dirty[r->bat_secs[i] / 8] |= (uint8_t)(1u << (r->bat_secs[i] % 8));
	}
	int err = r->err;

	for (unsigned i = 0; i < r->nr_bms; i++)
		vhd_bm_unpin(v, r->bms[i]);
	v->round = NULL;
	free(r->bms);
	free(r->bm_offs);
	free(r->bat_secs);
	free(r->buf);
	free(r->ios);
	free(r);
	if (v->sync_next)
		round_start(v);
	/* Last: once the members are told, v may be gone (a snapshot closes
	 * the image from its flush's completion). */
	while (w) {
		struct vhd_wait *n = w->next;
		w->resume(w, err);
		w = n;
	}
}

static void round_step(struct vhd_round *r);

static void round_io_done(struct vd_io *io, int err)
{
	struct vhd_round *r = ((struct vhd_round_io *)io)->r;

	if (vd_piece_done(&r->err, &r->pending, err))
		round_step(r);
}

static void round_step(struct vhd_round *r)
{
	struct vhd *v = r->v;
	unsigned n = 0, bm = v->bitmap_bytes;

	if (r->err || r->stage == 3) {
		round_finish(r);
		return;
	}
	if (r->stage == 1 && r->nr_bms + r->nr_bat > 0) {
		r->stage = 2;
		r->pending = 1;
		for (unsigned i = 0; i < r->nr_bms; i++, n++)
			r->ios[n].io = (struct vd_io){
				.op = VD_OP_WRITE, .len = bm, .buf = r->buf + (size_t)i * bm,
				.offset = r->bm_offs[i],
			};
		for (unsigned i = 0; i < r->nr_bat; i++, n++)
			r->ios[n].io = (struct vd_io){
				.op = VD_OP_WRITE, .len = 512,
				.buf = r->buf + (size_t)r->nr_bms * bm + (size_t)i * 512,
				.offset = v->bat_offset + (uint64_t)r->bat_secs[i] * 512,
			};
		for (unsigned i = 0; i < n; i++) {
			r->ios[i].io.complete = round_io_done;
			r->ios[i].r = r;
			r->pending++;
			vhd_submit(v->file, &r->ios[i].io);
		}
		round_io_done(&r->flush.io, 0);	/* our own reference */
		return;
	}
	/* After the first flush with nothing to write, or after the writes. */
	r->stage = 3;
	r->pending = 1;
	r->flush.io = (struct vd_io){ .op = VD_OP_FLUSH, .complete = round_io_done };
	r->flush.r = r;
	if (r->nr_bms + r->nr_bat == 0) {
		round_finish(r);
		return;
	}
	vhd_submit(v->file, &r->flush.io);
}

static void round_start(struct vhd *v)
{
	struct vhd_round *r = calloc(1, sizeof(*r));
	unsigned nb = 0, nbat = 0, bm = v->bitmap_bytes;
	size_t len;

	if (!r)
		goto nomem;
	r->v = v;
	r->members = v->sync_next;
	v->sync_next = NULL;
	v->sync_next_tail = &v->sync_next;
	for (struct vhd_bm *e = v->lru_head; e; e = e->next)
		nb += e->dirty && !e->allocating;
	for (uint32_t s = 0; s < v->bat_sectors; s++)
		nbat += !!(v->bat_dirty[s / 8] & (1u << (s % 8)));
	len = (size_t)nb * bm + (size_t)nbat * 512 + 512;
	r->bms = calloc(nb ? nb : 1, sizeof(*r->bms));
	r->bm_offs = calloc(nb ? nb : 1, sizeof(*r->bm_offs));
	r->bat_secs = calloc(nbat ? nbat : 1, sizeof(*r->bat_secs));
	r->ios = calloc(nb + nbat + 1, sizeof(*r->ios));
	r->buf = vhd_alloc_aligned(len);
	if (!r->bms || !r->bm_offs || !r->bat_secs || !r->ios || !r->buf) {
		struct vhd_wait *w = r->members;

		free(r->bms);
		free(r->bm_offs);
		free(r->bat_secs);
		free(r->ios);
		free(r->buf);
		free(r);
		/* Tell the members; nothing was taken from the dirty state. */
		while (w) {
			struct vhd_wait *n = w->next;
			w->resume(w, -ENOMEM);
			w = n;
		}
		return;
	}
	for (struct vhd_bm *e = v->lru_head; e; e = e->next) {
		if (!e->dirty || e->allocating)
			continue;
		memcpy(r->buf + (size_t)r->nr_bms * bm, e->bits, bm);
		e->dirty = false;
		vhd_bm_pin(e);
		r->bm_offs[r->nr_bms] = (uint64_t)v->bat[e->block] * 512;
		r->bms[r->nr_bms++] = e;
	}
	for (uint32_t s = 0; s < v->bat_sectors; s++) {
		uint8_t *p;

		if (!(v->bat_dirty[s / 8] & (1u << (s % 8))))
			continue;
		v->bat_dirty[s / 8] &= (uint8_t)~(1u << (s % 8));
		p = r->buf + (size_t)nb * bm + (size_t)r->nr_bat * 512;
		for (uint32_t i = 0; i < 128; i++) {
			uint32_t b = s * 128 + i;
			vhd_bat_set(p, i, b < v->bat_entries ? v->bat[b] : VHD_BAT_UNUSED);
		}
		r->bat_secs[r->nr_bat++] = s;
	}
	v->round = r;
	r->stage = 1;
	r->pending = 1;
	r->flush.io = (struct vd_io){ .op = VD_OP_FLUSH, .complete = round_io_done };
	r->flush.r = r;
	vhd_submit(v->file, &r->flush.io);
	return;
nomem:
	{
		struct vhd_wait *w = v->sync_next;

		v->sync_next = NULL;
		v->sync_next_tail = &v->sync_next;
		while (w) {
			struct vhd_wait *n = w->next;
			w->resume(w, -ENOMEM);
			w = n;
		}
	}
}

void vhd_sync(struct vhd *v, struct vhd_wait *w)
{
	w->next = NULL;
	*v->sync_next_tail = w;
	v->sync_next_tail = &w->next;
	if (!v->round)
		round_start(v);
}

/* Close time (nothing in flight): the same round with blocking calls on
 * a buffered fd, then the file cut back to its last block and the footer. */
void vhd_meta_sync_blocking(struct vhd *v)
{
	uint64_t tail = (v->next_alloc + 511) & ~(uint64_t)511;
	bool cut = v->can_grow && (tail != v->footer_at || !v->footer_ok);
	uint8_t sec[512];
	int fd, err = 0;

	if (v->read_only || !v->bat || (!vhd_meta_dirty(v) && !cut))
		return;
	fd = v->grow_fd >= 0 ? v->grow_fd : open(v->path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		log_errno(LOG_LVL_ERR, errno, "vhd: %s: open to write metadata", v->path);
		return;
	}
	if (fdatasync(fd) < 0)
		err = -errno;
	for (struct vhd_bm *e = v->lru_head; e && !err; e = e->next) {
		if (!e->dirty || e->allocating)
			continue;
		err = vd_pwrite_all(fd, e->bits, v->bitmap_bytes, (uint64_t)v->bat[e->block] * 512);
		e->dirty = false;
	}
	for (uint32_t s = 0; s < v->bat_sectors && !err; s++) {
		if (!(v->bat_dirty[s / 8] & (1u << (s % 8))))
			continue;
		for (uint32_t i = 0; i < 128; i++) {
			uint32_t b = s * 128 + i;
			vhd_bat_set(sec, i, b < v->bat_entries ? v->bat[b] : VHD_BAT_UNUSED);
		}
		err = vd_pwrite_all(fd, sec, 512, v->bat_offset + (uint64_t)s * 512);
		v->bat_dirty[s / 8] &= (uint8_t)~(1u << (s % 8));
	}
	/* The footer behind the last block, durable, before the one at the
	 * end goes: a crash in between leaves two good footers. */
	if (!err && cut) {
		err = vd_pwrite_all(fd, v->footer_raw, VHD_FOOTER_SIZE, tail);
		if (!err && fdatasync(fd) < 0)
			err = -errno;
		if (!err && ftruncate(fd, (off_t)(tail + VHD_FOOTER_SIZE)) < 0)
			err = -errno;
		if (!err) {
			v->footer_at = tail;
			v->footer_ok = true;
		}
	}
	if (!err && fdatasync(fd) < 0)
		err = -errno;
	if (err)
		log_errno(LOG_LVL_ERR, err, "vhd: %s: writing metadata at close", v->path);
	if (fd != v->grow_fd)
		close(fd);
}
