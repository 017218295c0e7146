/* VHD images against other implementations, when they are installed
 * (Debian: qemu-utils, libvhdi-utils):
 *  - qemu-img reads the images vhd_create makes (dynamic, fixed,
 *    differencing; sizes that CHS cannot express) at exactly the size we
 *    wrote; qemu-io writes into them, reads its data back, and our probe
 *    and BAT check still accept the result;
 *  - vhd_probe_file reads images that qemu-img makes (dynamic, fixed, and
 *    force_size) at the size qemu reports;
 *  - vhdiinfo parses our dynamic, fixed and differencing images, with the
 *    parent's UUID and name.
 * A missing tool is reported as "skip: ..."; with neither tool there is
 * nothing to test and the program exits 77. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <uuid/uuid.h>

#include "drivers/vhd-create.h"
#include "drivers/vhd-format.h"
#include "drivers/vhd-probe.h"
#include "tests/lib/test.h"

static char tmpdir[] = "/tmp/test-vhd-interop.XXXXXX";
static bool qemu_check_unsupported;

static const char *tpath(const char *name)
{
	static char buf[4][512];
	static int n;
	char *p = buf[n++ % 4];

	snprintf(p, 512, "%s/%s", tmpdir, name);
	return p;
}

static bool have(const char *tool)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
	return system(cmd) == 0;
}

/* Runs a shell command; its stdout (truncated to len) goes to out.
 * Returns the exit status, or -1. */
