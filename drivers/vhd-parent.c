/* What the driver and vdisk-img both need beyond the probe: the BAT,
 * loaded and checked (including blocks that overlap each other), and the
 * parent of a differencing image, found through its locators.  Blocking
 * pread()s: open time and offline tools only. */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "drivers/vhd-format.h"
#include "drivers/vhd-int.h"
#include "drivers/vhd-probe.h"

struct bat_span {
	uint64_t start;
	uint32_t index;
};

static int span_cmp(const void *a, const void *b)
{
	const struct bat_span *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

int vhd_bat_overlap(const uint32_t *bat, uint32_t entries, uint32_t block_size,
		    char *msg, size_t msglen)
{
	uint64_t span = (uint64_t)vhd_bitmap_bytes(block_size) + block_size;
	struct bat_span *s;
	uint32_t n = 0;
	int err = 0;

	s = malloc(sizeof(*s) * (entries ? entries : 1));
	if (!s)
		return vd_errmsg(msg, msglen, -ENOMEM, "BAT: out of memory");
	for (uint32_t i = 0; i < entries; i++) {
		if (bat[i] != VHD_BAT_UNUSED)
			s[n++] = (struct bat_span){ (uint64_t)bat[i] * 512, i };
	}
	qsort(s, n, sizeof(*s), span_cmp);
	for (uint32_t i = 1; i < n; i++) {
		if (s[i].start < s[i - 1].start + span) {
			err = vd_errmsg(msg, msglen, -EINVAL, "BAT entry %" PRIu32
				      " (sector %" PRIu64 ") overlaps the block of entry %"
				      PRIu32 " (sector %" PRIu64 ")", s[i].index,
				      s[i].start / 512, s[i - 1].index, s[i - 1].start / 512);
			break;
		}
	}
	free(s);
	return err;
}

int vhd_bat_load(int fd, const char *name, const struct vhd_image_meta *m, uint32_t **out,
		 char *msg, size_t msglen)
{
	uint64_t bytes = vhd_bat_bytes(m->bat_entries);
	uint8_t *raw = malloc(bytes ? bytes : 1);
	uint32_t *bat = malloc(sizeof(*bat) * (m->bat_entries ? m->bat_entries : 1));
	char why[256];
	int err;

	if (!raw || !bat) {
		err = vd_errmsg(why, sizeof(why), -ENOMEM, "BAT: out of memory");
		goto err;
	}
	err = vd_pread_all(fd, raw, bytes, m->bat_offset);
	if (err) {
		vd_errmsg(why, sizeof(why), err, "reading the BAT (%" PRIu64 " bytes at %"
			PRIu64 "): %s", bytes, m->bat_offset, strerror(-err));
		goto err;
	}
	err = vhd_bat_check(raw, m->bat_entries, m->block_size, m->meta_end,
			    m->footer_offset, why, sizeof(why));
	if (err)
		goto err;
	for (uint32_t i = 0; i < m->bat_entries; i++)
		bat[i] = vhd_bat_get(raw, i);
	err = vhd_bat_overlap(bat, m->bat_entries, m->block_size, why, sizeof(why));
	if (err)
		goto err;
	free(raw);
	*out = bat;
	return 0;
err:
	free(raw);
	free(bat);
	return vd_errmsg(msg, msglen, err, "%s: %s", name, why);
}

/* dir/rel, or rel when it is absolute. */
static int join_path(const char *child, const char *rel, char *out, size_t outcap)
{
	char tmp[4096];
	int n;

	while (rel[0] == '.' && rel[1] == '/')
		rel += 2;
	snprintf(tmp, sizeof(tmp), "%s", child);
	if (rel[0] == '/' || strcmp(dirname(tmp), ".") == 0)
		n = snprintf(out, outcap, "%s", rel);
	else
		n = snprintf(out, outcap, "%s/%s", tmp, rel);
	return n < 0 || (size_t)n >= outcap ? -ENAMETOOLONG : 0;
}

int vhd_parent_find(int fd, const char *child, const struct vhd_image_meta *m,
		    char *out, size_t outcap, char *msg, size_t msglen)
{
	static const uint32_t order[] = { VHD_PLAT_W2RU, VHD_PLAT_W2KU, VHD_PLAT_MACX };
	char tried[1024] = "", path[4096], name[2048];
	uint8_t *data = NULL;
	size_t tl = 0;
	int err;

	for (size_t o = 0; o < sizeof(order) / sizeof(order[0]); o++) {
		for (int i = 0; i < VHD_LOCATORS; i++) {
			const struct vhd_locator *l = &m->header.loc[i];

			if (l->code != order[o] || l->data_length == 0)
				continue;
			if (l->data_length > VHD_LOCATOR_MAX ||
			    l->data_length > vhd_locator_space(l)) {
				free(data);
				return vd_errmsg(msg, msglen, -EINVAL, "%s: parent locator %d: "
					       "data length %" PRIu32 " exceeds its space",
					       child, i, l->data_length);
			}
			if (!data && !(data = malloc(VHD_LOCATOR_MAX)))
				return vd_errmsg(msg, msglen, -ENOMEM, "%s: out of memory", child);
			err = vd_pread_all(fd, data, l->data_length, l->data_offset);
			if (err) {
				free(data);
				return vd_errmsg(msg, msglen, err, "%s: parent locator %d: "
					       "reading its data: %s", child, i, strerror(-err));
			}
			if (vhd_locator_decode(l->code, data, l->data_length, name,
					       sizeof(name), NULL, 0))
				continue;
			if (join_path(child, name, path, sizeof(path)))
				continue;
			if (access(path, F_OK) == 0) {
				free(data);
				snprintf(out, outcap, "%s", path);
				return 0;
			}
			tl += (size_t)snprintf(tried + tl, tl < sizeof(tried) ? sizeof(tried) - tl : 0,
					       "%s%s", tl ? ", " : "", path);
			if (tl >= sizeof(tried))
				tl = sizeof(tried) - 1;
		}
	}
	free(data);
	/* No locator led anywhere: the parent's name beside the child. */
	if (vhd_header_parent_name(&m->header, name, sizeof(name)) == 0 && name[0] &&
	    !strchr(name, '/') && join_path(child, name, path, sizeof(path)) == 0 &&
	    access(path, F_OK) == 0) {
		snprintf(out, outcap, "%s", path);
		return 0;
	}
	return vd_errmsg(msg, msglen, -ENOENT, "%s: parent not found (parent locators: %s)",
		       child, tl ? tried : "none usable");
}
