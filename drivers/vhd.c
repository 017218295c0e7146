/* The vhd driver: fixed, dynamic and differencing VHD images.
 *
 * At open (blocking reads allowed) the footer, header and BAT are read
 * and checked with a buffered fd of our own, and a differencing image's
 * parent is found through its locators and opened read-only as a backing
 * image with vd_image_open (raw or vhd: a chain recurses through it).
 * The data goes through `file`, a raw image on the same path, so O_DIRECT
 * and --cache behave as for raw images, including the bounce reads and
 * read-modify-writes that an unaligned piece needs.
 *
 * Chains: at most VHD_MAX_CHAIN images; a file that is already in the
 * chain being opened (same device and inode) is a loop; a parent whose
 * UUID is not the one the child's header names is refused.
 *
 * drivers/vhd-drv-int.h lists the other files. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "drivers/vhd-drv-int.h"
#include "drivers/vhd-int.h"

/* The chain being opened: open is recursive through vd_image_open on the
 * main thread, so a static stack is enough. */
static struct {
	dev_t dev;
	ino_t ino;
	const char *path;
} vhd_chain[VHD_MAX_CHAIN];
static unsigned vhd_chain_len;

/* A footer whose checksum is bad but whose structure says VHD beyond
 * doubt: a dynamic header where it points, or a fixed disk's size that is
 * exactly the file's.  Such an image is claimed, so that opening it fails
 * naming the checksum instead of serving VHD metadata as raw data; a raw
 * image that merely ends in "conectix" does not pass this. */
static bool vhd_detect_damaged(int fd, const uint8_t *f, uint64_t size)
{
	uint8_t cookie[8];
	uint64_t off = vhd_get64(f + 16);

	if (memcmp(f, "conectix", 8))
		return false;
	if (vhd_get32(f + 60) == VHD_TYPE_FIXED)
		return vhd_get64(f + 48) == size - VHD_FOOTER_SIZE;
	return off >= VHD_FOOTER_SIZE && off < size && size - off >= 8 &&
	       vd_pread_all(fd, cookie, 8, off) == 0 && memcmp(cookie, "cxsparse", 8) == 0;
}

static bool vhd_detect(int fd, uint64_t size)
{
	uint8_t end[VHD_FOOTER_SIZE], copy[VHD_FOOTER_SIZE];
	bool have_end, have_copy;

	if (size < VHD_FOOTER_SIZE)
		return false;
	have_end = vd_pread_all(fd, end, sizeof(end), size - VHD_FOOTER_SIZE) == 0;
	if (have_end && vhd_detect_footer(end))
		return true;
	/* A dynamic image whose end lost its footer in a crash: the copy. */
	have_copy = size >= VHD_FOOTER_SIZE &&
		    vd_pread_all(fd, copy, sizeof(copy), 0) == 0;
	if (have_copy && vhd_detect_footer(copy) && vhd_get32(copy + 60) != VHD_TYPE_FIXED)
		return true;
	return (have_end && vhd_detect_damaged(fd, end, size)) ||
	       (have_copy && vhd_get32(copy + 60) != VHD_TYPE_FIXED &&
		vhd_detect_damaged(fd, copy, size));
}

static void uuid_str(const uint8_t u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
		 u[12], u[13], u[14], u[15]);
}

static bool uuid_zero(const uint8_t u[16])
{
	for (int i = 0; i < 16; i++)
		if (u[i])
			return false;
	return true;
}

static int vhd_open_parent(struct vhd *v, int fd, const struct vd_open_opts *opts,
			   const struct vd_env *env)
{
	struct vd_open_opts po = { .read_only = true, .cache = opts->cache };
	struct vhd_image_meta pm;
	char ppath[4096], msg[512], a[37], b[37];
	const struct vd_driver *pd;
	int err;

	err = vhd_parent_find(fd, v->path, &v->meta, ppath, sizeof(ppath), msg, sizeof(msg));
	if (err) {
		log_msg(LOG_LVL_ERR, "vhd: %s", msg);
		return err;
	}
	if (vhd_chain_len >= VHD_MAX_CHAIN) {
		log_msg(LOG_LVL_ERR, "vhd: %s: chain too deep: more than %d images "
			"(parent %s)", vhd_chain[0].path, VHD_MAX_CHAIN, ppath);
		return -ELOOP;
	}
	pd = vd_driver_detect(ppath);
	if (pd == &vd_vhd_driver) {
		err = vhd_probe_file(ppath, &pm, msg, sizeof(msg));
		if (err) {
			log_msg(LOG_LVL_ERR, "vhd: %s: parent: %s", v->path, msg);
			return err;
		}
		if (!uuid_zero(v->meta.header.parent_uuid) &&
		    memcmp(pm.footer.uuid, v->meta.header.parent_uuid, 16)) {
			uuid_str(v->meta.header.parent_uuid, a);
			uuid_str(pm.footer.uuid, b);
			log_msg(LOG_LVL_ERR, "vhd: %s: parent UUID mismatch: the header's "
				"parent_uuid is %s, but parent %s has UUID %s", v->path, a,
				ppath, b);
			return -EINVAL;
		}
	} else if (!uuid_zero(v->meta.header.parent_uuid)) {
		uuid_str(v->meta.header.parent_uuid, a);
		log_msg(LOG_LVL_ERR, "vhd: %s: parent UUID mismatch: the header's "
			"parent_uuid is %s, but parent %s is not a VHD image", v->path, a, ppath);
		return -EINVAL;
	}
	err = vd_image_open(ppath, NULL, &po, env, &v->parent);
	if (err) {
		log_msg(LOG_LVL_ERR, "vhd: %s: cannot open its parent %s", v->path, ppath);
		return err;
	}
	v->parent_size = vd_image_info(v->parent)->size;
	log_msg(LOG_LVL_DEBUG, "vhd: %s: parent %s (%s)", v->path, ppath,
		vd_image_driver(v->parent)->name);
	return 0;
}

