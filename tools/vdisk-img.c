/* vdisk-img: make and inspect VHD images offline.
 *
 *   vdisk-img create [-t dynamic|fixed] [--block-size SIZE] FILE SIZE
 *   vdisk-img create -b PARENT FILE
 *   vdisk-img info [--json] FILE
 *   vdisk-img check [--repair] FILE
 *   vdisk-img map [--json] FILE
 *
 * Exit status: 0 ok (check: clean), 1 failure (check: damaged), 2 usage.
 * Everything here is blocking file I/O on the drivers' format layer
 * (drivers/vhd-format.h, vhd-probe.h, vhd-create.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/size.h"
#include "drivers/file-lock.h"
#include "drivers/vhd-create.h"
#include "drivers/vhd-format.h"
#include "drivers/vhd-probe.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };
enum { MAX_CHAIN = 32 };

static const char usage_text[] =
	"usage: vdisk-img create [-t dynamic|fixed] [--block-size SIZE] FILE SIZE\n"
	"       vdisk-img create -b PARENT FILE\n"
	"       vdisk-img info [--json] FILE\n"
	"       vdisk-img check [--repair] FILE\n"
	"       vdisk-img map [--json] FILE\n";

static int usage(const char *why)
{
	if (why)
		fprintf(stderr, "vdisk-img: %s\n", why);
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}

static const char *type_name(uint32_t t)
{
	return t == VHD_TYPE_FIXED ? "fixed" : t == VHD_TYPE_DYNAMIC ? "dynamic" :
	       t == VHD_TYPE_DIFF ? "differencing" : "unknown";
}

static void uuid_str(const uint8_t u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
		 u[12], u[13], u[14], u[15]);
}

/* ---- create ---- */

