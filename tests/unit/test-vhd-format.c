/* The pure VHD format layer (drivers/vhd-format.h): codec round trips and
 * checksums, the CHS geometry against a transcription of the spec, qemu's
 * size rule, footer detection, every hostile footer, header and layout
 * value we could think of, and BAT checks.  The sector bitmap is in
 * test-vhd-bitmap.c, text (UTF-16, locators) in test-vhd-text.c, files in
 * test-vhd-image.c and interop with qemu-img and libvhdi in
 * test-vhd-interop.c. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "drivers/vhd-format.h"
#include "tests/lib/test.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void good_footer(struct vhd_footer *f, enum vhd_type type, uint64_t size)
{
	memset(f, 0, sizeof(*f));
	f->features = VHD_FEATURES;
	f->version = VHD_VERSION;
	f->data_offset = type == VHD_TYPE_FIXED ? VHD_NO_OFFSET : 512;
	f->timestamp = 12345678;
	memcpy(f->creator_app, "tap", 4);
	f->creator_version = 0x00010000;
	memcpy(f->creator_os, "Lnux", 4);
	f->original_size = f->current_size = size;
	vhd_geometry_from_size(size, &f->geometry);
	f->type = type;
	for (int i = 0; i < 16; i++)
		f->uuid[i] = (uint8_t)(i * 17 + 1);
}

static void good_header(struct vhd_header *h, uint64_t size, uint32_t block)
{
	memset(h, 0, sizeof(*h));
	h->data_offset = VHD_NO_OFFSET;
	h->table_offset = 1536;
	h->version = VHD_VERSION;
	h->block_size = block;
	h->max_table_entries = (uint32_t)((size + block - 1) / block);
}

/* The spec's appendix, transcribed with plain ints as it is printed. */
static void spec_geometry(uint64_t bytes, int *c, int *hd, int *s)
{
	long long total = (long long)(bytes / 512);
	long long cth;
	int spt, heads;

	if (total > 65535LL * 16 * 255)
		total = 65535LL * 16 * 255;
	if (total >= 65535LL * 16 * 63) {
		spt = 255; heads = 16; cth = total / spt;
	} else {
		spt = 17; cth = total / spt;
		heads = (int)((cth + 1023) / 1024);
		if (heads < 4) heads = 4;
		if (cth >= heads * 1024LL || heads > 16) {
			spt = 31; heads = 16; cth = total / spt;
		}
		if (cth >= heads * 1024LL) {
			spt = 63; heads = 16; cth = total / spt;
		}
	}
	*c = (int)(cth / heads); *hd = heads; *s = spt;
}

static void check_geometry(uint64_t bytes)
{
	struct vhd_geometry g;
	int c, h, s;

	vhd_geometry_from_size(bytes, &g);
	spec_geometry(bytes, &c, &h, &s);
	if (g.cylinders != c || g.heads != h || g.sectors != s) {
		fprintf(stderr, "geometry of %llu: %u/%u/%u, spec %d/%d/%d\n",
			(unsigned long long)bytes, g.cylinders, g.heads, g.sectors, c, h, s);
		test_failures++;
	}
	if (vhd_geometry_bytes(&g) > bytes && bytes <= 65535ull * 16 * 255 * 512)
		CHECK(!"geometry larger than the size");
}

static void test_geometry(void)
{
	static const uint64_t edges[] = {
		65535ull * 16 * 63, 65535ull * 16 * 255, 1024ull * 4 * 17, 1024ull * 16 * 17,
		1024ull * 16 * 31, 1024ull * 16 * 63,
	};
	struct vhd_geometry g;

	for (uint64_t s = 512; s < (64u << 20); s += 512 * 37)
		check_geometry(s);
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		for (long d = -40; d <= 40; d++)
			check_geometry((uint64_t)((long long)edges[i] + d * 17) * 512);
	for (int i = 0; i < 200000; i++)
		check_geometry((rnd() % (VHD_MAX_DISK_SIZE / 512) + 1) * 512);
	/* Known values: what qemu-img writes for 1 GiB (rounded up to 2081
	 * cylinders by qemu itself, so 2080 for exactly 1 GiB), 10 MiB. */
	vhd_geometry_from_size(1ull << 30, &g);
	CHECK(g.cylinders == 2080 && g.heads == 16 && g.sectors == 63);
	vhd_geometry_from_size(10ull << 20, &g);
	CHECK(g.cylinders == 301 && g.heads == 4 && g.sectors == 17);
	vhd_geometry_from_size(VHD_MAX_DISK_SIZE, &g);
	CHECK(g.cylinders == 65535 && g.heads == 16 && g.sectors == 255);
	CHECK_EQ(vhd_geometry_bytes(&g), 65535ull * 16 * 255 * 512);
}

