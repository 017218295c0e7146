/* Image files (drivers/vhd-create.c, drivers/vhd-probe.c): what vhd_create
 * writes, byte for byte where it matters; refusing to overwrite and
 * leaving nothing behind on bad arguments; differencing children of VHD
 * and raw parents with their UUID, timestamp, name and locators; and
 * vhd_probe_file on damaged files (truncated, stray cookie, lost footer,
 * 511-byte footer, bad header, BAT past the end).  Interop with qemu-img
 * and libvhdi is in test-vhd-interop.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "drivers/vhd-create.h"
#include "drivers/vhd-format.h"
#include "drivers/vhd-probe.h"
#include "tests/lib/test.h"

static char tmpdir[] = "/tmp/test-vhd-image.XXXXXX";

static const char *tpath(const char *name)
{
	static char buf[4][512];
	static int n;
	char *p = buf[n++ % 4];

	snprintf(p, 512, "%s/%s", tmpdir, name);
	return p;
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX;
}

static void read_at(const char *path, void *buf, size_t len, uint64_t off)
{
	int fd = open(path, O_RDONLY);

	REQUIRE(fd >= 0);
	REQUIRE(vd_pread_all(fd, buf, len, off) == 0);
	close(fd);
}

static void write_at(const char *path, const void *buf, size_t len, uint64_t off)
{
	int fd = open(path, O_WRONLY);

	REQUIRE(fd >= 0);
	REQUIRE(vd_pwrite_all(fd, buf, len, off) == 0);
	close(fd);
}

static void copy_file(const char *from, const char *to)
{
	static char buf[1 << 16];
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ssize_t n;

	REQUIRE(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		REQUIRE(write(out, buf, (size_t)n) == n);
	close(in);
	close(out);
}

static void test_relative_path(void)
{
	static const char *cases[][3] = {
		{ "/a/b", "/a/b/p.vhd", "./p.vhd" },
		{ "/a/b", "/a/c/p.vhd", "../c/p.vhd" },
		{ "/a/b/c", "/x/p.vhd", "../../../x/p.vhd" },
		{ "/", "/p.vhd", "./p.vhd" },
		{ "/a", "/a/b/c/p.vhd", "./b/c/p.vhd" },
		{ "/a/bc", "/a/b/p.vhd", "../b/p.vhd" },	/* not a component prefix */
		{ "/a/b", "/a/bc", "../bc" },
		{ "/a/b", "/a/b", "../b" },
	};
	char out[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_EQ(vhd_relative_path(cases[i][0], cases[i][1], out, sizeof(out)), 0);
		if (strcmp(out, cases[i][2])) {
			fprintf(stderr, "relative(%s, %s) = %s, want %s\n", cases[i][0],
				cases[i][1], out, cases[i][2]);
			test_failures++;
		}
	}
	CHECK_EQ(vhd_relative_path("/a/b/c", "/x/p.vhd", out, 12), -ENAMETOOLONG);
}