static int cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "block-size", required_argument, NULL, 'B' },
		{ "backing", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum vhd_type type = VHD_TYPE_DYNAMIC;
	const char *parent = NULL;
	uint64_t size = 0, bs = 0;
	char msg[512];
	int c;

	while ((c = getopt_long(argc, argv, "t:b:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (strcmp(optarg, "dynamic") == 0)
				type = VHD_TYPE_DYNAMIC;
			else if (strcmp(optarg, "fixed") == 0)
				type = VHD_TYPE_FIXED;
			else
				return usage("create: -t takes dynamic or fixed");
			break;
		case 'B':
			if (vd_parse_size(optarg, &bs) < 0 || bs > UINT32_MAX)
				return usage("create: bad --block-size");
			break;
		case 'b':
			parent = optarg;
			break;
		default:
			return usage(NULL);
		}
	}
	if (parent) {
		if (argc - optind != 1)
			return usage("create -b PARENT takes one FILE");
		type = VHD_TYPE_DIFF;
	} else {
		if (argc - optind != 2)
			return usage("create takes FILE SIZE");
		if (vd_parse_size(argv[optind + 1], &size) < 0 || size == 0)
			return usage("create: bad SIZE");
		if (size % 512) {
			fprintf(stderr, "vdisk-img: create: SIZE must be a multiple of 512\n");
			return EXIT_USAGE;
		}
	}
	if (vhd_create(argv[optind], size, type, (uint32_t)bs, parent, msg, sizeof(msg))) {
		fprintf(stderr, "vdisk-img: %s\n", msg);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* ---- one image, opened and read ---- */

struct img {
	char path[4096];
	int fd;
	bool is_vhd;
	struct vhd_image_meta m;
	uint32_t *bat;
	uint64_t raw_size;
	char err[512];
};

/* Opens path as a VHD (or, when allow_raw, anything else as raw). */
static int img_open(struct img *im, const char *path, bool allow_raw)
{
	uint8_t buf[VHD_FOOTER_SIZE];
	off_t end;

	memset(im, 0, sizeof(*im));
	snprintf(im->path, sizeof(im->path), "%s", path);
	im->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (im->fd < 0) {
		snprintf(im->err, sizeof(im->err), "%s: open: %s", path, strerror(errno));
		return -errno;
	}
	end = lseek(im->fd, 0, SEEK_END);
	im->raw_size = end > 0 ? (uint64_t)end : 0;
	if (allow_raw && !(end >= VHD_FOOTER_SIZE &&
	    ((vd_pread_all(im->fd, buf, sizeof(buf), (uint64_t)end - 512) == 0 &&
	      vhd_detect_footer(buf)) ||
	     (vd_pread_all(im->fd, buf, sizeof(buf), 0) == 0 && vhd_detect_footer(buf)))))
		return 0;
	im->is_vhd = true;
	if (vhd_probe_fd(im->fd, path, &im->m, im->err, sizeof(im->err)))
		return -EINVAL;
	if (im->m.footer.type != VHD_TYPE_FIXED &&
	    vhd_bat_load(im->fd, path, &im->m, &im->bat, im->err, sizeof(im->err)))
		return -EINVAL;
	return 0;
}

static void img_close(struct img *im)
{
	if (im->fd >= 0)
		close(im->fd);
	free(im->bat);
	im->bat = NULL;
	im->fd = -1;
}

static uint32_t img_allocated(const struct img *im)
{
	uint32_t n = 0;

	for (uint32_t i = 0; im->bat && i < im->m.bat_entries; i++)
		n += im->bat[i] != VHD_BAT_UNUSED;
	return n;
}

/* The chain from im down: chain[0] = im (already open). */
static int chain_open(struct img *chain, int *n, char *err, size_t errlen)
{
	*n = 1;
	while (chain[*n - 1].is_vhd && chain[*n - 1].m.footer.type == VHD_TYPE_DIFF) {
		struct img *c = &chain[*n - 1], *p = &chain[*n];
		char path[4096];

		if (*n >= MAX_CHAIN) {
			snprintf(err, errlen, "%.400s: chain too deep (more than %d images)",
				 chain[0].path, MAX_CHAIN);
			return -ELOOP;
		}
		if (vhd_parent_find(c->fd, c->path, &c->m, path, sizeof(path), err, errlen))
			return -ENOENT;
		for (int i = 0; i < *n; i++) {
			if (strcmp(chain[i].path, path) == 0) {
				snprintf(err, errlen, "%.400s: parent loop: %.400s is already in the chain",
					 chain[0].path, path);
				return -ELOOP;
			}
		}
		if (img_open(p, path, true)) {
			snprintf(err, errlen, "%s", p->err);
			img_close(p);
			return -EINVAL;
		}
		(*n)++;
		if (p->is_vhd && memcmp(p->m.footer.uuid, c->m.header.parent_uuid, 16) &&
		    memcmp(c->m.header.parent_uuid, (uint8_t[16]){ 0 }, 16)) {
			snprintf(err, errlen, "%.400s: parent UUID mismatch: parent_uuid does not "
				 "match the UUID of %.400s", c->path, p->path);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- info ---- */

static json_t *img_json(const struct img *im)
{
	json_t *o = json_object();
	char u[37];

	json_object_set_new(o, "file", json_string(im->path));
	json_object_set_new(o, "format", json_string(im->is_vhd ? "vhd" : "raw"));
	json_object_set_new(o, "file_size", json_integer((json_int_t)im->raw_size));
	if (!im->is_vhd) {
		json_object_set_new(o, "size", json_integer((json_int_t)im->raw_size));
		return o;
	}
	json_object_set_new(o, "type", json_string(type_name(im->m.footer.type)));
	json_object_set_new(o, "size", json_integer((json_int_t)im->m.disk_size));
	uuid_str(im->m.footer.uuid, u);
	json_object_set_new(o, "uuid", json_string(u));
	if (im->m.footer.type != VHD_TYPE_FIXED) {
		uint32_t a = img_allocated(im);

		json_object_set_new(o, "block_size", json_integer(im->m.block_size));
		json_object_set_new(o, "blocks", json_integer(im->m.bat_entries));
		json_object_set_new(o, "allocated_blocks", json_integer(a));
		json_object_set_new(o, "allocated_bytes",
				    json_integer((json_int_t)a * im->m.block_size));
	}
	if (im->m.footer.type == VHD_TYPE_DIFF) {
		uuid_str(im->m.header.parent_uuid, u);
		json_object_set_new(o, "parent_uuid", json_string(u));
	}
	return o;
}

static int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { NULL, 0, NULL, 0 },
	};
	struct img *chain = calloc(MAX_CHAIN, sizeof(*chain));
	char err[1024] = "";
	bool json = false;
	int c, n = 0, rc = EXIT_OK;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'j') {
			free(chain);
			return usage(NULL);
		}
		json = true;
	}
	if (argc - optind != 1) {
		free(chain);
		return usage("info takes one FILE");
	}
	if (img_open(&chain[0], argv[optind], false)) {
		fprintf(stderr, "vdisk-img: %s\n", chain[0].err);
		img_close(&chain[0]);
		free(chain);
		return EXIT_FAIL;
	}
	if (chain_open(chain, &n, err, sizeof(err)))
		rc = EXIT_FAIL;
	if (json) {
		json_t *o = img_json(&chain[0]), *a = json_array();

		for (int i = 1; i < n; i++)
			json_array_append_new(a, img_json(&chain[i]));
		json_object_set_new(o, "chain", a);
		if (rc)
			json_object_set_new(o, "error", json_string(err));
		json_dumpf(o, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(o);
	} else {
		for (int i = 0; i < n; i++) {
			const struct img *im = &chain[i];

			printf("%s%s: %s", i ? "  parent " : "", im->path,
			       im->is_vhd ? "vhd " : "raw");
			if (im->is_vhd)
				printf("%s", type_name(im->m.footer.type));
			printf(", %" PRIu64 " bytes", im->is_vhd ? im->m.disk_size : im->raw_size);
			if (im->is_vhd && im->m.footer.type != VHD_TYPE_FIXED)
				printf(", block size %" PRIu32 ", %" PRIu32 " of %" PRIu32
				       " blocks allocated", im->m.block_size, img_allocated(im),
				       im->m.bat_entries);
			printf(", file %" PRIu64 " bytes\n", im->raw_size);
		}
		if (rc)
			fprintf(stderr, "vdisk-img: %s\n", err);
	}
	for (int i = 0; i < n; i++)
		img_close(&chain[i]);
	free(chain);
	return rc;
}

/* ---- check ---- */

/* Writes the footer at the end (behind every block) and its copy at 0. */
static int repair_footers(const char *path, struct img *im)
{
	uint8_t f[VHD_FOOTER_SIZE];
	uint64_t end = im->m.meta_end;
	int fd = open(path, O_RDWR | O_CLOEXEC), err;

	if (fd < 0)
		return -errno;
	/* A served image's footer moves as it grows: rewriting (and cutting)
	 * the file under its daemon would lose blocks.  Refused, as a
	 * second writer is (drivers/file-lock.c). */
	err = vd_file_lock(fd, true, path);
	if (err) {
		close(fd);
		return err;
	}
	for (uint32_t i = 0; im->bat && i < im->m.bat_entries; i++) {
		uint64_t be;

		if (im->bat[i] == VHD_BAT_UNUSED)
			continue;
		be = (uint64_t)im->bat[i] * 512 + im->m.bitmap_bytes + im->m.block_size;
		if (be > end)
			end = be;
	}
	if (im->m.footer.type == VHD_TYPE_FIXED)
		end = im->m.disk_size;
	end = (end + 511) & ~(uint64_t)511;
	vhd_footer_encode(&im->m.footer, f);
	err = vd_pwrite_all(fd, f, sizeof(f), end);
	if (!err && im->m.footer.type != VHD_TYPE_FIXED)
		err = vd_pwrite_all(fd, f, sizeof(f), 0);
	if (!err && ftruncate(fd, (off_t)(end + 512)) < 0)
		err = -errno;
	if (!err && fsync(fd) < 0)
		err = -errno;
	close(fd);
	return err;
}

static int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repair", no_argument, NULL, 'r' }, { NULL, 0, NULL, 0 },
	};
	struct img *chain = calloc(MAX_CHAIN, sizeof(*chain));
	char err[1024] = "";
	bool repair = false, damaged = false;
	int c, n = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'r') {
			free(chain);
			return usage(NULL);
		}
		repair = true;
	}
	if (argc - optind != 1) {
		free(chain);
		return usage("check takes one FILE");
	}
	if (img_open(&chain[0], argv[optind], false)) {
		printf("%s\n", chain[0].err);
		img_close(&chain[0]);
		free(chain);
		return EXIT_FAIL;
	}
	if (chain[0].m.footer_from_copy) {
		printf("%s: footer at the end of the file is missing or bad "
		       "(the copy at offset 0 is intact)\n", argv[optind]);
		damaged = true;
	} else if (chain[0].m.footer_copy_differs) {
		printf("%s: the footer copy at offset 0 differs from the footer\n", argv[optind]);
		damaged = true;
	}
	if (damaged && repair) {
		int e = repair_footers(argv[optind], &chain[0]);

		if (e) {
			printf("%s: repair failed: %s\n", argv[optind], strerror(-e));
		} else {
			printf("%s: footers rewritten\n", argv[optind]);
			damaged = false;
		}
	}
	n = 1;
	if (chain_open(chain, &n, err, sizeof(err))) {
		printf("%s\n", err);
		damaged = true;
	}
	for (int i = 0; i < n; i++)
		img_close(&chain[i]);
	free(chain);
	if (!damaged)
		printf("%s: clean\n", argv[optind]);
	return damaged ? EXIT_FAIL : EXIT_OK;
}