static void test_disk_size_rule(void)
{
	static const char *cur[] = { "win ", "qem2", "d2v ", "CTXS" };
	static const char *chs[] = { "vpc ", "qemu", "tap ", "vdsk", "wa\0\0" };
	struct vhd_footer f;
	uint64_t size = (1ull << 30) + 512;

	good_footer(&f, VHD_TYPE_DYNAMIC, size);
	CHECK(vhd_geometry_bytes(&f.geometry) != size);
	CHECK_EQ(vhd_footer_disk_size(&f), size);	/* "tap\0" */
	for (int i = 0; i < 4; i++) {
		memcpy(f.creator_app, cur[i], 4);
		CHECK_EQ(vhd_footer_disk_size(&f), size);
	}
	for (int i = 0; i < 5; i++) {
		memcpy(f.creator_app, chs[i], 4);
		CHECK_EQ(vhd_footer_disk_size(&f), 2080ull * 16 * 63 * 512);
	}
	/* The largest geometry means "CHS cannot say": current_size. */
	memcpy(f.creator_app, "vpc ", 4);
	f.current_size = 1ull << 40;
	f.geometry = (struct vhd_geometry){ 65535, 16, 255 };
	CHECK_EQ(vhd_footer_disk_size(&f), 1ull << 40);
	f.geometry.sectors = 254;
	CHECK_EQ(vhd_footer_disk_size(&f), 65535ull * 16 * 254 * 512);
}

static void test_footer(void)
{
	struct vhd_footer f, g;
	uint8_t buf[512], bad[512];
	char msg[256];

	good_footer(&f, VHD_TYPE_DYNAMIC, 5ull << 30);
	vhd_footer_encode(&f, buf);
	CHECK(memcmp(buf, "conectix", 8) == 0);
	CHECK(vhd_detect_footer(buf));
	CHECK_EQ(vhd_footer_parse(buf, &g, msg, sizeof(msg)), 0);
	g.checksum = f.checksum;
	CHECK(memcmp(&f, &g, sizeof(f)) == 0);
	/* The checksum by hand: one's complement of the sum of the other bytes. */
	{
		uint32_t sum = 0;

		for (int i = 0; i < 512; i++)
			if (i < 64 || i >= 68)
				sum += buf[i];
		CHECK_EQ(~sum, (uint32_t)buf[64] << 24 | buf[65] << 16 | buf[66] << 8 | buf[67]);
		CHECK_EQ(vhd_checksum(buf, 512, 64), ~sum);
	}
	/* Every single-byte change is caught (cookie, checksum or field). */
	for (int i = 0; i < 512; i++) {
		memcpy(bad, buf, 512);
		bad[i] ^= 0x01;
		if (vhd_footer_parse(bad, &g, msg, sizeof(msg)) != -EINVAL) {
			fprintf(stderr, "footer byte %d flipped: accepted\n", i);
			test_failures++;
		}
	}
	memcpy(bad, buf, 512);
	bad[67] ^= 0xff;
	vhd_footer_parse(bad, &g, msg, sizeof(msg));
	CHECK(strstr(msg, "footer checksum 0x") && strstr(msg, "!= computed 0x"));
	memcpy(bad, buf, 512);
	bad[0] = 'C';
	CHECK_EQ(vhd_footer_parse(bad, &g, msg, sizeof(msg)), -EINVAL);
	CHECK(strstr(msg, "cookie"));
	CHECK(!vhd_detect_footer(bad));
}

/* Re-encodes a modified footer (so the checksum is right) and parses it. */
static int parse_modified(struct vhd_footer *f, char *msg)
{
	uint8_t buf[512];
	struct vhd_footer g;

	vhd_footer_encode(f, buf);
	return vhd_footer_parse(buf, &g, msg, 256);
}