/* BAT, block geometry, where the next block goes. */
static int vhd_open_dynamic(struct vhd *v, int fd)
{
	char msg[512];
	uint64_t end;
	int err;

	err = vhd_bat_load(fd, v->path, &v->meta, &v->bat, msg, sizeof(msg));
	if (err) {
		log_msg(LOG_LVL_ERR, "vhd: %s", msg);
		return err;
	}
	v->bat_entries = v->meta.bat_entries;
	v->bat_offset = v->meta.bat_offset;
	v->block_size = v->meta.block_size;
	v->bitmap_bytes = v->meta.bitmap_bytes;
	v->spb = v->block_size / 512;
	v->block_shift = (unsigned)__builtin_ctz(v->block_size);
	/* Past the metadata and every block.  Space between the last block
	 * and the end footer belongs to nothing on disk (a grow that a crash
	 * left, a block whose BAT entry never reached the disk): new blocks
	 * reuse it, writing their bitmaps (it is not known to read zeroes).
	 * With no block allocated, past the footer's place too: tools may
	 * keep metadata of their own (tapdisk's batmap) after the BAT. */
	end = v->meta.meta_end;
	for (uint32_t i = 0; i < v->bat_entries; i++) {
		uint64_t be;

		if (v->bat[i] == VHD_BAT_UNUSED)
			continue;
		be = (uint64_t)v->bat[i] * 512 + v->bitmap_bytes + v->block_size;
		if (be > end)
			end = be;
	}
	if (end == v->meta.meta_end) {
		uint64_t f = v->meta.footer_from_copy ? v->meta.file_size : v->meta.footer_offset;

		end = f > end ? f : end;
	}
	v->next_alloc = (end + 511) & ~(uint64_t)511;
	/* Without a footer at the end (the copy stood in), what is there
	 * is junk; a grow writes a footer past it. */
	v->footer_ok = !v->meta.footer_from_copy;
	v->footer_at = v->footer_ok ? v->meta.footer_offset : v->meta.file_size;
	if (v->footer_at < v->next_alloc)
		v->footer_at = v->next_alloc;
	v->zero_from = v->meta.file_size > v->next_alloc ? v->meta.file_size : v->next_alloc;
	return 0;
}

