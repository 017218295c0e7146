/* The raw driver's trim and write zeroes: calls that block (fallocate,
 * ioctl, pwrite) run on the queue's worker thread; the main thread learns
 * from their results which methods the image refuses. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "drivers/raw-int.h"
#include "queue/queue.h"

enum { RAW_ZERO_BUF = 1024 * 1024 };	/* zero-writing fallback chunk */

/* What a write-zeroes call on the worker may try, in this order. */
enum raw_zero_try {
	RAW_TRY_PUNCH = 1u << 0,	/* files: punch; devices: fast zeroout */
	RAW_TRY_ZERO_RANGE = 1u << 1,	/* files: FALLOC_FL_ZERO_RANGE */
	RAW_TRY_ZEROOUT = 1u << 2,	/* devices: BLKZEROOUT */
	RAW_TRY_WRITE = 1u << 3,	/* write zero buffers */
};

/* vd_io scratch for worker calls (drv_ptr is the struct raw). */
enum {
	RAW_U_TRY,	/* enum raw_zero_try */
	RAW_U_SLOW,	/* struct raw_slow * when the range is locked */
	RAW_U_LEARNT,	/* worker -> main: methods that were refused */
};

/* ---- Worker-thread helpers (blocking) -------------------------------- */

/* Zeroes part of one aligned block under O_DIRECT: read, clear, write.
 * The caller holds the range lock. */
static long raw_zero_partial(const struct raw *r, uint64_t off, uint64_t len)
{
	uint64_t blk = align_down(off, r->align);
	unsigned char *b = raw_bounce_alloc(r, r->align);
	long err;

	if (!b)
		return -ENOMEM;
	err = vd_pread_all(r->fd, b, r->align, blk);
	if (!err) {
		memset(b + (off - blk), 0, len);
		err = vd_pwrite_all(r->fd, b, r->align, blk);
	}
	free(b);
	return err;
}

/* Writes zeroes over [off, off+len): the slow way that always works. */
static long raw_zero_write(const struct raw *r, uint64_t off, uint64_t len)
{
	uint64_t end = off + len;
	size_t bl = len < RAW_ZERO_BUF ? align_up(len, r->align) : RAW_ZERO_BUF;
	unsigned char *zero;
	long err = 0;

	if (r->direct && off != align_down(off, r->align)) {
		uint64_t n = align_up(off, r->align) - off;

		n = n < len ? n : len;
		err = raw_zero_partial(r, off, n);
		off += n;
	}
	if (!err && r->direct && end != align_down(end, r->align) && end > off) {
		uint64_t n = end - align_down(end, r->align);

		n = n < end - off ? n : end - off;
		err = raw_zero_partial(r, end - n, n);
		end -= n;
	}
	if (err || off >= end)
		return err;
	zero = raw_bounce_alloc(r, bl);
	if (!zero)
		return -ENOMEM;
	memset(zero, 0, bl);
	while (!err && off < end) {
		size_t n = end - off < bl ? (size_t)(end - off) : bl;

		err = vd_pwrite_all(r->fd, zero, n, off);
		off += n;
	}
	free(zero);
	return err;
}

long raw_fallocate(const struct raw *r, int mode, uint64_t off, uint64_t len)
{
	return fallocate(r->fd, mode, (off_t)off, (off_t)len) < 0 ? -errno : 0;
}

static long raw_blk_ioctl(const struct raw *r, unsigned long req, uint64_t off,
			  uint64_t len)
{
	uint64_t range[2] = { off, len };

	return ioctl(r->fd, req, range) < 0 ? -errno : 0;
}

/* ---- Trim -------------------------------------------------------------- */

static long raw_trim_call(struct tiocb *t)
{
	struct vd_io *io = t->data;
	const struct raw *r = io->drv_ptr;
	uint64_t start, end;

	if (!r->is_dev)
		return raw_fallocate(r, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				     io->offset, io->len);
	/* Discard takes whole blocks; trimming less is allowed. */
	start = align_up(io->offset, r->align);
	end = align_down(io->offset + io->len, r->align);
	if (start >= end)
		return 0;
	return raw_blk_ioctl(r, BLKDISCARD, start, end - start);
}

/* Trim is a hint: a refusal turns it off and is not the client's error. */
static int raw_trim_result(struct raw *r, long res)
{
	if (!raw_unsupported(res))
		return res < 0 ? (int)res : 0;
	if (r->is_dev ? !r->no_discard : !r->no_punch)
		log_msg(LOG_LVL_NOTICE, "raw: %s: trim not supported here; ignoring trims",
			r->path);
	if (r->is_dev)
		r->no_discard = true;
	else
		r->no_punch = true;
	return 0;
}

static void raw_trim_done(struct tiocb *t, long res)
{
	struct vd_io *io = t->data;
	struct raw *r = io->drv_ptr;
	struct raw_slow *s = (struct raw_slow *)(uintptr_t)io->drv_u64[RAW_U_SLOW];
	int err = raw_trim_result(r, res);

	if (s)
		raw_slow_finish(s, err);
	else
		vd_io_complete(io, err);
}

/* Locked call (trim or zeroing): the range is ours, queue the call. */
static void raw_call_run(struct raw_lock *l)
{
	struct raw_slow *s = (struct raw_slow *)l;

	tq_queue(s->r->q, &s->io->tiocb);
}

/* Queues the prepared call in io->tiocb; under O_DIRECT an unaligned
 * range is locked first, as its edge blocks may be rewritten. */
