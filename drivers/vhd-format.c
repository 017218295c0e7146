/* The VHD footer and dynamic disk header: codecs, checksums, geometry and
 * the checks that stand between a hostile image and the driver.  See
 * drivers/vhd-format.h for what is accepted. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "drivers/vhd-format.h"
#include "drivers/vhd-int.h"

/* Field offsets in the footer and the header (the spec's tables). */
enum {
	F_COOKIE = 0, F_FEATURES = 8, F_VERSION = 12, F_DATA_OFFSET = 16,
	F_TIMESTAMP = 24, F_CREATOR_APP = 28, F_CREATOR_VER = 32,
	F_CREATOR_OS = 36, F_ORIG_SIZE = 40, F_CUR_SIZE = 48, F_CYLS = 56,
	F_HEADS = 58, F_SECTORS = 59, F_TYPE = 60, F_CHECKSUM = 64,
	F_UUID = 68, F_SAVED = 84,
};
enum {
	H_COOKIE = 0, H_DATA_OFFSET = 8, H_TABLE_OFFSET = 16, H_VERSION = 24,
	H_MAX_ENTRIES = 28, H_BLOCK_SIZE = 32, H_CHECKSUM = 36,
	H_PARENT_UUID = 40, H_PARENT_TS = 56, H_PARENT_NAME = 64,
	H_LOCATORS = 576, H_LOCATOR_SIZE = 24,
};

static const char footer_cookie[8] = "conectix";
static const char header_cookie[8] = "cxsparse";

uint16_t vhd_get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
uint32_t vhd_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
uint64_t vhd_get64(const uint8_t *p) { return (uint64_t)vhd_get32(p) << 32 | vhd_get32(p + 4); }
void vhd_put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
void vhd_put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24; p[1] = (v >> 16) & 0xff; p[2] = (v >> 8) & 0xff; p[3] = v & 0xff;
}
void vhd_put64(uint8_t *p, uint64_t v) { vhd_put32(p, v >> 32); vhd_put32(p + 4, (uint32_t)v); }