/* ---- map ---- */

static int cmd_map(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { NULL, 0, NULL, 0 },
	};
	struct img im;
	bool json = false;
	json_t *arr = json_array();
	uint8_t *bm = NULL;
	uint64_t cur_off = 0, cur_len = 0, cur_file = 0;
	int c, rc = EXIT_OK;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'j') {
			json_decref(arr);
			return usage(NULL);
		}
		json = true;
	}
	if (argc - optind != 1) {
		json_decref(arr);
		return usage("map takes one FILE");
	}
	if (img_open(&im, argv[optind], false)) {
		fprintf(stderr, "vdisk-img: %s\n", im.err);
		img_close(&im);
		json_decref(arr);
		return EXIT_FAIL;
	}
#define EMIT() do { \
	if (cur_len) { \
		if (json) { \
			json_t *e = json_object(); \
			json_object_set_new(e, "offset", json_integer((json_int_t)cur_off)); \
			json_object_set_new(e, "length", json_integer((json_int_t)cur_len)); \
			json_object_set_new(e, "file_offset", json_integer((json_int_t)cur_file)); \
			json_array_append_new(arr, e); \
		} else { \
			printf("%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", cur_off, cur_len, cur_file); \
		} \
	} \
	cur_len = 0; \
} while (0)
	if (!json)
		printf("# offset length file-offset (bytes; allocated data of %s)\n", im.path);
	if (im.m.footer.type == VHD_TYPE_FIXED) {
		cur_len = im.m.disk_size;
		EMIT();
	} else {
		bm = malloc(im.m.bitmap_bytes);
		for (uint32_t b = 0; bm && b < im.m.bat_entries; b++) {
			uint64_t boff = (uint64_t)b * im.m.block_size, data;
			uint32_t spb = im.m.block_size / 512, i = 0;

			if (im.bat[b] == VHD_BAT_UNUSED)
				continue;
			if (vd_pread_all(im.fd, bm, im.m.bitmap_bytes, (uint64_t)im.bat[b] * 512)) {
				fprintf(stderr, "vdisk-img: %s: reading the bitmap of block %u\n",
					im.path, b);
				rc = EXIT_FAIL;
				break;
			}
			data = (uint64_t)im.bat[b] * 512 + im.m.bitmap_bytes;
			if (boff + im.m.block_size > im.m.disk_size)
				spb = (uint32_t)((im.m.disk_size - boff) / 512);
			while (i < spb) {
				bool set;
				uint32_t run = vhd_bitmap_run(bm, i, spb - i, &set);
				uint64_t o = boff + (uint64_t)i * 512, f = data + (uint64_t)i * 512;

				if (set) {
					if (cur_len && cur_off + cur_len == o && cur_file + cur_len == f) {
						cur_len += (uint64_t)run * 512;
					} else {
						EMIT();
						cur_off = o;
						cur_file = f;
						cur_len = (uint64_t)run * 512;
					}
				}
				i += run;
			}
		}
		EMIT();
	}
	if (json) {
		json_dumpf(arr, stdout, JSON_INDENT(2));
		putchar('\n');
	}
	free(bm);
	json_decref(arr);
	img_close(&im);
	return rc;
}

int main(int argc, char **argv)
{
	const char *cmd;

	log_set_ident("vdisk-img");	/* what the drivers' code says (file locks) */
	if (argc < 2)
		return usage(NULL);
	cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}
	argv++, argc--;
	optind = 1;
	if (strcmp(cmd, "create") == 0)
		return cmd_create(argc, argv);
	if (strcmp(cmd, "info") == 0)
		return cmd_info(argc, argv);
	if (strcmp(cmd, "check") == 0)
		return cmd_check(argc, argv);
	if (strcmp(cmd, "map") == 0)
		return cmd_map(argc, argv);
	return usage("unknown command");
}
