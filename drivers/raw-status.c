/* The raw driver's block status: holes and data of a file, found with
 * SEEK_DATA/SEEK_HOLE on the worker thread; a device is all data. */
#include <errno.h>
#include <unistd.h>

#include "drivers/raw-int.h"
#include "queue/queue.h"

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
		if (next > pos && !vd_extent_add(io, max, hole, next - pos))
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
		if (!vd_extent_add(io, max, 0, next - pos))
			break;
		pos = next;
	}
	return io->nr_extents ? 0 : -EIO;
}

int raw_block_status(void *priv, struct vd_io *io)
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
