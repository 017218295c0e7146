/* The vhd driver's internals, shared by drivers/vhd.c (open, close, the
 * chain), drivers/vhd-meta.c (BAT, bitmap cache, allocation, metadata
 * sync) and drivers/vhd-io.c (the data path).  The on-disk format is in
 * drivers/vhd-format.h; nothing here does file I/O on the main thread
 * after open: every read and write is a vd_io sent to `file`, a raw
 * image of the same path (so raw's O_DIRECT alignment handling, bounce
 * reads and read-modify-write apply), or to `parent`.
 *
 * Metadata ordering (docs/architecture.md, "The VHD driver"): data is
 * written in place and acknowledged; the bitmap bits and BAT entries that
 * make it visible are kept dirty in memory and written by a *sync round*
 * (a FLUSH, a FUA write, or a full cache): fdatasync, then the dirty
 * bitmaps, BAT sectors and the footer, then fdatasync. */
#ifndef VHD_DRV_INT_H
#define VHD_DRV_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers/driver.h"
#include "drivers/vhd-probe.h"
#include "queue/tiocb.h"

#define VHD_MAX_CHAIN 32		/* images in a chain, leaf included */
#define VHD_CACHE_BYTES (4u << 20)	/* bitmap cache bound (soft, see vhd-meta.c) */
#define VHD_CACHE_MIN 64		/* entries, whatever the bitmap size */
#define VHD_DATA_ALIGN 4096u		/* new blocks' data starts aligned */

struct vhd;
struct vhd_req;

/* Something waiting for a bitmap entry (load, allocation commit) or a
 * sync round. */
struct vhd_wait {
	struct vhd_wait *next;
	void (*resume)(struct vhd_wait *w, int err);
};

/* A range of the disk (bytes, whole sectors) held by a request that
 * changes data (drivers/vhd-lock.c).  Writes hold theirs shared; a
 * read-modify-write of partial sectors and a TRIM hold theirs exclusive.
 * Requests are granted in arrival order: one waits while an earlier
 * request (held or waiting) overlaps it and either of them is exclusive. */
struct vhd_lock {
	uint64_t start, end;
	bool excl, granted;
	struct vhd_lock *prev, *next;	/* v->locks, arrival order */
	struct vhd_lock *run_next;	/* granted in one release */
	void (*run)(struct vhd_lock *l);	/* granted after waiting */
};

/* One cached sector bitmap. */
struct vhd_bm {
	uint32_t block;
	uint8_t *bits;			/* bitmap_bytes, 4096-aligned */
	unsigned pins;			/* users that need it to stay */
	bool loaded;			/* bits valid */
	bool dirty;			/* bits set that are not on disk */
	bool allocating;		/* the block's allocation is in flight */
	bool alloc_zeroed;		/* its bitmap's place reads zeroes already */
	uint32_t alloc_sector;		/* where, while allocating */
	bool dead;			/* its block was deallocated (TRIM): out of
					 * the cache, freed when unpinned */
	int err;			/* the load failed */
	struct vhd_wait *waiters;	/* for the load or the commit */
	struct vhd_bm *hnext;
	struct vhd_bm *prev, *next;	/* LRU, most recent first */
	struct vd_io io;		/* the load */
	struct vhd *v;
};

struct vhd_round;

struct vhd {
	char *path;
	enum vhd_type type;
	bool read_only;
	struct vd_image *file;		/* raw, on the same path */
	struct vd_image *parent;	/* differencing: read-only backing image */
	uint64_t parent_size;
	uint64_t size;			/* what the guest sees */
	struct vhd_image_meta meta;
	uint8_t footer_raw[VHD_FOOTER_SIZE];

	/* Dynamic and differencing: */
	uint32_t block_size, bitmap_bytes, spb;	/* spb: sectors per block */
	unsigned block_shift;
	uint32_t *bat;			/* host order; committed allocations only */
	uint32_t bat_entries;
	uint64_t bat_offset;
	uint8_t *bat_dirty;		/* one bit per BAT sector */
	uint32_t bat_sectors;
	uint64_t next_alloc;		/* first free byte past every block */

	/* The file's end (vhd-meta.c, "growing the file"): the footer is
	 * always the last 512 bytes; blocks are placed below it, in space a
	 * grow added ahead of them (a worker call that writes the footer
	 * further on and syncs it before any block may use the space). */
	uint64_t footer_at;		/* where the end footer is; blocks end <= */
	bool footer_ok;			/* a valid footer is there */
	uint64_t zero_from;		/* past this (below footer_at) reads zeroes */
	bool can_grow;			/* a regular file, opened read-write */
	int grow_fd;			/* buffered, for the grow and close; or -1 */
	struct tqueue *q;
	bool growing;
	uint64_t grow_to;		/* the new footer_at, while growing */
	struct tiocb grow_t;
	struct vhd_wait *grow_waiters;

