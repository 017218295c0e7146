/* Sub-I/O accounting (drivers/driver.h, rule 3): one request split into
 * several completes once, after the last piece, with the first error. */
#include <string.h>

#include "drivers/driver.h"

void vd_io_release(struct vd_io *io, int err)
{
	if (vd_piece_done(&io->first_err, &io->refs, err))
		vd_io_complete(io, io->first_err);
}

static void vd_io_child_done(struct vd_io *child, int err)
{
	vd_io_release(child->parent, err);
}

void vd_io_child_init(struct vd_io *child, struct vd_io *parent, enum vd_op op,
		      uint64_t offset, uint64_t len, void *buf)
{
	memset(child, 0, sizeof(*child));
	child->op = op;
	child->offset = offset;
	child->len = len;
	child->buf = buf;
	child->complete = vd_io_child_done;
	child->parent = parent;
	vd_io_hold(parent);
}
