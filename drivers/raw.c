/* The raw driver: a regular file or a block device, byte for byte.
 *
 * Reads, writes and flushes go to the queue as one tiocb each.  Under
 * O_DIRECT, requests that are not aligned to the device's DIO alignment
 * take a slow path: reads through a bounce buffer, writes by
 * read-modify-write of the covering blocks, serialized against each other
 * by a small list of locked ranges.  Calls that block (fallocate, ioctl,
 * lseek) run on the queue's worker thread as TIOCB_CALLs; the worker only
 * reads the driver's fields that never change after open, and the main
 * thread learns from the results. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "daemon/log.h"
#include "drivers/driver.h"
#include "queue/queue.h"

enum { RAW_ZERO_BUF = 1024 * 1024 };	/* zero-writing fallback chunk */

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
	uint32_t align;		/* offsets and lengths served without RMW */
	uint32_t mem_align;	/* bounce buffers */
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

static uint64_t align_down(uint64_t v, uint32_t a) { return v & ~(uint64_t)(a - 1); }
static uint64_t align_up(uint64_t v, uint32_t a) { return align_down(v + a - 1, a); }

static bool raw_aligned(const struct raw *r, uint64_t off, uint64_t len)
{
	return ((off | len) & (r->align - 1)) == 0;
}

static bool raw_unsupported(long err)
{
	return err == -EOPNOTSUPP || err == -ENOSYS || err == -ENOTTY;
}

static void *raw_bounce_alloc(const struct raw *r, size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, r->mem_align, len))
		return NULL;
	return p;
}

/* ---- Locked ranges ---------------------------------------------------- */

static bool raw_overlaps(const struct raw_lock *a, const struct raw_lock *b)
{
	return a->start < b->end && b->start < a->end;
}

/* True when l overlaps a range in list, up to (not including) stop. */
static bool raw_lock_conflict(const struct raw_lock *list, const struct raw_lock *stop,
			      const struct raw_lock *l)
{
	for (; list && list != stop; list = list->next) {
		if (raw_overlaps(list, l))
			return true;
	}
	return false;
}

/* Takes the range, or queues it behind the holders and earlier waiters
 * (first come, first served).  True when l may run now. */
static bool raw_lock_acquire(struct raw *r, struct raw_lock *l)
{
	if (!raw_lock_conflict(r->held, NULL, l) &&
	    !raw_lock_conflict(r->waiting, NULL, l)) {
		l->next = r->held;
		r->held = l;
		return true;
	}
	l->next = NULL;
	*r->waiting_tail = l;
	r->waiting_tail = &l->next;
	return false;
}

/* Drops l and starts the waiters it was holding up.  Runs inside a
 * completion callback, so what they queue is kicked here. */
static void raw_lock_release(struct raw *r, struct raw_lock *l)
{
	struct raw_lock **pp, *granted = NULL, **gt = &granted;

	for (pp = &r->held; *pp != l; pp = &(*pp)->next)
		;
	*pp = l->next;

	pp = &r->waiting;
	while (*pp) {
		struct raw_lock *w = *pp;

		if (raw_lock_conflict(r->held, NULL, w) ||
		    raw_lock_conflict(r->waiting, w, w)) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		if (r->waiting_tail == &w->next)
			r->waiting_tail = pp;
		w->next = r->held;
		r->held = w;
		w->run_next = NULL;
		*gt = w;
		gt = &w->run_next;
	}
	if (!granted)
		return;
	for (struct raw_lock *w = granted, *next; w; w = next) {
		next = w->run_next;
		w->run(w);
	}
	tq_kick(r->q);
}

static struct raw_slow *raw_slow_new(struct raw *r, struct vd_io *io,
				     void (*run)(struct raw_lock *l))
{
	struct raw_slow *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->r = r;
	s->io = io;
	s->lock.start = align_down(io->offset, r->align);
	s->lock.end = align_up(io->offset + io->len, r->align);
	s->lock.run = run;
	return s;
}