static void test_create_dynamic(void)
{
	const char *p = tpath("dyn.vhd");
	struct vhd_image_meta m;
	uint8_t first[512], last[512], bat[2560];
	char msg[256];

	CHECK_EQ(vhd_create(p, (1ull << 30) + 512, VHD_TYPE_DYNAMIC, 0, NULL, msg, 256), 0);
	CHECK_EQ(file_size(p), 4096 + 512);
	read_at(p, first, 512, 0);
	read_at(p, last, 512, 4096);
	CHECK(memcmp(first, last, 512) == 0);
	CHECK(memcmp(first + 28, "tap\0", 4) == 0);
	CHECK_EQ(vhd_probe_file(p, &m, msg, sizeof(msg)), 0);
	CHECK_EQ(m.footer.type, VHD_TYPE_DYNAMIC);
	CHECK_EQ(m.disk_size, (1ull << 30) + 512);
	CHECK_EQ(m.footer.current_size, (1ull << 30) + 512);
	CHECK_EQ(m.footer_offset, 4096);
	CHECK(!m.footer_from_copy && !m.footer_copy_differs && !m.short_footer);
	CHECK_EQ(m.bat_offset, 1536);
	CHECK_EQ(m.bat_entries, 513);
	CHECK_EQ(m.block_size, 2 << 20);
	CHECK_EQ(m.bitmap_bytes, 512);
	CHECK_EQ(m.meta_end, 4096);
	read_at(p, bat, sizeof(bat), 1536);
	for (size_t i = 0; i < sizeof(bat); i++)
		if (bat[i] != 0xff) {
			CHECK(!"BAT not all 0xFF");
			break;
		}
	CHECK_EQ(vhd_bat_check(bat, m.bat_entries, m.block_size, m.meta_end, m.footer_offset,
			       msg, sizeof(msg)), 0);
	/* Never overwrite. */
	CHECK_EQ(vhd_create(p, 1 << 20, VHD_TYPE_FIXED, 0, NULL, msg, 256), -EEXIST);
	CHECK(strstr(msg, p));
	CHECK_EQ(file_size(p), 4096 + 512);
	/* Other block sizes. */
	CHECK_EQ(vhd_create(tpath("dyn512k.vhd"), 5 << 20, VHD_TYPE_DYNAMIC, 512 << 10, NULL,
			    msg, 256), 0);
	CHECK_EQ(vhd_probe_file(tpath("dyn512k.vhd"), &m, msg, sizeof(msg)), 0);
	CHECK_EQ(m.block_size, 512 << 10);
	CHECK_EQ(m.bat_entries, 10);
}

static void test_create_fixed(void)
{
	const char *p = tpath("fixed.vhd");
	struct vhd_image_meta m;
	uint8_t last[512];
	char msg[256];

	CHECK_EQ(vhd_create(p, (10 << 20) + 512, VHD_TYPE_FIXED, 0, NULL, msg, 256), 0);
	CHECK_EQ(file_size(p), (10 << 20) + 1024);
	read_at(p, last, 512, (10 << 20) + 512);
	CHECK(vhd_detect_footer(last));
	CHECK_EQ(vhd_probe_file(p, &m, msg, sizeof(msg)), 0);
	CHECK_EQ(m.footer.type, VHD_TYPE_FIXED);
	CHECK_EQ(m.disk_size, (10 << 20) + 512);
	CHECK_EQ(m.footer.data_offset, VHD_NO_OFFSET);
	CHECK_EQ(m.bat_entries, 0);
}

static void test_create_bad_args(void)
{
	static const struct { uint64_t size; int type; uint32_t block; int err; } bad[] = {
		{ 0, VHD_TYPE_DYNAMIC, 0, -EINVAL },
		{ 1000, VHD_TYPE_DYNAMIC, 0, -EINVAL },
		{ 1000, VHD_TYPE_FIXED, 0, -EINVAL },
		{ VHD_MAX_DISK_SIZE + 512, VHD_TYPE_DYNAMIC, 0, -EFBIG },
		{ 1 << 20, VHD_TYPE_DYNAMIC, 3 << 20, -EINVAL },
		{ 1 << 20, VHD_TYPE_DYNAMIC, 256, -EINVAL },
		{ 100ull << 30, VHD_TYPE_DYNAMIC, 4096, -EINVAL },	/* BAT too big */
		{ 1 << 20, VHD_TYPE_DIFF, 0, -EINVAL },			/* no parent */
		{ 1 << 20, 1, 0, -EINVAL },
	};
	char msg[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msg[0] = 0;
		CHECK_EQ(vhd_create(tpath("bad.vhd"), bad[i].size, bad[i].type, bad[i].block, NULL,
				    msg, sizeof(msg)), bad[i].err);
		CHECK(msg[0]);
		CHECK_EQ(access(tpath("bad.vhd"), F_OK), -1);
	}
	CHECK_EQ(vhd_create(tpath("bad.vhd"), 1 << 20, VHD_TYPE_DYNAMIC, 0, tpath("dyn.vhd"),
			    msg, sizeof(msg)), -EINVAL);
	CHECK_EQ(vhd_create(tpath("nodir/x.vhd"), 1 << 20, VHD_TYPE_DYNAMIC, 0, NULL, msg,
			    sizeof(msg)), -ENOENT);
}