static int raw_queue_call(struct raw *r, struct vd_io *io)
{
	struct raw_slow *s;

	io->drv_ptr = r;
	io->drv_u64[RAW_U_SLOW] = 0;
	io->drv_u64[RAW_U_LEARNT] = 0;
	if (!r->direct || raw_aligned(r, io->offset, io->len)) {
		tq_queue(r->q, &io->tiocb);
		return 0;
	}
	s = raw_slow_new(r, io, raw_call_run);
	if (!s)
		return -ENOMEM;
	io->drv_u64[RAW_U_SLOW] = (uintptr_t)s;
	if (raw_lock_acquire(r, &s->lock))
		raw_call_run(&s->lock);
	return 0;
}

int raw_trim(void *priv, struct vd_io *io)
{
	struct raw *r = priv;

	if (r->is_dev ? r->no_discard : r->no_punch) {
		vd_io_complete(io, 0);
		return 0;
	}
	tiocb_prep_call(&io->tiocb, raw_trim_call, raw_trim_done, io);
	return raw_queue_call(r, io);
}

/* ---- Write zeroes ------------------------------------------------------ */

/* Tries one method; on refusal records it in *learnt and returns 1. */
static long raw_zero_try(const struct raw *r, unsigned how, uint64_t off,
			 uint64_t len, uint64_t *learnt)
{
	long err;

	switch (how) {
	case RAW_TRY_PUNCH:
		err = raw_fallocate(r, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
		break;
	case RAW_TRY_ZERO_RANGE:
		err = raw_fallocate(r, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len);
		break;
	case RAW_TRY_ZEROOUT:
		err = raw_blk_ioctl(r, BLKZEROOUT, off, len);
		break;
	default:
		return raw_zero_write(r, off, len);
	}
	if (!raw_unsupported(err))
		return err;
	*learnt |= how;
	return 1;
}

/* Zeroes [off, off+len) with the first method that works. */
static long raw_zero_methods(const struct raw *r, unsigned try, uint64_t off,
			     uint64_t len, uint64_t *learnt)
{
	for (unsigned how = 1; how <= RAW_TRY_WRITE; how <<= 1) {
		long err;

		if (!(try & how))
			continue;
		err = raw_zero_try(r, how, off, len, learnt);
		if (err <= 0)
			return err;
	}
	return -ENOTSUP;
}

static long raw_zero_call(struct tiocb *t)
{
	struct vd_io *io = t->data;
	const struct raw *r = io->drv_ptr;
	unsigned try = (unsigned)io->drv_u64[RAW_U_TRY];
	uint64_t *learnt = &io->drv_u64[RAW_U_LEARNT];
	uint64_t start, end, blk = r->align < 512 ? 512 : r->align;
	long err;

	if (!r->is_dev)
		return raw_zero_methods(r, try, io->offset, io->len, learnt);
	/* Device calls take whole blocks: edges are written. */
	start = align_up(io->offset, blk);
	end = align_down(io->offset + io->len, blk);
	if (start >= end)
		return raw_zero_write(r, io->offset, io->len);
	err = raw_zero_methods(r, try, start, end - start, learnt);
	if (!err && start > io->offset)
		err = raw_zero_write(r, io->offset, start - io->offset);
	if (!err && io->offset + io->len > end)
		err = raw_zero_write(r, end, io->offset + io->len - end);
	return err;
}

static void raw_zero_done(struct tiocb *t, long res)
{
	struct vd_io *io = t->data;
	struct raw *r = io->drv_ptr;
	struct raw_slow *s = (struct raw_slow *)(uintptr_t)io->drv_u64[RAW_U_SLOW];
	uint64_t learnt = io->drv_u64[RAW_U_LEARNT];

	if ((learnt & RAW_TRY_PUNCH) && !r->no_punch)
		log_msg(LOG_LVL_INFO, "raw: %s: %s refused; not trying it again", r->path,
			r->is_dev ? "fast zeroing" : "hole punching");
	if ((learnt & RAW_TRY_ZERO_RANGE) && !r->no_zero_range)
		log_msg(LOG_LVL_INFO, "raw: %s: FALLOC_FL_ZERO_RANGE refused; "
			"not trying it again", r->path);
	r->no_punch |= (learnt & RAW_TRY_PUNCH) != 0;
	r->no_zero_range |= (learnt & RAW_TRY_ZERO_RANGE) != 0;
	if (s)
		raw_slow_finish(s, res < 0 ? (int)res : 0);
	else
		vd_io_complete(io, res < 0 ? (int)res : 0);
}

/* The methods to try for this request, best first; 0 when none fits. */
static unsigned raw_zero_plan(const struct raw *r, unsigned flags)
{
	bool fast = flags & VD_IO_FAST_ZERO, hole_ok = !(flags & VD_IO_NO_HOLE);
	unsigned try = 0;

	if (r->is_dev) {
		/* A punch on a device is a zeroout that never falls back to
		 * writing: the fast one.  NO_HOLE has no fast method. */
		if (hole_ok && !r->no_punch)
			try |= RAW_TRY_PUNCH;
		if (!fast)
			try |= RAW_TRY_ZEROOUT | RAW_TRY_WRITE;
		return try;
	}
	if (hole_ok && !r->no_punch)
		try |= RAW_TRY_PUNCH;
	if (!r->no_zero_range)
		try |= RAW_TRY_ZERO_RANGE;
	if (!fast)
		try |= RAW_TRY_WRITE;
	return try;
}

int raw_write_zeroes(void *priv, struct vd_io *io)
{
	struct raw *r = priv;
	unsigned try = raw_zero_plan(r, io->flags);

	if (!try)
		return -ENOTSUP;
	io->drv_u64[RAW_U_TRY] = try;
	tiocb_prep_call(&io->tiocb, raw_zero_call, raw_zero_done, io);
	return raw_queue_call(r, io);
}