/* Releases the range, frees the request's state and completes it. */
static void raw_slow_finish(struct raw_slow *s, int err)
{
	struct vd_io *io = s->io;

	raw_lock_release(s->r, &s->lock);
	free(s->bounce);
	free(s);
	vd_io_complete(io, err);
}

/* ---- Reads, writes, flush ---------------------------------------------- */

static void raw_io_done(struct tiocb *t, long res)
{
	vd_io_complete(t->data, res < 0 ? (int)res : 0);
}

/* Unaligned read under O_DIRECT: the covering blocks into a bounce
 * buffer (t->offset is where it starts), then the wanted bytes out. */
static void raw_bounce_read_done(struct tiocb *t, long res)
{
	struct vd_io *io = t->data;
	unsigned char *bounce = io->drv_ptr;

	if (res >= 0)
		memcpy(io->buf, bounce + (io->offset - t->offset), io->len);
	free(bounce);
	vd_io_complete(io, res < 0 ? (int)res : 0);
}

static int raw_read_unaligned(struct raw *r, struct vd_io *io)
{
	uint64_t start = align_down(io->offset, r->align);
	uint64_t end = align_up(io->offset + io->len, r->align);
	void *bounce = raw_bounce_alloc(r, end - start);

	if (!bounce)
		return -ENOMEM;
	io->drv_ptr = bounce;
	tiocb_prep_read(&io->tiocb, r->fd, bounce, end - start, start,
			raw_bounce_read_done, io);
	tq_queue(r->q, &io->tiocb);
	return 0;
}

static int raw_read(void *priv, struct vd_io *io)
{
	struct raw *r = priv;

	if (r->direct && !raw_aligned(r, io->offset, io->len))
		return raw_read_unaligned(r, io);
	tiocb_prep_read(&io->tiocb, r->fd, io->buf, io->len, io->offset,
			raw_io_done, io);
	tq_queue(r->q, &io->tiocb);
	return 0;
}

static void raw_rmw_write_done(struct tiocb *t, long res)
{
	raw_slow_finish(t->data, res < 0 ? (int)res : 0);
}

/* Both edge blocks are in: lay the new bytes over them, write it all. */
static void raw_rmw_read_done(struct tiocb *t, long res)
{
	struct raw_slow *s = t->data;
	struct vd_io *io = s->io;
	struct raw *r = s->r;

	if (res < 0 && !s->err)
		s->err = (int)res;
	if (--s->reads)
		return;
	if (s->err) {
		raw_slow_finish(s, s->err);
		return;
	}
	memcpy(s->bounce + (io->offset - s->lock.start), io->buf, io->len);
	tiocb_prep_write(&io->tiocb, r->fd, s->bounce, s->lock.end - s->lock.start,
			 s->lock.start, raw_rmw_write_done, s);
	if (io->flags & VD_IO_FUA)
		io->tiocb.flags |= TIOCB_FUA;
	tq_submit(r->q, &io->tiocb);
}

/* The range is ours: read the partial head and tail blocks. */
static void raw_rmw_run(struct raw_lock *l)
{
	struct raw_slow *s = (struct raw_slow *)l;
	struct vd_io *io = s->io;
	struct raw *r = s->r;
	uint64_t tail = l->end - r->align;
	bool head_rd = io->offset != l->start;
	bool tail_rd = io->offset + io->len != l->end && !(head_rd && tail == l->start);

	s->reads = head_rd + tail_rd;
	if (head_rd) {
		tiocb_prep_read(&io->tiocb, r->fd, s->bounce, r->align, l->start,
				raw_rmw_read_done, s);
		tq_queue(r->q, &io->tiocb);
	}
	if (tail_rd) {
		tiocb_prep_read(&s->tail, r->fd, s->bounce + (tail - l->start),
				r->align, tail, raw_rmw_read_done, s);
		tq_queue(r->q, &s->tail);
	}
}