	/* Bitmap cache. */
	struct vhd_bm **hash;
	uint32_t hash_mask;
	unsigned nr_bm, max_bm;
	struct vhd_bm *lru_head, *lru_tail;
	unsigned allocs_inflight;

	/* Sync rounds: one at a time; waiters for the next. */
	struct vhd_round *round;
	struct vhd_wait *sync_next, **sync_next_tail;

	uint8_t *zeroes;		/* VHD_ZERO_CHUNK of zeroes, for WRITE_ZEROES */

	/* Requests and their extra pieces kept for reuse (vhd-io.c). */
	struct vhd_req *req_cache;
	unsigned req_cached;
	struct vhd_piece *piece_cache;
	unsigned piece_cached;

	/* Locked ranges (vhd-lock.c). */
	struct vhd_lock *locks, *locks_tail;
	unsigned locks_excl;		/* exclusive ones, held or waiting */
	unsigned locks_waiting;
};

#define VHD_ZERO_CHUNK (1u << 20)

static inline uint64_t vhd_block_file_off(const struct vhd *v, uint32_t sector)
{
	return (uint64_t)sector * 512 + v->bitmap_bytes;
}

/* Sends io to img, completing it with the result when the op did not
 * start (rule 1 of drivers/driver.h). */
void vhd_submit(struct vd_image *img, struct vd_io *io);

/* vhd-lock.c.  Acquire returns true when l is granted now; else l->run
 * runs once it is.  Release may run other requests' run(). */
bool vhd_lock_acquire(struct vhd *v, struct vhd_lock *l);
void vhd_lock_release(struct vhd *v, struct vhd_lock *l);

/* vhd-meta.c */
int vhd_meta_init(struct vhd *v);
void vhd_meta_free(struct vhd *v);
/* The cached bitmap of an allocated block; NULL with *w queued when it
 * is being loaded (w->resume runs once it is, with the load's result). */
struct vhd_bm *vhd_bm_get(struct vhd *v, uint32_t block, struct vhd_wait *w, int *err);
struct vhd_bm *vhd_bm_lookup(struct vhd *v, uint32_t block);
/* Queues w until e's load or allocation ends. */
void vhd_bm_wait(struct vhd_bm *e, struct vhd_wait *w);
void vhd_bm_pin(struct vhd_bm *e);
void vhd_bm_unpin(struct vhd *v, struct vhd_bm *e);
/* Starts allocating block: an entry with zero bits, pinned, allocating,
 * at a sector past every other block.  -ENOSPC when the file would pass
 * what a 32-bit sector number reaches (or a block device has no room);
 * 1 with w queued for a sync round when the cache is full of dirty
 * bitmaps, or for a grow of the file. */
int vhd_alloc_begin(struct vhd *v, uint32_t block, struct vhd_wait *w, struct vhd_bm **out);
/* After an allocation: when the room left before the end footer runs
 * low, starts a grow and queues w for its end (true).  The caller's
 * request holds on until then, so nothing of v is in flight unseen. */
bool vhd_grow_ahead(struct vhd *v, struct vhd_wait *w);
/* The allocation's writes are done: the BAT entry takes it (dirty). */
void vhd_alloc_commit(struct vhd *v, struct vhd_bm *e, int err);
/* Marks sectors [first, first+count) of e present; true when that changed
 * anything (the bitmap is then dirty). */
bool vhd_bm_set(struct vhd_bm *e, uint32_t first, uint32_t count);
/* Marks them absent (TRIM); true when that changed anything. */
bool vhd_bm_clear(struct vhd_bm *e, uint32_t first, uint32_t count);
/* TRIM of a whole block of a parentless image: the BAT entry in memory
 * becomes unused (dirty) and the cached bitmap is dropped.  Returns the
 * block's old first sector (its space is never reused). */
uint32_t vhd_dealloc(struct vhd *v, uint32_t block);
/* Queues w for the next sync round (starting one when none runs). */
void vhd_sync(struct vhd *v, struct vhd_wait *w);
bool vhd_meta_dirty(const struct vhd *v);
/* The BAT sector holding block's entry is not on disk yet. */
bool vhd_bat_sector_dirty(const struct vhd *v, uint32_t block);
/* Close time: writes what is dirty with blocking calls. */
void vhd_meta_sync_blocking(struct vhd *v);

/* vhd-io.c */
void vhd_io_cache_free(struct vhd *v);
int vhd_read(void *priv, struct vd_io *io);
int vhd_write(void *priv, struct vd_io *io);
int vhd_flush(void *priv, struct vd_io *io);
int vhd_trim(void *priv, struct vd_io *io);
int vhd_write_zeroes(void *priv, struct vd_io *io);
int vhd_block_status(void *priv, struct vd_io *io);

#endif