static int vhd_open(const char *image, const struct vd_open_opts *opts,
		    const struct vd_env *env, struct vd_info *info, void **priv)
{
	struct vd_open_opts fo = *opts;
	const struct vd_info *fi;
	char msg[512];
	struct stat st;
	struct vhd *v = calloc(1, sizeof(*v));
	bool pushed = false;
	int fd = -1, err;

	if (!v)
		return -ENOMEM;
	v->path = strdup(image);
	if (!v->path) {
		err = -ENOMEM;
		goto out;
	}
	v->read_only = opts->read_only;
	v->grow_fd = -1;
	v->q = env->q;
	fd = open(image, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		err = -errno;
		log_errno(LOG_LVL_ERR, err, "vhd: open %s", image);
		goto out;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		log_msg(LOG_LVL_ERR, "vhd: %s is not a regular file or a block device", image);
		err = -EINVAL;
		goto out;
	}
	for (unsigned i = 0; i < vhd_chain_len; i++) {
		if (vhd_chain[i].dev == st.st_dev && vhd_chain[i].ino == st.st_ino) {
			log_msg(LOG_LVL_ERR, "vhd: %s: parent loop: %s is already in the "
				"chain (as %s)", vhd_chain[0].path, image, vhd_chain[i].path);
			err = -ELOOP;
			goto out;
		}
	}
	if (vhd_chain_len >= VHD_MAX_CHAIN) {
		log_msg(LOG_LVL_ERR, "vhd: %s: chain too deep: more than %d images",
			vhd_chain[0].path, VHD_MAX_CHAIN);
		err = -ELOOP;
		goto out;
	}
	vhd_chain[vhd_chain_len].dev = st.st_dev;
	vhd_chain[vhd_chain_len].ino = st.st_ino;
	vhd_chain[vhd_chain_len].path = v->path;
	vhd_chain_len++;
	pushed = true;

	err = vhd_probe_fd(fd, image, &v->meta, msg, sizeof(msg));
	if (err) {
		log_msg(LOG_LVL_ERR, "vhd: %s", msg);
		goto out;
	}
	if (v->meta.footer_from_copy)
		log_msg(LOG_LVL_WARN, "vhd: %s: no footer at the end of the file (a crash "
			"while it grew?); using the copy at offset 0", image);
	vhd_footer_encode(&v->meta.footer, v->footer_raw);
	v->type = (enum vhd_type)v->meta.footer.type;
	v->size = v->meta.disk_size;
	if (v->type != VHD_TYPE_FIXED) {
		err = vhd_open_dynamic(v, fd);
		if (err)
			goto out;
	}
	if (v->type != VHD_TYPE_FIXED && !v->read_only && S_ISREG(st.st_mode)) {
		v->grow_fd = open(image, O_RDWR | O_CLOEXEC);
		if (v->grow_fd < 0) {
			err = -errno;
			log_errno(LOG_LVL_ERR, err, "vhd: open %s read-write", image);
			goto out;
		}
		v->can_grow = true;
	}
	if (v->type == VHD_TYPE_DIFF) {
		err = vhd_open_parent(v, fd, opts, env);
		if (err)
			goto out;
	}
	err = vd_image_open(image, "raw", &fo, env, &v->file);
	if (err)
		goto out;
	if (v->type != VHD_TYPE_FIXED) {
		err = vhd_meta_init(v);
		if (err)
			goto out;
	}
	fi = vd_image_info(v->file);
	*info = (struct vd_info){
		.size = v->size,
		.logical_block = v->type == VHD_TYPE_FIXED ? fi->logical_block : 512,
		.physical_block = fi->physical_block > 4096 ? fi->physical_block : 4096,
		.read_only = opts->read_only,
		.can_flush = true,
		.can_fua = true,
		.can_trim = !opts->read_only,
		.can_zero = !opts->read_only,
		.can_block_status = true,
		.is_rotational = fi->is_rotational,
		.direct = fi->direct,
	};
	close(fd);
	vhd_chain_len--;
	log_msg(LOG_LVL_DEBUG, "vhd: %s: %s, %" PRIu64 " bytes", image,
		v->type == VHD_TYPE_FIXED ? "fixed" : v->type == VHD_TYPE_DYNAMIC ?
		"dynamic" : "differencing", v->size);
	*priv = v;
	return 0;
out:
	if (fd >= 0)
		close(fd);
	if (pushed)
		vhd_chain_len--;
	if (v->file)
		vd_image_close(v->file);
	if (v->parent)
		vd_image_close(v->parent);
	if (v->type != VHD_TYPE_FIXED)
		vhd_meta_free(v);
	if (v->grow_fd >= 0)
		close(v->grow_fd);
	free(v->bat);
	free(v->path);
	free(v);
	return err;
}

static void vhd_close(void *priv)
{
	struct vhd *v = priv;

	if (v->type != VHD_TYPE_FIXED) {
		vhd_meta_sync_blocking(v);
		vhd_meta_free(v);
	}
	vhd_io_cache_free(v);
	if (v->grow_fd >= 0)
		close(v->grow_fd);
	vd_image_close(v->file);
	vd_image_close(v->parent);
	free(v->bat);
	free(v->path);
	free(v);
}

static struct vd_image *vhd_backing(void *priv)
{
	return ((struct vhd *)priv)->parent;
}

/* The data file (through which this image is locked) and the chain. */
static int vhd_lock(void *priv, bool on)
{
	struct vhd *v = priv;
	int r = vd_image_lock(v->file, on);

	if (r == 0 && (r = vd_image_lock(v->parent, on)) < 0)
		vd_image_lock(v->file, false);
	return r;
}

const struct vd_driver vd_vhd_driver = {
	.name = "vhd",
	.detect = vhd_detect,
	.open = vhd_open,
	.close = vhd_close,
	.read = vhd_read,
	.write = vhd_write,
	.flush = vhd_flush,
	.trim = vhd_trim,
	.write_zeroes = vhd_write_zeroes,
	.block_status = vhd_block_status,
	.backing = vhd_backing,
	.lock = vhd_lock,
};