static int raw_write_rmw(struct raw *r, struct vd_io *io)
{
	struct raw_slow *s = raw_slow_new(r, io, raw_rmw_run);

	if (!s)
		return -ENOMEM;
	s->bounce = raw_bounce_alloc(r, s->lock.end - s->lock.start);
	if (!s->bounce) {
		free(s);
		return -ENOMEM;
	}
	if (raw_lock_acquire(r, &s->lock))
		raw_rmw_run(&s->lock);
	return 0;
}

static int raw_write(void *priv, struct vd_io *io)
{
	struct raw *r = priv;

	if (r->direct && !raw_aligned(r, io->offset, io->len))
		return raw_write_rmw(r, io);
	tiocb_prep_write(&io->tiocb, r->fd, io->buf, io->len, io->offset,
			 raw_io_done, io);
	if (io->flags & VD_IO_FUA)
		io->tiocb.flags |= TIOCB_FUA;
	tq_queue(r->q, &io->tiocb);
	return 0;
}

static int raw_flush(void *priv, struct vd_io *io)
{
	struct raw *r = priv;

	tiocb_prep_flush(&io->tiocb, r->fd, raw_io_done, io);
	tq_queue(r->q, &io->tiocb);
	return 0;
}

/* ---- Worker-thread helpers (blocking) -------------------------------- */

static long raw_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf = (const unsigned char *)buf + n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static long raw_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;	/* the image shrank under us */
		buf = (unsigned char *)buf + n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Zeroes part of one aligned block under O_DIRECT: read, clear, write.
 * The caller holds the range lock. */
static long raw_zero_partial(const struct raw *r, uint64_t off, uint64_t len)
{
	uint64_t blk = align_down(off, r->align);
	unsigned char *b = raw_bounce_alloc(r, r->align);
	long err;

	if (!b)
		return -ENOMEM;
	err = raw_pread_all(r->fd, b, r->align, blk);
	if (!err) {
		memset(b + (off - blk), 0, len);
		err = raw_pwrite_all(r->fd, b, r->align, blk);
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

		err = raw_pwrite_all(r->fd, zero, n, off);
		off += n;
	}
	free(zero);
	return err;
}

static long raw_fallocate(const struct raw *r, int mode, uint64_t off, uint64_t len)
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

static int raw_trim(void *priv, struct vd_io *io)
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

static int raw_write_zeroes(void *priv, struct vd_io *io)
{
	struct raw *r = priv;
	unsigned try = raw_zero_plan(r, io->flags);

	if (!try)
		return -ENOTSUP;
	io->drv_u64[RAW_U_TRY] = try;
	tiocb_prep_call(&io->tiocb, raw_zero_call, raw_zero_done, io);
	return raw_queue_call(r, io);
}

/* ---- Block status ------------------------------------------------------ */

/* Appends n bytes of one kind, merging with the last extent; false when
 * the list is full or the length would overflow (a prefix is enough). */
static bool raw_extent_add(struct vd_io *io, unsigned max, uint32_t flags, uint64_t n)
{
	struct vd_extent *e = io->nr_extents ? &io->extents[io->nr_extents - 1] : NULL;

	if (e && e->flags == flags) {
		if (e->length + n > UINT32_MAX)
			return false;
		e->length += (uint32_t)n;
		return true;
	}
	if (io->nr_extents >= max || n > UINT32_MAX)
		return false;
	io->extents[io->nr_extents++] = (struct vd_extent){
		.length = (uint32_t)n, .flags = flags,
	};
	return true;
}

/* Next data at or after pos, or end when there is none before end. */
static long raw_seek(int fd, uint64_t pos, int whence, uint64_t end, uint64_t *out)
{
	off_t o = lseek(fd, (off_t)pos, whence);

	if (o < 0 && errno != ENXIO)
		return -errno;
	*out = o < 0 || (uint64_t)o > end ? end : (uint64_t)o;
	return 0;
}