static int run(const char *cmd, char *out, size_t len)
{
	FILE *f = popen(cmd, "r");
	size_t n = 0;
	int st;

	if (!f)
		return -1;
	if (out && len) {
		n = fread(out, 1, len - 1, f);
		out[n] = 0;
	}
	while (fgetc(f) != EOF)
		;
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int64_t qemu_virtual_size(const char *path)
{
	char cmd[700], out[4096], *p;

	snprintf(cmd, sizeof(cmd), "qemu-img info -f vpc --output=json '%s' 2>&1", path);
	if (run(cmd, out, sizeof(out)) != 0) {
		fprintf(stderr, "%s failed: %s\n", cmd, out);
		return -1;
	}
	p = strstr(out, "\"virtual-size\":");
	return p ? strtoll(p + 15, NULL, 10) : -1;
}

/* qemu's vpc driver has no check; 63 says so.  Anything else must be 0. */
static void qemu_check(const char *path)
{
	char cmd[700], out[1024];
	int st;

	snprintf(cmd, sizeof(cmd), "qemu-img check -f vpc '%s' 2>&1", path);
	st = run(cmd, out, sizeof(out));
	if (st == 63)
		qemu_check_unsupported = true;
	else if (st != 0) {
		fprintf(stderr, "%s: status %d: %s\n", cmd, st, out);
		test_failures++;
	}
}

static void qemu_io(const char *path, const char *ops)
{
	char cmd[1024], out[4096];

	snprintf(cmd, sizeof(cmd), "qemu-io -f vpc %s '%s' 2>&1", ops, path);
	if (run(cmd, out, sizeof(out)) != 0 || strstr(out, "fail") || strstr(out, "error")) {
		fprintf(stderr, "%s: %s\n", cmd, out);
		test_failures++;
	}
}

/* Our probe and BAT check accept the image, at the given size. */
static void probe_ok(const char *path, uint64_t size)
{
	struct vhd_image_meta m;
	char msg[256];
	uint8_t *bat;
	FILE *f;

	if (vhd_probe_file(path, &m, msg, sizeof(msg))) {
		fprintf(stderr, "probe: %s\n", msg);
		test_failures++;
		return;
	}
	CHECK_EQ(m.disk_size, size);
	if (m.footer.type == VHD_TYPE_FIXED)
		return;
	bat = malloc(vhd_bat_bytes(m.bat_entries));
	f = fopen(path, "r");
	REQUIRE(bat && f && fseek(f, (long)m.bat_offset, SEEK_SET) == 0);
	REQUIRE(fread(bat, 4, m.bat_entries, f) == m.bat_entries);
	fclose(f);
	if (vhd_bat_check(bat, m.bat_entries, m.block_size, m.meta_end, m.footer_offset, msg,
			  sizeof(msg))) {
		fprintf(stderr, "%s: %s\n", path, msg);
		test_failures++;
	}
	free(bat);
}

/* qemu's writes left the parent locators alone. */
static void locators_intact(const char *child, const char *parent)
{
	struct vhd_image_meta m;
	uint8_t data[8192];
	char msg[256], path[4096], abs[4096];
	FILE *f;

	REQUIRE(realpath(parent, abs));
	REQUIRE(vhd_probe_file(child, &m, msg, sizeof(msg)) == 0);
	f = fopen(child, "r");
	REQUIRE(f && m.header.loc[1].data_length <= sizeof(data));
	REQUIRE(fseek(f, (long)m.header.loc[1].data_offset, SEEK_SET) == 0);
	REQUIRE(fread(data, 1, m.header.loc[1].data_length, f) == m.header.loc[1].data_length);
	fclose(f);
	CHECK_EQ(vhd_locator_decode(m.header.loc[1].code, data, m.header.loc[1].data_length,
				    path, sizeof(path), msg, sizeof(msg)), 0);
	CHECK(strcmp(path, abs) == 0);
}

static void ours_to_qemu(void)
{
	static const struct { uint64_t size; enum vhd_type type; uint32_t block; } cases[] = {
		{ 1 << 20, VHD_TYPE_DYNAMIC, 0 },
		{ (10 << 20) + 512, VHD_TYPE_DYNAMIC, 0 },
		{ 1ull << 30, VHD_TYPE_DYNAMIC, 0 },
		{ (1ull << 30) + 512, VHD_TYPE_DYNAMIC, 512 << 10 },
		{ 65535ull * 16 * 255 * 512, VHD_TYPE_DYNAMIC, 0 },	/* the CHS maximum */
		{ 130ull << 30, VHD_TYPE_DYNAMIC, 0 },			/* past it */
		{ VHD_MAX_DISK_SIZE, VHD_TYPE_DYNAMIC, 0 },
		{ 1 << 20, VHD_TYPE_FIXED, 0 },
		{ (10 << 20) + 512, VHD_TYPE_FIXED, 0 },
		{ (3ull << 30) - 512, VHD_TYPE_FIXED, 0 },
	};
	char name[64], msg[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p;
		int64_t got;

		snprintf(name, sizeof(name), "ours-%zu.vhd", i);
		p = tpath(name);
		if (vhd_create(p, cases[i].size, cases[i].type, cases[i].block, NULL, msg,
			       sizeof(msg))) {
			fprintf(stderr, "create: %s\n", msg);
			test_failures++;
			continue;
		}
		got = qemu_virtual_size(p);
		if (got != (int64_t)cases[i].size) {
			fprintf(stderr, "%s (type %d): qemu-img says %" PRId64 ", we wrote %"
				PRIu64 "\n", name, cases[i].type, got, cases[i].size);
			test_failures++;
		}
		qemu_check(p);
	}
	/* qemu allocates blocks in our layout and reads its data back. */
	qemu_io(tpath("ours-3.vhd"), "-c 'write -P 0xab 1M 3M' -c 'write -P 0xcd 1073741824 512'");
	qemu_io(tpath("ours-3.vhd"), "-c 'read -P 0xab 1M 3M' -c 'read -P 0xcd 1073741824 512'"
		" -c 'read -P 0 0 1M'");
	probe_ok(tpath("ours-3.vhd"), (1ull << 30) + 512);
	/* A differencing child: qemu reads it as a dynamic disk of the
	 * parent's size (it does not follow VHD parents). */
	if (vhd_create(tpath("child.vhd"), 0, VHD_TYPE_DIFF, 0, tpath("ours-3.vhd"), msg,
		       sizeof(msg))) {
		fprintf(stderr, "create child: %s\n", msg);
		test_failures++;
		return;
	}
	CHECK_EQ(qemu_virtual_size(tpath("child.vhd")), (1ull << 30) + 512);
	qemu_check(tpath("child.vhd"));
	qemu_io(tpath("child.vhd"), "-c 'write -P 0x5a 2M 64k'");
	qemu_io(tpath("child.vhd"), "-c 'read -P 0x5a 2M 64k'");
	probe_ok(tpath("child.vhd"), (1ull << 30) + 512);
	locators_intact(tpath("child.vhd"), tpath("ours-3.vhd"));
}

static void qemu_to_ours(void)
{
	static const struct { const char *size, *opts; } cases[] = {
		{ "1G", "" }, { "10M", "" }, { "100000000", "" }, { "130G", "" },
		{ "1G", "-o subformat=fixed" }, { "10M", "-o subformat=fixed" },
		{ "1G", "-o force_size=on" }, { "1G", "-o subformat=fixed,force_size=on" },
	};
	char cmd[700], out[1024], name[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p;
		int64_t qsize;

		snprintf(name, sizeof(name), "qemu-%zu.vhd", i);
		p = tpath(name);
		snprintf(cmd, sizeof(cmd), "qemu-img create -q -f vpc %s '%s' %s 2>&1",
			 cases[i].opts, p, cases[i].size);
		if (run(cmd, out, sizeof(out)) != 0) {
			fprintf(stderr, "%s: %s\n", cmd, out);
			test_failures++;
			continue;
		}
		qsize = qemu_virtual_size(p);
		CHECK(qsize > 0);
		probe_ok(p, (uint64_t)qsize);
	}
	/* Written by qemu, read by us. */
	qemu_io(tpath("qemu-0.vhd"), "-c 'write -P 1 5M 100k'");
	probe_ok(tpath("qemu-0.vhd"), (uint64_t)qemu_virtual_size(tpath("qemu-0.vhd")));
}

static void vhdiinfo_one(const char *path, const char *type, const char *more, const char *more2)
{
	char cmd[700], out[4096];

	snprintf(cmd, sizeof(cmd), "vhdiinfo '%s' 2>&1", path);
	if (run(cmd, out, sizeof(out)) != 0 || !strstr(out, type) ||
	    (more && !strstr(out, more)) || (more2 && !strstr(out, more2))) {
		fprintf(stderr, "%s: wanted \"%s\" \"%s\" \"%s\", got:\n%s\n", cmd, type,
			more ? more : "", more2 ? more2 : "", out);
		test_failures++;
	}
}

static void ours_to_vhdiinfo(void)
{
	struct vhd_image_meta pm;
	char msg[256], uuid[40], want[80];

	CHECK_EQ(vhd_create(tpath("vi-parent.vhd"), (1ull << 30) + 512, VHD_TYPE_DYNAMIC, 0, NULL,
			    msg, sizeof(msg)), 0);
	CHECK_EQ(vhd_create(tpath("vi-fixed.vhd"), 10 << 20, VHD_TYPE_FIXED, 0, NULL, msg,
			    sizeof(msg)), 0);
	CHECK_EQ(vhd_create(tpath("vi-child.vhd"), 0, VHD_TYPE_DIFF, 0, tpath("vi-parent.vhd"), msg,
			    sizeof(msg)), 0);
	REQUIRE(vhd_probe_file(tpath("vi-parent.vhd"), &pm, msg, sizeof(msg)) == 0);
	uuid_unparse_lower(pm.footer.uuid, uuid);
	snprintf(want, sizeof(want), "Parent identifier\t: %s", uuid);
	vhdiinfo_one(tpath("vi-parent.vhd"), "Dynamic", "(1073742336 bytes)", NULL);
	vhdiinfo_one(tpath("vi-fixed.vhd"), "Fixed", "(10485760 bytes)", NULL);
	vhdiinfo_one(tpath("vi-child.vhd"), "Differential", "Parent filename\t\t: vi-parent.vhd",
		     want);
}

int main(void)
{
	bool qemu = have("qemu-img") && have("qemu-io"), vhdi = have("vhdiinfo");
	char cmd[600];
	int status;

	if (!qemu && !vhdi) {
		printf("skip: neither qemu-img/qemu-io (qemu-utils) nor vhdiinfo (libvhdi-utils)"
		       " is installed\n");
		return 77;
	}
	REQUIRE(mkdtemp(tmpdir));
	if (qemu) {
		ours_to_qemu();
		qemu_to_ours();
		if (qemu_check_unsupported)
			printf("note: qemu-img check does not support vpc (status 63);"
			       " checked by reading and writing with qemu-io instead\n");
	} else {
		printf("skip: qemu-img/qemu-io not installed (qemu-utils): no qemu interop\n");
	}
	if (vhdi)
		ours_to_vhdiinfo();
	else
		printf("skip: vhdiinfo not installed (libvhdi-utils): no libvhdi interop\n");
	status = test_done("test-vhd-interop");
	if (!status) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
	return status;
}