uint32_t vhd_checksum(const uint8_t *buf, size_t len, size_t skip)
{
	uint32_t sum = 0;

	for (size_t i = 0; i < len; i++)
		if (i < skip || i >= skip + 4)
			sum += buf[i];
	return ~sum;
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

/* The spec's appendix, step by step (qemu's calculate_geometry is the same
 * algorithm; its uint8_t heads truncates only values above 16, which take
 * the same branch either way). */
void vhd_geometry_from_size(uint64_t size, struct vhd_geometry *g)
{
	uint64_t total = size / VHD_SECTOR_SIZE;
	uint32_t spt, heads, cth;

	if (total > 65535ull * 16 * 255)
		total = 65535ull * 16 * 255;
	if (total >= 65535ull * 16 * 63) {
		spt = 255;
		heads = 16;
		cth = (uint32_t)(total / spt);
	} else {
		spt = 17;
		cth = (uint32_t)(total / spt);
		heads = (cth + 1023) / 1024;
		if (heads < 4)
			heads = 4;
		if (cth >= heads * 1024 || heads > 16) {
			spt = 31;
			heads = 16;
			cth = (uint32_t)(total / spt);
		}
		if (cth >= heads * 1024) {
			spt = 63;
			heads = 16;
			cth = (uint32_t)(total / spt);
		}
	}
	g->cylinders = (uint16_t)(cth / heads);
	g->heads = (uint8_t)heads;
	g->sectors = (uint8_t)spt;
}

uint64_t vhd_geometry_bytes(const struct vhd_geometry *g)
{
	return (uint64_t)g->cylinders * g->heads * g->sectors * VHD_SECTOR_SIZE;
}

uint64_t vhd_footer_disk_size(const struct vhd_footer *f)
{
	static const char apps[][4] = { "win ", "qem2", "d2v ", "CTXS", { 't', 'a', 'p', 0 } };
	const struct vhd_geometry *g = &f->geometry;

	if (g->cylinders == 65535 && g->heads == 16 && g->sectors == 255)
		return f->current_size;
	for (size_t i = 0; i < sizeof(apps) / sizeof(apps[0]); i++)
		if (!memcmp(f->creator_app, apps[i], 4))
			return f->current_size;
	return vhd_geometry_bytes(g);
}

uint32_t vhd_time_from_unix(int64_t t)
{
	if (t <= VHD_EPOCH)
		return 0;
	if (t - VHD_EPOCH > UINT32_MAX)
		return UINT32_MAX;
	return (uint32_t)(t - VHD_EPOCH);
}

int64_t vhd_time_to_unix(uint32_t t)
{
	return (int64_t)t + VHD_EPOCH;
}

void vhd_footer_decode(const uint8_t buf[VHD_FOOTER_SIZE], struct vhd_footer *f)
{
	memset(f, 0, sizeof(*f));
	f->features = vhd_get32(buf + F_FEATURES);
	f->version = vhd_get32(buf + F_VERSION);
	f->data_offset = vhd_get64(buf + F_DATA_OFFSET);
	f->timestamp = vhd_get32(buf + F_TIMESTAMP);
	memcpy(f->creator_app, buf + F_CREATOR_APP, 4);
	f->creator_version = vhd_get32(buf + F_CREATOR_VER);
	memcpy(f->creator_os, buf + F_CREATOR_OS, 4);
	f->original_size = vhd_get64(buf + F_ORIG_SIZE);
	f->current_size = vhd_get64(buf + F_CUR_SIZE);
	f->geometry.cylinders = vhd_get16(buf + F_CYLS);
	f->geometry.heads = buf[F_HEADS];
	f->geometry.sectors = buf[F_SECTORS];
	f->type = vhd_get32(buf + F_TYPE);
	f->checksum = vhd_get32(buf + F_CHECKSUM);
	memcpy(f->uuid, buf + F_UUID, 16);
	f->saved_state = buf[F_SAVED];
}

uint32_t vhd_footer_encode(const struct vhd_footer *f, uint8_t buf[VHD_FOOTER_SIZE])
{
	uint32_t sum;

	memset(buf, 0, VHD_FOOTER_SIZE);
	memcpy(buf + F_COOKIE, footer_cookie, 8);
	vhd_put32(buf + F_FEATURES, f->features);
	vhd_put32(buf + F_VERSION, f->version);
	vhd_put64(buf + F_DATA_OFFSET, f->data_offset);
	vhd_put32(buf + F_TIMESTAMP, f->timestamp);
	memcpy(buf + F_CREATOR_APP, f->creator_app, 4);
	vhd_put32(buf + F_CREATOR_VER, f->creator_version);
	memcpy(buf + F_CREATOR_OS, f->creator_os, 4);
	vhd_put64(buf + F_ORIG_SIZE, f->original_size);
	vhd_put64(buf + F_CUR_SIZE, f->current_size);
	vhd_put16(buf + F_CYLS, f->geometry.cylinders);
	buf[F_HEADS] = f->geometry.heads;
	buf[F_SECTORS] = f->geometry.sectors;
	vhd_put32(buf + F_TYPE, f->type);
	memcpy(buf + F_UUID, f->uuid, 16);
	buf[F_SAVED] = f->saved_state;
	sum = vhd_checksum(buf, VHD_FOOTER_SIZE, F_CHECKSUM);
	vhd_put32(buf + F_CHECKSUM, sum);
	return sum;
}

static bool type_ok(uint32_t type)
{
	return type == VHD_TYPE_FIXED || type == VHD_TYPE_DYNAMIC || type == VHD_TYPE_DIFF;
}

static int check_size(const char *what, uint64_t size, char *msg, size_t msglen)
{
	if (size == 0 || size % VHD_SECTOR_SIZE)
		return vd_errmsg(msg, msglen, -EINVAL, "footer %s %" PRIu64
			       " is not a non-zero multiple of 512", what, size);
	if (size > VHD_MAX_DISK_SIZE)
		return vd_errmsg(msg, msglen, -EFBIG, "footer %s %" PRIu64
			       " is over the VHD limit of 2040 GiB", what, size);
	return 0;
}

int vhd_footer_validate(const struct vhd_footer *f, char *msg, size_t msglen)
{
	int err;

	if (f->version >> 16 != 1)
		return vd_errmsg(msg, msglen, -EINVAL, "footer version 0x%08" PRIx32
			       " is not 1.x", f->version);
	if (!type_ok(f->type))
		return vd_errmsg(msg, msglen, -EINVAL, "footer disk type %" PRIu32
			       " is not fixed (2), dynamic (3) or differencing (4)", f->type);
	err = check_size("current size", f->current_size, msg, msglen);
	if (!err)
		err = check_size("disk size (by creator and geometry)",
				 vhd_footer_disk_size(f), msg, msglen);
	if (err)
		return err;
	if (f->type != VHD_TYPE_FIXED && f->data_offset == VHD_NO_OFFSET)
		return vd_errmsg(msg, msglen, -EINVAL, "footer of a %s image has no header offset",
			       f->type == VHD_TYPE_DIFF ? "differencing" : "dynamic");
	return 0;
}

int vhd_footer_parse(const uint8_t buf[VHD_FOOTER_SIZE], struct vhd_footer *f,
		     char *msg, size_t msglen)
{
	uint32_t sum;

	if (memcmp(buf + F_COOKIE, footer_cookie, 8))
		return vd_errmsg(msg, msglen, -EINVAL, "footer cookie is not \"conectix\"");
	vhd_footer_decode(buf, f);
	sum = vhd_checksum(buf, VHD_FOOTER_SIZE, F_CHECKSUM);
	if (sum != f->checksum)
		return vd_errmsg(msg, msglen, -EINVAL, "footer checksum 0x%08" PRIx32
			       " != computed 0x%08" PRIx32, f->checksum, sum);
	return vhd_footer_validate(f, msg, msglen);
}

bool vhd_detect_footer(const uint8_t last512[VHD_FOOTER_SIZE])
{
	return !memcmp(last512 + F_COOKIE, footer_cookie, 8) &&
	       vhd_checksum(last512, VHD_FOOTER_SIZE, F_CHECKSUM) ==
	       vhd_get32(last512 + F_CHECKSUM) &&
	       type_ok(vhd_get32(last512 + F_TYPE));
}

void vhd_header_decode(const uint8_t buf[VHD_HEADER_SIZE], struct vhd_header *h)
{
	memset(h, 0, sizeof(*h));
	h->data_offset = vhd_get64(buf + H_DATA_OFFSET);
	h->table_offset = vhd_get64(buf + H_TABLE_OFFSET);
	h->version = vhd_get32(buf + H_VERSION);
	h->max_table_entries = vhd_get32(buf + H_MAX_ENTRIES);
	h->block_size = vhd_get32(buf + H_BLOCK_SIZE);
	h->checksum = vhd_get32(buf + H_CHECKSUM);
	memcpy(h->parent_uuid, buf + H_PARENT_UUID, 16);
	h->parent_timestamp = vhd_get32(buf + H_PARENT_TS);
	memcpy(h->parent_name, buf + H_PARENT_NAME, VHD_PARENT_NAME_SIZE);
	for (int i = 0; i < VHD_LOCATORS; i++) {
		const uint8_t *p = buf + H_LOCATORS + i * H_LOCATOR_SIZE;

		h->loc[i].code = vhd_get32(p);
		h->loc[i].data_space = vhd_get32(p + 4);
		h->loc[i].data_length = vhd_get32(p + 8);
		h->loc[i].data_offset = vhd_get64(p + 16);
	}
}

uint32_t vhd_header_encode(const struct vhd_header *h, uint8_t buf[VHD_HEADER_SIZE])
{
	uint32_t sum;

	memset(buf, 0, VHD_HEADER_SIZE);
	memcpy(buf + H_COOKIE, header_cookie, 8);
	vhd_put64(buf + H_DATA_OFFSET, h->data_offset);
	vhd_put64(buf + H_TABLE_OFFSET, h->table_offset);
	vhd_put32(buf + H_VERSION, h->version);
	vhd_put32(buf + H_MAX_ENTRIES, h->max_table_entries);
	vhd_put32(buf + H_BLOCK_SIZE, h->block_size);
	memcpy(buf + H_PARENT_UUID, h->parent_uuid, 16);
	vhd_put32(buf + H_PARENT_TS, h->parent_timestamp);
	memcpy(buf + H_PARENT_NAME, h->parent_name, VHD_PARENT_NAME_SIZE);
	for (int i = 0; i < VHD_LOCATORS; i++) {
		uint8_t *p = buf + H_LOCATORS + i * H_LOCATOR_SIZE;

		vhd_put32(p, h->loc[i].code);
		vhd_put32(p + 4, h->loc[i].data_space);
		vhd_put32(p + 8, h->loc[i].data_length);
		vhd_put64(p + 16, h->loc[i].data_offset);
	}
	sum = vhd_checksum(buf, VHD_HEADER_SIZE, H_CHECKSUM);
	vhd_put32(buf + H_CHECKSUM, sum);
	return sum;
}

uint64_t vhd_locator_space(const struct vhd_locator *l)
{
	if (l->data_space < 512)
		return (uint64_t)l->data_space * VHD_SECTOR_SIZE;
	if (l->data_space % 512 == 0)
		return l->data_space;
	return 0;
}

static int check_locators(const struct vhd_header *h, char *msg, size_t msglen)
{
	for (int i = 0; i < VHD_LOCATORS; i++) {
		const struct vhd_locator *l = &h->loc[i];

		if (l->code == VHD_PLAT_NONE)
			continue;
		if (l->data_length > VHD_LOCATOR_MAX)
			return vd_errmsg(msg, msglen, -EINVAL, "parent locator %d: data length %"
				       PRIu32 " is over %u", i, l->data_length, VHD_LOCATOR_MAX);
		if (l->data_length > vhd_locator_space(l))
			return vd_errmsg(msg, msglen, -EINVAL, "parent locator %d: data length %"
				       PRIu32 " does not fit its data space %" PRIu32, i,
				       l->data_length, l->data_space);
	}
	return 0;
}

int vhd_header_validate(const struct vhd_header *h, const struct vhd_footer *f,
			char *msg, size_t msglen)
{
	uint64_t need, most;

	if (h->version >> 16 != 1)
		return vd_errmsg(msg, msglen, -EINVAL, "header version 0x%08" PRIx32
			       " is not 1.x", h->version);
	if (!is_pow2(h->block_size) || h->block_size < VHD_BLOCK_MIN ||
	    h->block_size > VHD_BLOCK_MAX)
		return vd_errmsg(msg, msglen, -EINVAL, "header block size %" PRIu32
			       " is not a power of two from 512 B to 256 MiB", h->block_size);
	need = div_up(vhd_footer_disk_size(f), h->block_size);
	most = div_up(VHD_MAX_DISK_SIZE, h->block_size);
	if (most > VHD_MAX_BAT_ENTRIES)
		most = VHD_MAX_BAT_ENTRIES;
	if (h->max_table_entries < need)
		return vd_errmsg(msg, msglen, -EINVAL, "header max table entries %" PRIu32
			       " < %" PRIu64 " blocks needed for the disk size",
			       h->max_table_entries, need);
	if (h->max_table_entries > most)
		return vd_errmsg(msg, msglen, -EINVAL, "header max table entries %" PRIu32
			       " is over the limit of %" PRIu64, h->max_table_entries, most);
	if (h->table_offset == VHD_NO_OFFSET)
		return vd_errmsg(msg, msglen, -EINVAL, "header has no table offset");
	return f->type == VHD_TYPE_DIFF ? check_locators(h, msg, msglen) : 0;
}

int vhd_header_parse(const uint8_t buf[VHD_HEADER_SIZE], const struct vhd_footer *f,
		     struct vhd_header *h, char *msg, size_t msglen)
{
	uint32_t sum;

	if (memcmp(buf + H_COOKIE, header_cookie, 8))
		return vd_errmsg(msg, msglen, -EINVAL, "header cookie is not \"cxsparse\"");
	vhd_header_decode(buf, h);
	sum = vhd_checksum(buf, VHD_HEADER_SIZE, H_CHECKSUM);
	if (sum != h->checksum)
		return vd_errmsg(msg, msglen, -EINVAL, "header checksum 0x%08" PRIx32
			       " != computed 0x%08" PRIx32, h->checksum, sum);
	return vhd_header_validate(h, f, msg, msglen);
}