static long raw_status_call(struct tiocb *t)
{
	struct vd_io *io = t->data;
	const struct raw *r = io->drv_ptr;
	const uint32_t hole = VD_EXTENT_HOLE | VD_EXTENT_ZERO;
	unsigned max = io->flags & VD_IO_REQ_ONE ? 1 : io->max_extents;
	uint64_t pos = io->offset, end = io->offset + io->len, next = 0;
	long err;

	io->nr_extents = 0;
	while (pos < end) {
		err = raw_seek(r->fd, pos, SEEK_DATA, end, &next);
		if (err == -EINVAL)	/* no SEEK_DATA here: all data */
			next = pos;
		else if (err)
			return err;
		if (next > pos && !raw_extent_add(io, max, hole, next - pos))
			break;
		pos = next;
		if (pos >= end)
			break;
		err = raw_seek(r->fd, pos, SEEK_HOLE, end, &next);
		if (err == -EINVAL)
			next = end;
		else if (err)
			return err;
		if (next == pos)	/* raced with a write: call it data */
			next = align_up(pos + 1, r->align) < end ?
			       align_up(pos + 1, r->align) : end;
		if (!raw_extent_add(io, max, 0, next - pos))
			break;
		pos = next;
	}
	return io->nr_extents ? 0 : -EIO;
}

static int raw_block_status(void *priv, struct vd_io *io)
{
	struct raw *r = priv;

	if (r->is_dev) {
		/* A device does not say where its holes are: all data. */
		io->nr_extents = 1;
		io->extents[0] = (struct vd_extent){
			.length = (uint32_t)(io->len < UINT32_MAX ? io->len :
					     align_down(UINT32_MAX, r->align)),
		};
		vd_io_complete(io, 0);
		return 0;
	}
	io->drv_ptr = r;
	tiocb_prep_call(&io->tiocb, raw_status_call, raw_io_done, io);
	tq_queue(r->q, &io->tiocb);
	return 0;
}

/* ---- Open and close ---------------------------------------------------- */

/* Reads /sys/dev/block/M:m/queue/NAME (or the parent disk's, for a
 * partition) as a number; -1 when there is none. */