/* Reads locator i's data from the file and decodes it. */
static void locator_path(const char *p, const struct vhd_header *h, int i, char *out)
{
	uint8_t data[8192];
	char msg[256];

	REQUIRE(h->loc[i].data_length <= sizeof(data));
	read_at(p, data, h->loc[i].data_length, h->loc[i].data_offset);
	CHECK_EQ(vhd_locator_decode(h->loc[i].code, data, h->loc[i].data_length, out, 4096,
				    msg, sizeof(msg)), 0);
}

static void test_create_diff(void)
{
	const char *parent = tpath("sub/parent.vhd"), *child = tpath("child.vhd");
	struct timespec times[2] = { { 1600000000, 0 }, { 1600000000, 0 } };
	struct vhd_image_meta pm, m;
	char msg[256], name[512], path[4096], abs[4096];

	REQUIRE(mkdir(tpath("sub"), 0755) == 0);
	CHECK_EQ(vhd_create(parent, 64 << 20, VHD_TYPE_DYNAMIC, 0, NULL, msg, 256), 0);
	REQUIRE(utimensat(AT_FDCWD, parent, times, 0) == 0);
	CHECK_EQ(vhd_probe_file(parent, &pm, msg, sizeof(msg)), 0);
	CHECK_EQ(vhd_create(child, 1 << 20, VHD_TYPE_DIFF, 0, parent, msg, 256), -EINVAL);
	CHECK(strstr(msg, "differs from the parent"));
	CHECK_EQ(vhd_create(child, 0, VHD_TYPE_DIFF, 0, parent, msg, 256), 0);
	CHECK_EQ(vhd_probe_file(child, &m, msg, sizeof(msg)), 0);
	CHECK_EQ(m.footer.type, VHD_TYPE_DIFF);
	CHECK_EQ(m.disk_size, 64 << 20);
	CHECK(memcmp(m.header.parent_uuid, pm.footer.uuid, 16) == 0);
	CHECK(memcmp(m.footer.uuid, pm.footer.uuid, 16) != 0);
	CHECK_EQ(m.header.parent_timestamp, 1600000000 - VHD_EPOCH);
	CHECK_EQ(vhd_header_parent_name(&m.header, name, sizeof(name)), 0);
	CHECK(strcmp(name, "parent.vhd") == 0);
	CHECK_EQ(m.header.loc[0].code, VHD_PLAT_W2RU);
	CHECK_EQ(m.header.loc[1].code, VHD_PLAT_W2KU);
	CHECK_EQ(m.header.loc[2].code, VHD_PLAT_MACX);
	REQUIRE(realpath(parent, abs));
	locator_path(child, &m.header, 0, path);
	CHECK(strcmp(path, "./sub/parent.vhd") == 0);
	locator_path(child, &m.header, 1, path);
	CHECK(strcmp(path, abs) == 0);
	locator_path(child, &m.header, 2, path);
	CHECK(strcmp(path, abs) == 0);
	/* Locators sit between the header and the BAT (see vhd-create.h). */
	CHECK_EQ(m.header.loc[0].data_offset, 1536);
	CHECK(m.header.loc[2].data_offset < m.bat_offset);
	CHECK_EQ(m.bat_offset, m.header.loc[2].data_offset + 512);
	CHECK_EQ(m.meta_end, m.footer_offset);
	/* A grandchild, with a relative path upwards. */
	CHECK_EQ(vhd_create(tpath("sub/grandchild.vhd"), 64 << 20, VHD_TYPE_DIFF, 512 << 10,
			    child, msg, 256), 0);
	CHECK_EQ(vhd_probe_file(tpath("sub/grandchild.vhd"), &pm, msg, sizeof(msg)), 0);
	CHECK(memcmp(pm.header.parent_uuid, m.footer.uuid, 16) == 0);
	locator_path(tpath("sub/grandchild.vhd"), &pm.header, 0, path);
	CHECK(strcmp(path, "../child.vhd") == 0);
	/* A parent that is missing. */
	CHECK_EQ(vhd_create(tpath("orphan.vhd"), 0, VHD_TYPE_DIFF, 0, tpath("none.vhd"), msg,
			    256), -ENOENT);
	CHECK(access(tpath("orphan.vhd"), F_OK) == -1);
}