static void test_footer_hostile(void)
{
	struct vhd_footer f;
	uint8_t buf[512];
	char msg[256];

	for (uint32_t t = 0; t < 8; t++) {
		good_footer(&f, VHD_TYPE_DYNAMIC, 1 << 20);
		f.type = t;
		CHECK_EQ(parse_modified(&f, msg), t >= 2 && t <= 4 ? 0 : -EINVAL);
		vhd_footer_encode(&f, buf);
		CHECK(vhd_detect_footer(buf) == (t >= 2 && t <= 4));
	}
	CHECK(strstr(msg, "disk type 7"));
	good_footer(&f, VHD_TYPE_FIXED, 1 << 20);
	f.version = 0x00020000;
	CHECK_EQ(parse_modified(&f, msg), -EINVAL);
	CHECK(strstr(msg, "version"));
	good_footer(&f, VHD_TYPE_FIXED, 0);
	CHECK_EQ(parse_modified(&f, msg), -EINVAL);
	good_footer(&f, VHD_TYPE_FIXED, 1 << 20);
	f.current_size += 1;
	CHECK_EQ(parse_modified(&f, msg), -EINVAL);
	CHECK(strstr(msg, "multiple of 512"));
	good_footer(&f, VHD_TYPE_FIXED, VHD_MAX_DISK_SIZE);
	CHECK_EQ(parse_modified(&f, msg), 0);
	good_footer(&f, VHD_TYPE_FIXED, VHD_MAX_DISK_SIZE + 512);
	CHECK_EQ(parse_modified(&f, msg), -EFBIG);
	good_footer(&f, VHD_TYPE_FIXED, UINT64_MAX & ~511ull);
	CHECK_EQ(parse_modified(&f, msg), -EFBIG);
	/* A CHS creator with a zero geometry has no size. */
	good_footer(&f, VHD_TYPE_FIXED, 1 << 20);
	memcpy(f.creator_app, "vpc ", 4);
	f.geometry = (struct vhd_geometry){ 0, 16, 63 };
	CHECK_EQ(parse_modified(&f, msg), -EINVAL);
	CHECK(strstr(msg, "disk size"));
	good_footer(&f, VHD_TYPE_DIFF, 1 << 20);
	f.data_offset = VHD_NO_OFFSET;
	CHECK_EQ(parse_modified(&f, msg), -EINVAL);
	/* Detection: a stray cookie is not a footer; a zero sector is not. */
	memset(buf, 0, 512);
	CHECK(!vhd_detect_footer(buf));
	memcpy(buf, "conectix", 8);
	CHECK(!vhd_detect_footer(buf));
	for (int i = 8; i < 512; i++)
		buf[i] = (uint8_t)rnd();
	CHECK(!vhd_detect_footer(buf));
}

static int header_parse_modified(struct vhd_header *h, const struct vhd_footer *f, char *msg)
{
	uint8_t buf[1024];
	struct vhd_header g;

	vhd_header_encode(h, buf);
	return vhd_header_parse(buf, f, &g, msg, 256);
}

static void test_header(void)
{
	struct vhd_footer f;
	struct vhd_header h, g;
	uint8_t buf[1024], bad[1024];
	char msg[256];

	good_footer(&f, VHD_TYPE_DIFF, 3ull << 30);
	good_header(&h, f.current_size, 2 << 20);
	h.parent_timestamp = 777;
	memset(h.parent_uuid, 0xab, 16);
	CHECK_EQ(vhd_header_set_parent_name(&h, "parent.vhd"), 0);
	h.loc[0] = (struct vhd_locator){ VHD_PLAT_W2RU, 512, 20, 8192 };
	h.loc[1] = (struct vhd_locator){ VHD_PLAT_W2KU, 1, 40, 8704 };
	vhd_header_encode(&h, buf);
	CHECK(memcmp(buf, "cxsparse", 8) == 0);
	CHECK_EQ(vhd_header_parse(buf, &f, &g, msg, sizeof(msg)), 0);
	g.checksum = h.checksum;
	CHECK(memcmp(&g, &h, sizeof(h)) == 0);
	for (int i = 0; i < 1024; i += 7) {
		memcpy(bad, buf, 1024);
		bad[i] ^= 0x10;
		CHECK_EQ(vhd_header_parse(bad, &f, &g, msg, sizeof(msg)), -EINVAL);
	}
	memcpy(bad, buf, 1024);
	bad[36] ^= 1;
	vhd_header_parse(bad, &f, &g, msg, sizeof(msg));
	CHECK(strstr(msg, "header checksum"));
}

