/* Probing an existing VHD file.  The footer at the end is the one that
 * counts (a fixed image has no other); a dynamic image also keeps a copy
 * at offset 0, which stands in when the end of the file is not a footer
 * (as after a crash between growing the file and rewriting the footer). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "drivers/vhd-format.h"
#include "drivers/vhd-int.h"
#include "drivers/vhd-probe.h"

#define MSG_LEN 256

/* Finds the footer: at the end (512 bytes, or 511 for old Virtual PC
 * images, whose last byte would have been the zero saved-state padding),
 * else the copy at 0 of a dynamic image.  The reason given for a bad
 * image is the end footer's, since that is the one a fixed image has. */
static int find_footer(int fd, struct vhd_image_meta *m, char *why, size_t whylen)
{
	uint8_t end[VHD_FOOTER_SIZE], copy[VHD_FOOTER_SIZE];
	char other[MSG_LEN];
	int err, cerr;

	err = vd_pread_all(fd, end, VHD_FOOTER_SIZE, m->file_size - VHD_FOOTER_SIZE);
	if (err)
		return vd_errmsg(why, whylen, err, "reading the footer: %s", strerror(-err));
	err = vhd_footer_parse(end, &m->footer, why, whylen);
	if (!err) {
		m->footer_offset = m->file_size - VHD_FOOTER_SIZE;
	} else if (m->file_size % 512 == 511) {
		uint8_t short_ftr[VHD_FOOTER_SIZE] = { 0 };

		memcpy(short_ftr, end + 1, VHD_FOOTER_SIZE - 1);
		if (!vhd_footer_parse(short_ftr, &m->footer, other, sizeof(other))) {
			m->footer_offset = m->file_size - (VHD_FOOTER_SIZE - 1);
			m->short_footer = true;
			err = 0;
		}
	}
	cerr = vd_pread_all(fd, copy, VHD_FOOTER_SIZE, 0);
	if (cerr)
		return vd_errmsg(why, whylen, cerr, "reading the footer copy: %s", strerror(-cerr));
	if (!err) {
		m->footer_copy_differs = m->footer.type != VHD_TYPE_FIXED &&
			(m->short_footer ? memcmp(copy, end + 1, VHD_FOOTER_SIZE - 1)
					 : memcmp(copy, end, VHD_FOOTER_SIZE));
		return 0;
	}
	/* A header that the copy points at must still be inside the file,
	 * which the layout check sees with footer_offset = file_size. */
	if (vhd_footer_parse(copy, &m->footer, other, sizeof(other)) ||
	    m->footer.type == VHD_TYPE_FIXED)
		return err;
	m->footer_offset = m->file_size;
	m->footer_from_copy = true;
	return 0;
}

static int probe_dynamic(int fd, struct vhd_image_meta *m, char *why, size_t whylen)
{
	uint8_t buf[VHD_HEADER_SIZE];
	uint64_t off = m->footer.data_offset;
	int err;

	if (off < VHD_FOOTER_SIZE || off > m->footer_offset ||
	    m->footer_offset - off < VHD_HEADER_SIZE)
		return vd_errmsg(why, whylen, -EINVAL, "footer data offset %" PRIu64
			       " puts the dynamic header outside the file", off);
	err = vd_pread_all(fd, buf, sizeof(buf), off);
	if (err)
		return vd_errmsg(why, whylen, err, "reading the dynamic header: %s",
			       strerror(-err));
	err = vhd_header_parse(buf, &m->footer, &m->header, why, whylen);
	if (!err)
		err = vhd_layout_validate(&m->footer, &m->header, m->footer_offset,
					  &m->meta_end, why, whylen);
	if (err)
		return err;
	m->bat_offset = m->header.table_offset;
	m->bat_entries = m->header.max_table_entries;
	m->block_size = m->header.block_size;
	m->bitmap_bytes = vhd_bitmap_bytes(m->block_size);
	return 0;
}

int vhd_probe_fd(int fd, const char *name, struct vhd_image_meta *out, char *msg,
		 size_t msglen)
{
	struct vhd_image_meta m = { 0 };
	char why[MSG_LEN];
	off_t size = lseek(fd, 0, SEEK_END);
	int err;

	if (size < 0)
		return vd_errmsg(msg, msglen, -errno, "%s: size: %s", name, strerror(errno));
	if (size < VHD_FOOTER_SIZE)
		return vd_errmsg(msg, msglen, -EINVAL, "%s: %lld bytes is too small for a"
			       " VHD footer", name, (long long)size);
	m.file_size = (uint64_t)size;
	err = find_footer(fd, &m, why, sizeof(why));
	if (err)
		goto err;
	m.disk_size = vhd_footer_disk_size(&m.footer);
	if (m.footer.type == VHD_TYPE_FIXED) {
		if (m.disk_size > m.footer_offset) {
			err = vd_errmsg(why, sizeof(why), -EINVAL, "fixed disk of %" PRIu64
				      " bytes does not fit before its footer at %" PRIu64,
				      m.disk_size, m.footer_offset);
			goto err;
		}
	} else {
		err = probe_dynamic(fd, &m, why, sizeof(why));
		if (err)
			goto err;
	}
	*out = m;
	return 0;
err:
	return vd_errmsg(msg, msglen, err, "%s: %s", name, why);
}

int vhd_probe_file(const char *path, struct vhd_image_meta *out, char *msg, size_t msglen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int err;

	if (fd < 0)
		return vd_errmsg(msg, msglen, -errno, "%s: open: %s", path, strerror(errno));
	err = vhd_probe_fd(fd, path, out, msg, msglen);
	close(fd);
	return err;
}
