/* Reading what an existing VHD file is: its footer, and for dynamic and
 * differencing images the header and where the BAT lies.  Blocking
 * pread()s; the driver's open path and vdisk-img call it.  No vdiskd
 * header is needed to use it. */
#ifndef VHD_PROBE_H
#define VHD_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/vhd-format.h"

struct vhd_image_meta {
	struct vhd_footer footer;
	struct vhd_header header;	/* dynamic and differencing only, else zero */
	uint64_t file_size;
	uint64_t disk_size;		/* what the guest sees: vhd_footer_disk_size() */
	/* Where the footer at the end of the file starts: file_size - 512, or
	 * - 511 for an old Virtual PC image, or file_size when that footer was
	 * unreadable and the copy at offset 0 stood in for it. */
	uint64_t footer_offset;
	bool footer_from_copy;		/* footer at the end bad: using the copy at 0 */
	bool footer_copy_differs;	/* dynamic: the copy at 0 is not the same footer */
	bool short_footer;		/* a 511-byte footer */
	/* Dynamic and differencing images: */
	uint64_t bat_offset;
	uint32_t bat_entries;
	uint32_t block_size;
	uint32_t bitmap_bytes;
	uint64_t meta_end;		/* see vhd_layout_validate() */
};

/* Fills *out from the file at path; 0, or a negative errno with the reason
 * in msg (prefixed with the path).  Does not read the BAT: a caller loads
 * meta.bat_entries entries from meta.bat_offset and checks them with
 * vhd_bat_check(..., meta.meta_end, meta.footer_offset, ...). */
int vhd_probe_file(const char *path, struct vhd_image_meta *out, char *msg, size_t msglen);
/* The same on an open fd (which must not be O_DIRECT: the reads are small
 * and unaligned); name is for messages only. */
int vhd_probe_fd(int fd, const char *name, struct vhd_image_meta *out, char *msg,
		 size_t msglen);

/* drivers/vhd-parent.c.  Loads the BAT of a dynamic or differencing image
 * (host order, malloc'd) and checks it: every block inside the file and
 * past the metadata (vhd_bat_check), no two blocks overlapping. */
int vhd_bat_load(int fd, const char *name, const struct vhd_image_meta *m, uint32_t **bat,
		 char *msg, size_t msglen);
/* Names the first pair of allocated entries whose blocks (bitmap + data)
 * overlap. */
int vhd_bat_overlap(const uint32_t *bat, uint32_t entries, uint32_t block_size,
		    char *msg, size_t msglen);
/* The parent file of a differencing image: the first locator, in the
 * order W2ru (relative to the child's directory), W2ku, MacX, that names
 * an existing file; else the header's parent name beside the child.
 * -ENOENT with the paths tried in msg. */
int vhd_parent_find(int fd, const char *child, const struct vhd_image_meta *m,
		    char *out, size_t outcap, char *msg, size_t msglen);

#endif