static void test_header_hostile(void)
{
	static const uint32_t bad_blocks[] = { 0, 1, 256, 3u << 20, (2u << 20) + 512,
					       512u << 20, 0x80000000u, 0xffffffffu };
	struct vhd_footer f;
	struct vhd_header h;
	char msg[256];

	good_footer(&f, VHD_TYPE_DYNAMIC, 3ull << 30);
	for (size_t i = 0; i < sizeof(bad_blocks) / sizeof(bad_blocks[0]); i++) {
		good_header(&h, f.current_size, 2 << 20);
		h.block_size = bad_blocks[i];
		CHECK_EQ(header_parse_modified(&h, &f, msg), -EINVAL);
		CHECK(strstr(msg, "block size"));
	}
	for (uint32_t b = 512; b <= (256u << 20); b <<= 1) {
		good_header(&h, f.current_size, b);
		CHECK_EQ(header_parse_modified(&h, &f, msg), 0);
	}
	/* 100 GiB in 4 KiB blocks would take a 100 MiB BAT. */
	good_footer(&f, VHD_TYPE_DYNAMIC, 100ull << 30);
	good_header(&h, f.current_size, 4096);
	CHECK_EQ(header_parse_modified(&h, &f, msg), -EINVAL);
	CHECK(strstr(msg, "over the limit"));
	good_footer(&f, VHD_TYPE_DYNAMIC, 3ull << 30);
	good_header(&h, f.current_size, 2 << 20);
	h.max_table_entries--;
	CHECK_EQ(header_parse_modified(&h, &f, msg), -EINVAL);
	CHECK(strstr(msg, "blocks needed"));
	h.max_table_entries = 0;
	CHECK_EQ(header_parse_modified(&h, &f, msg), -EINVAL);
	h.max_table_entries = 0xffffffff;
	CHECK_EQ(header_parse_modified(&h, &f, msg), -EINVAL);
	CHECK(strstr(msg, "over the limit"));
	h.max_table_entries = (uint32_t)(VHD_MAX_DISK_SIZE / (2 << 20));
	CHECK_EQ(header_parse_modified(&h, &f, msg), 0);	/* room to grow is fine */
	h.max_table_entries++;
	CHECK_EQ(header_parse_modified(&h, &f, msg), -EINVAL);
	good_header(&h, f.current_size, 2 << 20);
	h.version = 0x00020000;
	CHECK_EQ(header_parse_modified(&h, &f, msg), -EINVAL);
	good_header(&h, f.current_size, 2 << 20);
	h.table_offset = VHD_NO_OFFSET;
	CHECK_EQ(header_parse_modified(&h, &f, msg), -EINVAL);
	/* Locators of a differencing image. */
	f.type = VHD_TYPE_DIFF;
	good_header(&h, f.current_size, 2 << 20);
	h.loc[3] = (struct vhd_locator){ VHD_PLAT_W2KU, 1, 513, 8192 };
	CHECK_EQ(header_parse_modified(&h, &f, msg), -EINVAL);
	CHECK(strstr(msg, "parent locator 3"));
	h.loc[3] = (struct vhd_locator){ VHD_PLAT_W2KU, 1000, 100, 8192 };
	CHECK_EQ(header_parse_modified(&h, &f, msg), -EINVAL);
	h.loc[3] = (struct vhd_locator){ VHD_PLAT_W2KU, 0x7ffffe00, 0x7ffffe00, 8192 };
	CHECK_EQ(header_parse_modified(&h, &f, msg), -EINVAL);
	h.loc[3] = (struct vhd_locator){ VHD_PLAT_W2KU, 8, 4096, 8192 };
	CHECK_EQ(header_parse_modified(&h, &f, msg), 0);
	CHECK_EQ(vhd_locator_space(&h.loc[3]), 4096);
	h.loc[3].data_space = 4096;
	CHECK_EQ(vhd_locator_space(&h.loc[3]), 4096);
}

static int layout(const struct vhd_footer *f, const struct vhd_header *h, uint64_t fo,
		  uint64_t *end, char *msg)
{
	return vhd_layout_validate(f, h, fo, end, msg, 256);
}