static void test_create_diff_raw(void)
{
	const char *raw = tpath("base.raw"), *child = tpath("rawchild.vhd");
	struct vhd_image_meta m;
	uint8_t zero[16] = { 0 };
	char msg[256], name[512];
	int fd = open(raw, O_WRONLY | O_CREAT | O_EXCL, 0644);

	REQUIRE(fd >= 0 && ftruncate(fd, 3 << 20) == 0);
	close(fd);
	CHECK_EQ(vhd_create(child, 0, VHD_TYPE_DIFF, 0, raw, msg, 256), 0);
	CHECK_EQ(vhd_probe_file(child, &m, msg, sizeof(msg)), 0);
	CHECK_EQ(m.disk_size, 3 << 20);
	CHECK(memcmp(m.header.parent_uuid, zero, 16) == 0);
	CHECK_EQ(vhd_header_parent_name(&m.header, name, sizeof(name)), 0);
	CHECK(strcmp(name, "base.raw") == 0);
	/* A raw parent must be whole sectors. */
	fd = open(tpath("odd.raw"), O_WRONLY | O_CREAT | O_EXCL, 0644);
	REQUIRE(fd >= 0 && ftruncate(fd, 1000) == 0);
	close(fd);
	CHECK_EQ(vhd_create(tpath("oddchild.vhd"), 0, VHD_TYPE_DIFF, 0, tpath("odd.raw"), msg,
			    256), -EINVAL);
	CHECK(strstr(msg, "raw parent"));
	/* A parent that looks like a VHD but is broken is not taken for raw. */
	copy_file(tpath("dyn.vhd"), tpath("broken.vhd"));
	write_at(tpath("broken.vhd"), "XXXXXXXX", 8, 512);	/* header cookie */
	CHECK_EQ(vhd_create(tpath("brokenchild.vhd"), 0, VHD_TYPE_DIFF, 0, tpath("broken.vhd"),
			    msg, 256), -EINVAL);
	CHECK(strstr(msg, "header cookie"));
}

static int probe(const char *name, struct vhd_image_meta *m, char *msg)
{
	return vhd_probe_file(tpath(name), m, msg, 256);
}

