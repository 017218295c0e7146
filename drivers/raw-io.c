/* The raw driver's reads, writes and flushes: one tiocb each, or under
 * O_DIRECT and unaligned, a bounce-buffer read or a read-modify-write of
 * the covering blocks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/raw-int.h"
#include "queue/queue.h"

void raw_io_done(struct tiocb *t, long res)
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

int raw_read(void *priv, struct vd_io *io)
{
	struct raw *r = priv;

	if (r->direct && !raw_direct_ok(r, io))
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

	if (!vd_piece_done(&s->err, &s->reads, res < 0 ? (int)res : 0))
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
	if (!s->reads) {
		/* Aligned, but the caller's buffer is not: straight to the
		 * write from the bounce buffer. */
		s->reads = 1;
		io->tiocb.data = s;
		raw_rmw_read_done(&io->tiocb, 0);
		return;
	}
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

int raw_write(void *priv, struct vd_io *io)
{
	struct raw *r = priv;

	if (r->direct && !raw_direct_ok(r, io))
		return raw_write_rmw(r, io);
	tiocb_prep_write(&io->tiocb, r->fd, io->buf, io->len, io->offset,
			 raw_io_done, io);
	if (io->flags & VD_IO_FUA)
		io->tiocb.flags |= TIOCB_FUA;
	tq_queue(r->q, &io->tiocb);
	return 0;
}

int raw_flush(void *priv, struct vd_io *io)
{
	struct raw *r = priv;

	tiocb_prep_flush(&io->tiocb, r->fd, raw_io_done, io);
	tq_queue(r->q, &io->tiocb);
	return 0;
}