static void test_layout(void)
{
	struct vhd_footer f;
	struct vhd_header h;
	uint64_t end = 0, fo;
	char msg[256];

	good_footer(&f, VHD_TYPE_DIFF, 1ull << 30);
	good_header(&h, f.current_size, 2 << 20);	/* 512 entries: BAT ends at 3584 */
	fo = 3584;
	CHECK_EQ(layout(&f, &h, fo, &end, msg), 0);
	CHECK_EQ(end, 3584);
	CHECK_EQ(layout(&f, &h, fo - 1, &end, msg), -EINVAL);
	CHECK(strstr(msg, "BAT at offset 1536") && strstr(msg, "past the end"));
	h.loc[2] = (struct vhd_locator){ VHD_PLAT_MACX, 1, 100, 3584 };
	CHECK_EQ(layout(&f, &h, 3684, &end, msg), 0);
	CHECK_EQ(end, 4096);
	CHECK_EQ(layout(&f, &h, 3683, &end, msg), -EINVAL);
	CHECK(strstr(msg, "parent locator 2"));
	h.loc[2].data_offset = 3000;	/* inside the BAT */
	CHECK_EQ(layout(&f, &h, 1 << 20, &end, msg), -EINVAL);
	CHECK(strstr(msg, "overlaps"));
	h.loc[2].data_offset = UINT64_MAX - 50;	/* would wrap */
	CHECK_EQ(layout(&f, &h, UINT64_MAX - 1, &end, msg), -EINVAL);
	h.loc[2].data_offset = 4096;
	h.table_offset = 1000;	/* overlaps the header at 512..1536 */
	CHECK_EQ(layout(&f, &h, 1 << 20, &end, msg), -EINVAL);
	CHECK(strstr(msg, "overlaps"));
	h.table_offset = UINT64_MAX - 100;
	CHECK_EQ(layout(&f, &h, 1 << 20, &end, msg), -EINVAL);
	CHECK_EQ(layout(&f, &h, UINT64_MAX, &end, msg), -EINVAL);
	h.table_offset = 0;	/* on top of the footer copy */
	CHECK_EQ(layout(&f, &h, 1 << 20, &end, msg), -EINVAL);
	CHECK(strstr(msg, "footer copy"));
	h.table_offset = 1536;
	f.data_offset = 100;
	CHECK_EQ(layout(&f, &h, 1 << 20, &end, msg), -EINVAL);
	f.data_offset = (1 << 20) - 1000;
	CHECK_EQ(layout(&f, &h, 1 << 20, &end, msg), -EINVAL);
	CHECK(strstr(msg, "dynamic header"));
	/* Locators are ignored for a dynamic image (nobody reads them). */
	f.data_offset = 512;
	f.type = VHD_TYPE_DYNAMIC;
	h.loc[2].data_offset = 3000;
	CHECK_EQ(layout(&f, &h, 3584, &end, msg), 0);
}

static void test_bat(void)
{
	uint8_t bat[4096];
	char msg[256];
	uint64_t span = 512 + (2 << 20), meta = 4096, fo = meta + 3 * span;

	CHECK_EQ(vhd_bat_bytes(0), 0);
	CHECK_EQ(vhd_bat_bytes(1), 512);
	CHECK_EQ(vhd_bat_bytes(128), 512);
	CHECK_EQ(vhd_bat_bytes(129), 1024);
	CHECK_EQ(vhd_bat_bytes(0xffffffff), 0x400000000ull);
	memset(bat, 0xff, sizeof(bat));
	CHECK_EQ(vhd_bat_get(bat, 7), VHD_BAT_UNUSED);
	vhd_bat_set(bat, 7, 0x01020304);
	CHECK(bat[28] == 1 && bat[29] == 2 && bat[30] == 3 && bat[31] == 4);
	CHECK_EQ(vhd_bat_get(bat, 7), 0x01020304);
	memset(bat, 0xff, sizeof(bat));
	vhd_bat_set(bat, 0, (uint32_t)(meta / 512));
	vhd_bat_set(bat, 5, (uint32_t)((meta + span) / 512));
	vhd_bat_set(bat, 17, (uint32_t)((meta + 2 * span) / 512));
	CHECK_EQ(vhd_bat_check(bat, 1024, 2 << 20, meta, fo, msg, sizeof(msg)), 0);
	CHECK_EQ(vhd_bat_check(bat, 1024, 2 << 20, meta, fo - 1, msg, sizeof(msg)), -EINVAL);
	CHECK(strstr(msg, "BAT entry 17") && strstr(msg, "points past the end of the file"));
	vhd_bat_set(bat, 17, 0xfffffffe);
	CHECK_EQ(vhd_bat_check(bat, 1024, 2 << 20, meta, fo, msg, sizeof(msg)), -EINVAL);
	CHECK(strstr(msg, "BAT entry 17"));
	vhd_bat_set(bat, 17, 3);
	CHECK_EQ(vhd_bat_check(bat, 1024, 2 << 20, meta, fo, msg, sizeof(msg)), -EINVAL);
	CHECK(strstr(msg, "BAT entry 17") && strstr(msg, "into the metadata"));
}

