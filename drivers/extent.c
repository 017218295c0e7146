/* Building BLOCK_STATUS answers, shared by the drivers. */
#include "drivers/driver.h"

bool vd_extent_add(struct vd_io *io, unsigned max, uint32_t flags, uint64_t n)
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
