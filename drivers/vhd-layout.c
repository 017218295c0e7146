/* Where a dynamic image's structures lie in the file, and the BAT that
 * points at its blocks: every offset a hostile image could use to send a
 * reader past the end of the file or into its own metadata is checked
 * here, in 64-bit arithmetic that cannot wrap (all values are bounded
 * before they are added). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "drivers/vhd-format.h"
#include "drivers/vhd-int.h"

struct extent {
	const char *what;
	int index;		/* locator number, or -1 */
	uint64_t start, len;
};

static uint64_t round512(uint64_t v)
{
	return (v + 511) & ~(uint64_t)511;
}

static void extent_name(const struct extent *e, char *buf, size_t len)
{
	if (e->index >= 0)
		snprintf(buf, len, "%s %d", e->what, e->index);
	else
		snprintf(buf, len, "%s", e->what);
}

/* The extent lies in [512, end); len was bounded by the caller (at most a
 * 64 MiB BAT), so start + len cannot wrap once start < end. */
static int extent_inside(const struct extent *e, uint64_t end, char *msg, size_t msglen)
{
	char name[32];

	extent_name(e, name, sizeof(name));
	if (e->start < VHD_FOOTER_SIZE)
		return vd_errmsg(msg, msglen, -EINVAL, "%s at offset %" PRIu64
			       " overlaps the footer copy at 0", name, e->start);
	if (e->start >= end || e->len > end - e->start)
		return vd_errmsg(msg, msglen, -EINVAL, "%s at offset %" PRIu64 " (+%" PRIu64
			       ") points past the end of the file (footer at %" PRIu64 ")",
			       name, e->start, e->len, end);
	return 0;
}

int vhd_layout_validate(const struct vhd_footer *f, const struct vhd_header *h,
			uint64_t footer_offset, uint64_t *meta_end, char *msg, size_t msglen)
{
	struct extent ext[2 + VHD_LOCATORS];
	int n = 0, err;
	uint64_t end = VHD_FOOTER_SIZE;

	ext[n++] = (struct extent){ "dynamic header", -1, f->data_offset, VHD_HEADER_SIZE };
	ext[n++] = (struct extent){ "BAT", -1, h->table_offset,
				    (uint64_t)h->max_table_entries * 4 };
	for (int i = 0; f->type == VHD_TYPE_DIFF && i < VHD_LOCATORS; i++) {
		const struct vhd_locator *l = &h->loc[i];

		if (l->code != VHD_PLAT_NONE && l->data_length)
			ext[n++] = (struct extent){ "parent locator", i, l->data_offset,
						    l->data_length };
	}
	for (int i = 0; i < n; i++) {
		err = extent_inside(&ext[i], footer_offset, msg, msglen);
		if (err)
			return err;
	}
	for (int i = 0; i < n; i++) {
		for (int j = i + 1; j < n; j++) {
			char a[32], b[32];

			if (ext[i].start >= ext[j].start + ext[j].len ||
			    ext[j].start >= ext[i].start + ext[i].len)
				continue;
			extent_name(&ext[i], a, sizeof(a));
			extent_name(&ext[j], b, sizeof(b));
			return vd_errmsg(msg, msglen, -EINVAL, "%s at %" PRIu64 " overlaps %s at %"
				       PRIu64, a, ext[i].start, b, ext[j].start);
		}
		if (round512(ext[i].start + ext[i].len) > end)
			end = round512(ext[i].start + ext[i].len);
	}
	if (meta_end)
		*meta_end = end;
	return 0;
}

uint64_t vhd_bat_bytes(uint32_t entries)
{
	return round512((uint64_t)entries * 4);
}

uint32_t vhd_bat_get(const uint8_t *bat, uint32_t i)
{
	return vhd_get32(bat + (size_t)i * 4);
}

void vhd_bat_set(uint8_t *bat, uint32_t i, uint32_t sector)
{
	vhd_put32(bat + (size_t)i * 4, sector);
}

int vhd_bat_check(const uint8_t *bat, uint32_t entries, uint32_t block_size,
		  uint64_t meta_end, uint64_t footer_offset, char *msg, size_t msglen)
{
	uint64_t span = (uint64_t)vhd_bitmap_bytes(block_size) + block_size;

	for (uint32_t i = 0; i < entries; i++) {
		uint32_t e = vhd_bat_get(bat, i);
		uint64_t start = (uint64_t)e * VHD_SECTOR_SIZE;

		if (e == VHD_BAT_UNUSED)
			continue;
		if (start < meta_end)
			return vd_errmsg(msg, msglen, -EINVAL, "BAT entry %" PRIu32 " (sector %"
				       PRIu32 ") points into the metadata (which ends at %"
				       PRIu64 ")", i, e, meta_end);
		if (start >= footer_offset || span > footer_offset - start)
			return vd_errmsg(msg, msglen, -EINVAL, "BAT entry %" PRIu32 " (sector %"
				       PRIu32 ") points past the end of the file", i, e);
	}
	return 0;
}