static void test_probe_damaged(void)
{
	struct vhd_image_meta m;
	uint8_t buf[512] = { 0 };
	char msg[256];
	int fd;

	/* Too small; a raw file that ends in a stray cookie. */
	fd = open(tpath("small"), O_WRONLY | O_CREAT, 0644);
	REQUIRE(fd >= 0 && write(fd, buf, 100) == 100);
	close(fd);
	CHECK_EQ(probe("small", &m, msg), -EINVAL);
	CHECK(strstr(msg, "too small"));
	fd = open(tpath("stray.raw"), O_WRONLY | O_CREAT, 0644);
	REQUIRE(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
	close(fd);
	write_at(tpath("stray.raw"), "conectix", 8, (1 << 20) - 512);
	read_at(tpath("stray.raw"), buf, 512, (1 << 20) - 512);
	CHECK(!vhd_detect_footer(buf));
	CHECK_EQ(probe("stray.raw", &m, msg), -EINVAL);
	CHECK(strstr(msg, "footer checksum"));
	/* Dynamic image whose end footer is lost: the copy at 0 stands in. */
	copy_file(tpath("dyn.vhd"), tpath("lost.vhd"));
	memset(buf, 0, sizeof(buf));
	write_at(tpath("lost.vhd"), buf, 512, 4096);
	CHECK_EQ(probe("lost.vhd", &m, msg), 0);
	CHECK(m.footer_from_copy);
	CHECK_EQ(m.footer_offset, 4608);
	CHECK_EQ(m.disk_size, (1ull << 30) + 512);
	/* ... and the copy differing from a good end footer is reported. */
	copy_file(tpath("dyn.vhd"), tpath("differs.vhd"));
	write_at(tpath("differs.vhd"), buf, 512, 0);
	CHECK_EQ(probe("differs.vhd", &m, msg), 0);
	CHECK(m.footer_copy_differs && !m.footer_from_copy);
	/* A fixed image has no copy. */
	copy_file(tpath("fixed.vhd"), tpath("fixedbad.vhd"));
	write_at(tpath("fixedbad.vhd"), "x", 1, (10 << 20) + 512 + 100);
	CHECK_EQ(probe("fixedbad.vhd", &m, msg), -EINVAL);
	CHECK(strstr(msg, "fixedbad.vhd: footer checksum"));
	/* Old Virtual PC: a 511-byte footer. */
	copy_file(tpath("fixed.vhd"), tpath("short.vhd"));
	REQUIRE(truncate(tpath("short.vhd"), (10 << 20) + 1023) == 0);
	CHECK_EQ(probe("short.vhd", &m, msg), 0);
	CHECK(m.short_footer);
	CHECK_EQ(m.footer_offset, (10 << 20) + 512);
	/* Truncated inside the BAT (both footers then disagree on nothing:
	 * the copy is used, and the BAT does not fit). */
	copy_file(tpath("dyn.vhd"), tpath("trunc.vhd"));
	REQUIRE(truncate(tpath("trunc.vhd"), 2048) == 0);
	CHECK_EQ(probe("trunc.vhd", &m, msg), -EINVAL);
	CHECK(strstr(msg, "BAT at offset 1536"));
	/* A fixed image shorter than its size. */
	copy_file(tpath("fixed.vhd"), tpath("fixedshort.vhd"));
	read_at(tpath("fixed.vhd"), buf, 512, (10 << 20) + 512);
	REQUIRE(truncate(tpath("fixedshort.vhd"), 1 << 20) == 0);
	write_at(tpath("fixedshort.vhd"), buf, 512, 1 << 20);
	CHECK_EQ(probe("fixedshort.vhd", &m, msg), -EINVAL);
	CHECK(strstr(msg, "does not fit"));
	/* Header damage. */
	copy_file(tpath("dyn.vhd"), tpath("hdr.vhd"));
	write_at(tpath("hdr.vhd"), "\x01", 1, 512 + 600);
	CHECK_EQ(probe("hdr.vhd", &m, msg), -EINVAL);
	CHECK(strstr(msg, "header checksum"));
	/* A BAT entry past the end: probe is fine, the BAT check is not. */
	{
		uint8_t bat[2560];

		copy_file(tpath("dyn.vhd"), tpath("bat.vhd"));
		write_at(tpath("bat.vhd"), "\x00\x00\x00\x08", 4, 1536 + 4 * 3);
		CHECK_EQ(probe("bat.vhd", &m, msg), 0);
		read_at(tpath("bat.vhd"), bat, sizeof(bat), m.bat_offset);
		CHECK_EQ(vhd_bat_check(bat, m.bat_entries, m.block_size, m.meta_end,
				       m.footer_offset, msg, sizeof(msg)), -EINVAL);
		CHECK(strstr(msg, "BAT entry 3"));
	}
	CHECK_EQ(probe("missing.vhd", &m, msg), -ENOENT);
}

int main(void)
{
	int status;
	char cmd[600];

	REQUIRE(mkdtemp(tmpdir));
	test_relative_path();
	test_create_dynamic();
	test_create_fixed();
	test_create_bad_args();
	test_create_diff();
	test_create_diff_raw();
	test_probe_damaged();
	status = test_done("test-vhd-image");
	if (!status) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
	return status;
}