static long long raw_sysfs_queue(dev_t dev, const char *name)
{
	long long v = -1;

	for (int up = 0; up < 2 && v < 0; up++) {
		char path[128];
		FILE *f;

		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%squeue/%s",
			 major(dev), minor(dev), up ? "../" : "", name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fscanf(f, "%lld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* Leaves O_DIRECT for buffered I/O on an open fd. */
static int raw_drop_direct(struct raw *r, const char *why)
{
	int fl = fcntl(r->fd, F_GETFL);

	log_msg(LOG_LVL_WARN, "raw: %s: %s; falling back to buffered I/O "
		"(--cache writeback)", r->path, why);
	if (fl < 0 || fcntl(r->fd, F_SETFL, fl & ~O_DIRECT) < 0) {
		log_errno(LOG_LVL_ERR, errno, "raw: %s: clearing O_DIRECT", r->path);
		return -errno;
	}
	r->direct = false;
	if (!r->is_dev)
		r->align = 512;
	return 0;
}

/* Block sizes of a device: what the kernel says. */
static int raw_dev_geometry(struct raw *r, struct vd_info *info)
{
	int lbs = 0;
	unsigned pbs = 0;

	if (ioctl(r->fd, BLKGETSIZE64, &r->size) < 0) {
		log_errno(LOG_LVL_ERR, errno, "raw: %s: BLKGETSIZE64", r->path);
		return -errno;
	}
	if (ioctl(r->fd, BLKSSZGET, &lbs) < 0 || !is_pow2((unsigned)lbs))
		lbs = 512;
	if (ioctl(r->fd, BLKPBSZGET, &pbs) < 0 || !is_pow2(pbs))
		pbs = 4096;
	info->logical_block = (uint32_t)lbs;
	info->physical_block = pbs;
	r->align = (uint32_t)lbs;
	r->mem_align = (uint32_t)lbs;
	return 0;
}

/* Block sizes of a file: the filesystem's DIO alignment when it tells. */
static int raw_file_geometry(struct raw *r, const struct stat *st, struct vd_info *info)
{
	struct statx stx;

	r->size = (uint64_t)st->st_size;
	r->align = 512;
	r->mem_align = 512;
	info->physical_block = is_pow2((uint64_t)st->st_blksize) &&
			       st->st_blksize > 4096 ? (uint32_t)st->st_blksize : 4096;
	info->logical_block = 512;
	/* No DIOALIGN answer (tmpfs, older kernels): 512 is the classic rule. */
	if (!r->direct || statx(r->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) < 0 ||
	    !(stx.stx_mask & STATX_DIOALIGN))
		return 0;
	if (stx.stx_dio_offset_align == 0)
		return raw_drop_direct(r, "the filesystem does not do O_DIRECT on it");
	if (is_pow2(stx.stx_dio_offset_align)) {
		r->align = stx.stx_dio_offset_align;
		info->logical_block = r->align;
	}
	if (is_pow2(stx.stx_dio_mem_align))
		r->mem_align = stx.stx_dio_mem_align;
	return 0;
}

/* Some filesystems accept O_DIRECT at open and refuse the I/O: read the
 * first block once to find out. */
static int raw_probe_direct(struct raw *r, struct vd_info *info)
{
	void *b;
	ssize_t n;
	int err = 0;

	if (r->size % r->align) {
		/* The last block could not be read or written whole. */
		err = raw_drop_direct(r, "size is not a multiple of the O_DIRECT alignment");
		goto out;
	}
	b = raw_bounce_alloc(r, r->align);
	if (!b)
		return -ENOMEM;
	n = pread(r->fd, b, r->align, 0);
	if (n < 0 && errno == EINVAL)
		err = raw_drop_direct(r, "O_DIRECT refused by the filesystem");
	else if (n < 0)
		log_errno(LOG_LVL_WARN, errno, "raw: %s: probe read", r->path);
	free(b);
out:
	if (!r->direct && !r->is_dev)
		info->logical_block = 512;
	return err;
}

static int raw_open_fd(struct raw *r, const struct vd_open_opts *opts, bool *refused)
{
	/* O_NONBLOCK: a FIFO must be refused, not waited on for a writer.
	 * It is cleared once the image is known to be a file or device. */
	int flags = (opts->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK |
		    O_NOCTTY;

	r->direct = opts->cache == VD_CACHE_NONE;
	r->fd = open(r->path, flags | (r->direct ? O_DIRECT : 0));
	if (r->fd < 0 && errno == EINVAL && r->direct) {
		/* Said once the image turns out to be one (not a directory). */
		*refused = true;
		r->direct = false;
		r->fd = open(r->path, flags);
	}
	if (r->fd < 0) {
		int err = -errno;

		log_errno(LOG_LVL_ERR, err, "raw: open %s", r->path);
		return err;
	}
	return 0;
}

/* What the image can do besides reading and writing. */
static void raw_caps(struct raw *r, const struct stat *st,
		     const struct vd_open_opts *opts, struct vd_info *info)
{
	dev_t dev = r->is_dev ? st->st_rdev : st->st_dev;
	long long rot = raw_sysfs_queue(dev, "rotational");

	info->is_rotational = rot > 0;
	if (r->is_dev) {
		r->no_discard = raw_sysfs_queue(dev, "discard_max_bytes") == 0;
		r->no_punch = raw_sysfs_queue(dev, "write_zeroes_max_bytes") == 0;
		info->can_zero = true;
	} else {
		/* A punch past the end changes nothing: a free probe. */
		long err = raw_fallocate(r, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					 align_up(r->size, 4096), 4096);
		r->no_punch = err < 0;
		if (err < 0 && !raw_unsupported(err) && !opts->read_only)
			log_errno(LOG_LVL_DEBUG, (int)err, "raw: %s: punch probe", r->path);
		info->can_zero = !r->no_punch;
	}
	info->can_trim = r->is_dev ? !r->no_discard : !r->no_punch;
	info->can_fast_zero = !r->no_punch;
	if (opts->read_only)
		info->can_trim = info->can_zero = info->can_fast_zero = false;
	info->can_flush = true;
	info->can_fua = true;
	info->can_block_status = !r->is_dev;
}

static int raw_open(const char *image, const struct vd_open_opts *opts,
		    struct tqueue *q, struct vd_info *info, void **priv)
{
	struct tq_fd_caps caps;
	struct stat st;
	struct raw *r = calloc(1, sizeof(*r));
	bool direct_refused = false;
	int err, fl;

	if (!r)
		return -ENOMEM;
	r->fd = -1;
	r->q = q;
	r->waiting_tail = &r->waiting;
	r->path = strdup(image);
	if (!r->path) {
		err = -ENOMEM;
		goto err;
	}
	err = raw_open_fd(r, opts, &direct_refused);
	if (err)
		goto err;
	if (fstat(r->fd, &st) < 0) {
		err = -errno;
		log_errno(LOG_LVL_ERR, err, "raw: stat %s", image);
		goto err;
	}
	if (S_ISDIR(st.st_mode)) {
		log_msg(LOG_LVL_ERR, "raw: %s is a directory", image);
		err = -EISDIR;
		goto err;
	}
	r->is_dev = S_ISBLK(st.st_mode);
	if (!r->is_dev && !S_ISREG(st.st_mode)) {
		log_msg(LOG_LVL_ERR, "raw: %s is not a regular file or a block device",
			image);
		err = -EINVAL;
		goto err;
	}
	fl = fcntl(r->fd, F_GETFL);
	if (fl < 0 || fcntl(r->fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		err = -errno;
		log_errno(LOG_LVL_ERR, err, "raw: %s: fcntl", image);
		goto err;
	}
	if (r->is_dev)
		err = raw_dev_geometry(r, info);
	else
		err = raw_file_geometry(r, &st, info);
	if (err)
		goto err;
	if (direct_refused)
		log_msg(LOG_LVL_WARN, "raw: %s: O_DIRECT refused by the filesystem; "
			"falling back to buffered I/O (--cache writeback)", image);
	if (r->size == 0) {
		log_msg(LOG_LVL_ERR, "raw: %s is empty (size 0); give it a size first, "
			"e.g. truncate -s 1G %s", image, image);
		err = -EINVAL;
		goto err;
	}
	if (r->direct) {
		err = raw_probe_direct(r, info);
		if (err)
			goto err;
	}
	raw_caps(r, &st, opts, info);
	if (info->physical_block < info->logical_block)
		info->physical_block = info->logical_block;
	info->size = r->size;
	info->read_only = opts->read_only;
	info->direct = r->direct;
	if (r->mem_align < 4096)
		r->mem_align = 4096;	/* bounce buffers: page-aligned anyway */
	tq_probe_fd(q, r->fd, &caps);
	*priv = r;
	return 0;
err:
	if (r->fd >= 0)
		close(r->fd);
	free(r->path);
	free(r);
	return err;
}

static void raw_close(void *priv)
{
	struct raw *r = priv;

	if (r->held || r->waiting)
		log_msg(LOG_LVL_ERR, "raw: %s: closed with requests in flight", r->path);
	if (close(r->fd) < 0)
		log_errno(LOG_LVL_WARN, errno, "raw: close %s", r->path);
	free(r->path);
	free(r);
}

const struct vd_driver vd_raw_driver = {
	.name = "raw",
	.open = raw_open,
	.close = raw_close,
	.read = raw_read,
	.write = raw_write,
	.flush = raw_flush,
	.trim = raw_trim,
	.write_zeroes = raw_write_zeroes,
	.block_status = raw_block_status,
};
