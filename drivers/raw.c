/* The raw driver: a regular file or a block device, byte for byte.
 *
 * Reads, writes and flushes go to the queue as one tiocb each.  Under
 * O_DIRECT, requests that are not aligned to the device's DIO alignment
 * take a slow path: reads through a bounce buffer, writes by
 * read-modify-write of the covering blocks, serialized against each other
 * by a small list of locked ranges.  Calls that block (fallocate, ioctl,
 * lseek) run on the queue's worker thread as TIOCB_CALLs; the worker only
 * reads the driver's fields that never change after open, and the main
 * thread learns from the results.
 *
 * This file opens and closes the image; drivers/raw-int.h lists the others. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/log.h"
#include "drivers/file-lock.h"
#include "drivers/raw-int.h"
#include "queue/queue.h"

/* Reads /sys/dev/block/M:m/queue/NAME (or the parent disk's, for a
 * partition) as a number; -1 when there is none. */
static long long raw_sysfs_queue(dev_t dev, const char *name)
{
	long long v = -1;

	for (int up = 0; up < 2 && v < 0; up++) {
		char path[128];
		FILE *f;

		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%squeue/%s",
			 major(dev), minor(dev), up ? "../" : "", name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fscanf(f, "%lld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static bool raw_is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* Leaves O_DIRECT for buffered I/O on an open fd. */
static int raw_drop_direct(struct raw *r, const char *why)
{
	int fl = fcntl(r->fd, F_GETFL);

	log_msg(LOG_LVL_WARN, "raw: %s: %s; falling back to buffered I/O "
		"(--cache writeback)", r->path, why);
	if (fl < 0 || fcntl(r->fd, F_SETFL, fl & ~O_DIRECT) < 0) {
		log_errno(LOG_LVL_ERR, errno, "raw: %s: clearing O_DIRECT", r->path);
		return -errno;
	}
	r->direct = false;
	if (!r->is_dev)
		r->align = 512;
	return 0;
}

/* Block sizes of a device: what the kernel says. */
static int raw_dev_geometry(struct raw *r, struct vd_info *info)
{
	int lbs = 0;
	unsigned pbs = 0;

	if (ioctl(r->fd, BLKGETSIZE64, &r->size) < 0) {
		log_errno(LOG_LVL_ERR, errno, "raw: %s: BLKGETSIZE64", r->path);
		return -errno;
	}
	if (ioctl(r->fd, BLKSSZGET, &lbs) < 0 || !raw_is_pow2((unsigned)lbs))
		lbs = 512;
	if (ioctl(r->fd, BLKPBSZGET, &pbs) < 0 || !raw_is_pow2(pbs))
		pbs = 4096;
	info->logical_block = (uint32_t)lbs;
	info->physical_block = pbs;
	r->align = (uint32_t)lbs;
	r->mem_align = (uint32_t)lbs;
	return 0;
}

/* Block sizes of a file: the filesystem's DIO alignment when it tells. */
static int raw_file_geometry(struct raw *r, const struct stat *st, struct vd_info *info)
{
	struct statx stx;

	r->size = (uint64_t)st->st_size;
	r->align = 512;
	r->mem_align = 512;
	info->physical_block = raw_is_pow2((uint64_t)st->st_blksize) &&
			       st->st_blksize > 4096 ? (uint32_t)st->st_blksize : 4096;
	info->logical_block = 512;
	/* No DIOALIGN answer (tmpfs, older kernels): 512 is the classic rule. */
	if (!r->direct || statx(r->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) < 0 ||
	    !(stx.stx_mask & STATX_DIOALIGN))
		return 0;
	if (stx.stx_dio_offset_align == 0)
		return raw_drop_direct(r, "the filesystem does not do O_DIRECT on it");
	if (raw_is_pow2(stx.stx_dio_offset_align)) {
		r->align = stx.stx_dio_offset_align;
		info->logical_block = r->align;
	}
	if (raw_is_pow2(stx.stx_dio_mem_align))
		r->mem_align = stx.stx_dio_mem_align;
	return 0;
}

/* Some filesystems accept O_DIRECT at open and refuse the I/O: read the
 * first block once to find out. */
static int raw_probe_direct(struct raw *r, struct vd_info *info)
{
	void *b;
	ssize_t n;
	int err = 0;

	if (r->size % r->align) {
		/* The last block could not be read or written whole. */
		err = raw_drop_direct(r, "size is not a multiple of the O_DIRECT alignment");
		goto out;
	}
	b = raw_bounce_alloc(r, r->align);
	if (!b)
		return -ENOMEM;
	n = pread(r->fd, b, r->align, 0);
	if (n < 0 && errno == EINVAL)
		err = raw_drop_direct(r, "O_DIRECT refused by the filesystem");
	else if (n < 0)
		log_errno(LOG_LVL_WARN, errno, "raw: %s: probe read", r->path);
	free(b);
out:
	if (!r->direct && !r->is_dev)
		info->logical_block = 512;
	return err;
}

static int raw_open_fd(struct raw *r, const struct vd_open_opts *opts, bool *refused)
{
	/* O_NONBLOCK: a FIFO must be refused, not waited on for a writer.
	 * It is cleared once the image is known to be a file or device. */
	int flags = (opts->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK |
		    O_NOCTTY;

	r->direct = opts->cache == VD_CACHE_NONE;
	r->fd = open(r->path, flags | (r->direct ? O_DIRECT : 0));
	if (r->fd < 0 && errno == EINVAL && r->direct) {
		/* Said once the image turns out to be one (not a directory). */
		*refused = true;
		r->direct = false;
		r->fd = open(r->path, flags);
	}
	if (r->fd < 0) {
		int err = -errno;

		log_errno(LOG_LVL_ERR, err, "raw: open %s", r->path);
		return err;
	}
	return 0;
}

/* What the image can do besides reading and writing. */
static void raw_caps(struct raw *r, const struct stat *st,
		     const struct vd_open_opts *opts, struct vd_info *info)
{
	dev_t dev = r->is_dev ? st->st_rdev : st->st_dev;
	long long rot = raw_sysfs_queue(dev, "rotational");

	info->is_rotational = rot > 0;
	if (r->is_dev) {
		r->no_discard = raw_sysfs_queue(dev, "discard_max_bytes") == 0;
		r->no_punch = raw_sysfs_queue(dev, "write_zeroes_max_bytes") == 0;
		info->can_zero = true;
	} else {
		/* A punch past the end changes nothing: a free probe. */
		long err = raw_fallocate(r, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					 align_up(r->size, 4096), 4096);
		r->no_punch = err < 0;
		if (err < 0 && !raw_unsupported(err) && !opts->read_only)
			log_errno(LOG_LVL_DEBUG, (int)err, "raw: %s: punch probe", r->path);
		info->can_zero = !r->no_punch;
	}
	info->can_trim = r->is_dev ? !r->no_discard : !r->no_punch;
	info->can_fast_zero = !r->no_punch;
	if (opts->read_only)
		info->can_trim = info->can_zero = info->can_fast_zero = false;
	info->can_flush = true;
	info->can_fua = true;
	info->can_block_status = !r->is_dev;
}

static int raw_open(const char *image, const struct vd_open_opts *opts,
		    const struct vd_env *env, struct vd_info *info, void **priv)
{
	struct tq_fd_caps caps;
	struct stat st;
	struct raw *r = calloc(1, sizeof(*r));
	bool direct_refused = false;
	int err, fl;

	if (!r)
		return -ENOMEM;
	r->fd = -1;
	r->q = env->q;
	r->waiting_tail = &r->waiting;
	r->path = strdup(image);
	if (!r->path) {
		err = -ENOMEM;
		goto err;
	}
	err = raw_open_fd(r, opts, &direct_refused);
	if (err)
		goto err;
	if (fstat(r->fd, &st) < 0) {
		err = -errno;
		log_errno(LOG_LVL_ERR, err, "raw: stat %s", image);
		goto err;
	}
	if (S_ISDIR(st.st_mode)) {
		log_msg(LOG_LVL_ERR, "raw: %s is a directory", image);
		err = -EISDIR;
		goto err;
	}
	r->is_dev = S_ISBLK(st.st_mode);
	if (!r->is_dev && !S_ISREG(st.st_mode)) {
		log_msg(LOG_LVL_ERR, "raw: %s is not a regular file or a block device",
			image);
		err = -EINVAL;
		goto err;
	}
	/* Before anything touches the image: a second writer refuses here. */
	r->writable = !opts->read_only;
	err = vd_file_lock(r->fd, r->writable, image);
	if (err)
		goto err;
	fl = fcntl(r->fd, F_GETFL);
	if (fl < 0 || fcntl(r->fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		err = -errno;
		log_errno(LOG_LVL_ERR, err, "raw: %s: fcntl", image);
		goto err;
	}
	if (r->is_dev)
		err = raw_dev_geometry(r, info);
	else
		err = raw_file_geometry(r, &st, info);
	if (err)
		goto err;
	if (direct_refused)
		log_msg(LOG_LVL_WARN, "raw: %s: O_DIRECT refused by the filesystem; "
			"falling back to buffered I/O (--cache writeback)", image);
	if (r->size == 0) {
		log_msg(LOG_LVL_ERR, "raw: %s is empty (size 0); give it a size first, "
			"e.g. truncate -s 1G %s", image, image);
		err = -EINVAL;
		goto err;
	}
	if (r->direct) {
		err = raw_probe_direct(r, info);
		if (err)
			goto err;
	}
	raw_caps(r, &st, opts, info);
	if (info->physical_block < info->logical_block)
		info->physical_block = info->logical_block;
	info->size = r->size;
	info->read_only = opts->read_only;
	info->direct = r->direct;
	r->buf_align = r->mem_align;
	if (r->mem_align < 4096)
		r->mem_align = 4096;	/* bounce buffers: page-aligned anyway */
	tq_probe_fd(r->q, r->fd, &caps);
	*priv = r;
	return 0;
err:
	if (r->fd >= 0)
		close(r->fd);
	free(r->path);
	free(r);
	return err;
}

static void raw_close(void *priv)
{
	struct raw *r = priv;

	if (r->held || r->waiting)
		log_msg(LOG_LVL_ERR, "raw: %s: closed with requests in flight", r->path);
	/* The locks go with the file description, and close(2) may not end
	 * it: a completed iocb can still hold the file, its last reference
	 * dropped later from a workqueue.  Until then a new open of this
	 * image (a restart, a reopen of the same file) would find it in use. */
	vd_file_unlock(r->fd);
	if (close(r->fd) < 0)
		log_errno(LOG_LVL_WARN, errno, "raw: close %s", r->path);
	free(r->path);
	free(r);
}

/* Drops the image's file locks, or takes them again (a reopen opens the
 * new image while this one is still open, and the two would refuse each
 * other). */
static int raw_lock(void *priv, bool on)
{
	struct raw *r = priv;

	if (!on) {
		vd_file_unlock(r->fd);
		return 0;
	}
	return vd_file_lock(r->fd, r->writable, r->path);
}

const struct vd_driver vd_raw_driver = {
	.name = "raw",
	.open = raw_open,
	.close = raw_close,
	.lock = raw_lock,
	.read = raw_read,
	.write = raw_write,
	.flush = raw_flush,
	.trim = raw_trim,
	.write_zeroes = raw_write_zeroes,
	.block_status = raw_block_status,
};
