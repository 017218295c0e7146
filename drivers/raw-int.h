/* Raw driver internals shared by drivers/raw*.c; the rest of vdiskd sees
 * only vd_raw_driver (drivers/driver.h).
 *
 *   raw.c         open, close, geometry and probing; the ops table
 *   raw-io.c      read, write, flush; O_DIRECT bounce reads and RMW writes
 *   raw-lock.c    locked ranges for the slow-path requests
 *   raw-zero.c    trim, write zeroes and their blocking worker calls
 *   raw-status.c  block status via SEEK_DATA/SEEK_HOLE */
#ifndef VD_RAW_INT_H
#define VD_RAW_INT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "drivers/driver.h"

/* A range of the image locked for a slow-path request: RMW writes and
 * unaligned zeroing under O_DIRECT.  run() starts the request once no
 * earlier overlapping range is held or waiting. */
struct raw_lock {
	uint64_t start, end;
	struct raw_lock *next;		/* held or waiting list */
	struct raw_lock *run_next;	/* granted in one release */
	void (*run)(struct raw_lock *l);
};

struct raw {
	/* Fixed at open: the worker thread may read these. */
	int fd;
	char *path;
	bool is_dev;
	bool direct;
	bool writable;		/* opened read-write: the writer's file locks */
	uint32_t align;		/* offsets and lengths served without RMW */
	uint32_t mem_align;	/* bounce buffers */
	uint32_t buf_align;	/* callers' buffers served without a bounce */
	uint64_t size;
	struct tqueue *q;

	/* Main thread only. */
	bool no_punch;		/* files: PUNCH_HOLE refused; devices: no fast zeroing */
	bool no_zero_range;	/* ZERO_RANGE refused */
	bool no_discard;	/* devices: BLKDISCARD refused */
	struct raw_lock *held;
	struct raw_lock *waiting, **waiting_tail;
};

/* A slow-path request: RMW write, or unaligned zeroing/trim. */
struct raw_slow {
	struct raw_lock lock;		/* first: the lock's run() finds us */
	struct raw *r;
	struct vd_io *io;
	unsigned char *bounce;
	struct tiocb tail;		/* RMW: the second read */
	unsigned reads;
	int err;
};

static inline uint64_t align_down(uint64_t v, uint32_t a) { return v & ~(uint64_t)(a - 1); }
static inline uint64_t align_up(uint64_t v, uint32_t a) { return align_down(v + a - 1, a); }

static inline bool raw_aligned(const struct raw *r, uint64_t off, uint64_t len)
{
	return ((off | len) & (r->align - 1)) == 0;
}

/* Under O_DIRECT: offset, length and buffer all fit what the kernel takes
 * (a backing image's user, such as vhd, may pass 512-aligned buffers). */
static inline bool raw_direct_ok(const struct raw *r, const struct vd_io *io)
{
	return raw_aligned(r, io->offset, io->len) &&
	       ((uintptr_t)io->buf & (r->buf_align - 1)) == 0;
}

static inline bool raw_unsupported(long err)
{
	return err == -EOPNOTSUPP || err == -ENOSYS || err == -ENOTTY;
}

static inline void *raw_bounce_alloc(const struct raw *r, size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, r->mem_align, len))
		return NULL;
	return p;
}

/* raw-lock.c */
bool raw_lock_acquire(struct raw *r, struct raw_lock *l);
struct raw_slow *raw_slow_new(struct raw *r, struct vd_io *io,
			      void (*run)(struct raw_lock *l));
void raw_slow_finish(struct raw_slow *s, int err);

/* raw-io.c */
void raw_io_done(struct tiocb *t, long res);
int raw_read(void *priv, struct vd_io *io);
int raw_write(void *priv, struct vd_io *io);
int raw_flush(void *priv, struct vd_io *io);

/* raw-zero.c */
long raw_fallocate(const struct raw *r, int mode, uint64_t off, uint64_t len);
int raw_trim(void *priv, struct vd_io *io);
int raw_write_zeroes(void *priv, struct vd_io *io);

/* raw-status.c */
int raw_block_status(void *priv, struct vd_io *io);

#endif