/* Random footers and headers with a right cookie and checksum (so the
 * field checks are reached): parsing never crashes (ASan/UBSan watch),
 * and whatever is accepted obeys the documented bounds. */
static void test_random_hostile(void)
{
	uint8_t fb[512], hb[1024];
	struct vhd_footer f;
	struct vhd_header h;
	uint64_t end;
	uint32_t sum;
	int ok_f = 0, ok_h = 0;

	for (int iter = 0; iter < 200000; iter++) {
		good_footer(&f, (enum vhd_type)(2 + iter % 3), (rnd() % 4096 + 1) * 512);
		vhd_footer_encode(&f, fb);
		for (int k = rnd() % 4; k >= 0; k--)
			fb[8 + rnd() % 80] = (uint8_t)rnd();
		sum = vhd_checksum(fb, 512, 64);
		fb[64] = sum >> 24, fb[65] = sum >> 16, fb[66] = sum >> 8, fb[67] = (uint8_t)sum;
		if (vhd_footer_parse(fb, &f, NULL, 0))
			continue;
		ok_f++;
		CHECK(vhd_footer_disk_size(&f) && vhd_footer_disk_size(&f) <= VHD_MAX_DISK_SIZE);
		if (f.type == VHD_TYPE_FIXED)
			continue;
		good_header(&h, vhd_footer_disk_size(&f), 1u << (9 + rnd() % 20));
		h.loc[0] = (struct vhd_locator){ VHD_PLAT_W2KU, 1, 100, 1536 };
		vhd_header_encode(&h, hb);
		for (int k = rnd() % 4; k >= 0; k--)
			hb[8 + rnd() % 760] = (uint8_t)rnd();
		sum = vhd_checksum(hb, 1024, 36);
		hb[36] = sum >> 24, hb[37] = sum >> 16, hb[38] = sum >> 8, hb[39] = (uint8_t)sum;
		if (vhd_header_parse(hb, &f, &h, NULL, 0))
			continue;
		ok_h++;
		CHECK(h.block_size >= VHD_BLOCK_MIN && h.block_size <= VHD_BLOCK_MAX);
		CHECK((uint64_t)h.max_table_entries * h.block_size >= vhd_footer_disk_size(&f));
		CHECK(h.max_table_entries <= VHD_MAX_BAT_ENTRIES);
		if (!vhd_layout_validate(&f, &h, rnd() % (1ull << (rnd() % 64)), &end, NULL, 0))
			CHECK(end % 512 == 0 && end >= h.table_offset + 4ull * h.max_table_entries);
	}
	/* The mutations must leave some images valid, or nothing was tested. */
	CHECK(ok_f > 1000 && ok_h > 100);
}

static void test_time(void)
{
	CHECK_EQ(vhd_time_from_unix(VHD_EPOCH), 0);
	CHECK_EQ(vhd_time_from_unix(0), 0);
	CHECK_EQ(vhd_time_from_unix(VHD_EPOCH + 5), 5);
	CHECK_EQ(vhd_time_from_unix(VHD_EPOCH + 0x100000000ll), UINT32_MAX);
	CHECK_EQ(vhd_time_to_unix(5), VHD_EPOCH + 5);
}

int main(void)
{
	test_geometry();
	test_disk_size_rule();
	test_footer();
	test_footer_hostile();
	test_header();
	test_header_hostile();
	test_layout();
	test_bat();
	test_random_hostile();
	test_time();
	return test_done("test-vhd-format");
}
