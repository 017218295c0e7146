/* The driver interface: one operations table per image format, and the
 * rules every driver keeps.
 *
 * An open driver instance is a struct vd_image (drivers/image.c): the vbd
 * owns one for its disk, and a driver may open others as read-only
 * *backing* images (a VHD's parent, raw or VHD) and send them I/O the same
 * way.  Everything below runs on the main thread.
 *
 * Rules of a data-path op (read, write, flush, trim, write_zeroes,
 * block_status):
 *
 *  1. It returns a negative errno when nothing was started (the caller
 *     completes the request with it), 1 when there was nothing to do and
 *     the request is done with success, or 0 when the request was started:
 *     then the driver calls vd_io_complete(io, err) exactly once, later or
 *     even before the op returns (the vbd copes with both).
 *  2. Checks are the caller's: range, zero length, read-only, capability
 *     flags and buffer alignment (4096) are done once in the vbd, so
 *     drivers do not repeat them.
 *  3. Sub-I/Os: a driver may split one request into several, each with
 *     its own completion.  vd_io_split_begin() takes a reference for the
 *     issuing code, vd_io_hold() one per sub-I/O before it is issued,
 *     vd_io_release(io, err) drops one; the request completes once, after
 *     the last release, with the first error.  A sub-I/O sent to a backing
 *     image is itself a struct vd_io, made with vd_io_child_init().
 *  4. Completions come from any source the driver likes, as long as they
 *     run on the main thread: the libaio queue (tiocb callbacks), the
 *     queue's worker (TIOCB_CALL), or an event of its own on env->base
 *     (an eventfd that a library signals from its threads).  No blocking
 *     call on the main thread after open: what may block goes to the
 *     queue's worker or to a thread of the driver's.
 *  5. close() is called only when nothing is in flight.
 *  6. open() logs why it failed, once, naming the image; except for
 *     -ENOMEM, which vd_image_open reports. */
#ifndef VD_DRIVER_H
#define VD_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/tiocb.h"

struct event_base;
struct tqueue;

enum vd_cache {
	VD_CACHE_NONE,		/* O_DIRECT */
	VD_CACHE_WRITEBACK,	/* page cache */
};

struct vd_open_opts {
	bool read_only;
	enum vd_cache cache;
	/* rbd: NULL means librados's defaults (CEPH_CONF, client.admin). */
	const char *ceph_conf;
	const char *ceph_id;
	unsigned ceph_timeout;		/* s to reach the cluster; 0: default */
	unsigned ceph_op_timeout;	/* s an OSD op may take; 0: wait forever */
};

/* What a driver instance may use besides its image (copy what you keep:
 * the struct itself may be on the caller's stack). */
struct vd_env {
	struct event_base *base;	/* the main loop */
	struct tqueue *q;		/* the libaio queue and its worker */
};

/* What a driver tells its user about an open image. */
struct vd_info {
	uint64_t size;			/* bytes */
	uint32_t logical_block;		/* smallest unit served without RMW */
	uint32_t physical_block;	/* preferred unit */
	bool read_only;
	bool can_flush;
	bool can_fua;
	bool can_trim;
	bool can_zero;			/* efficient WRITE_ZEROES */
	bool can_fast_zero;		/* zeroing is never slower than writing */
	bool can_block_status;		/* knows holes/zeroes */
	bool is_rotational;
	bool direct;			/* O_DIRECT in effect */
};

enum vd_op {
	VD_OP_READ,
	VD_OP_WRITE,
	VD_OP_FLUSH,
	VD_OP_TRIM,
	VD_OP_WRITE_ZEROES,
	VD_OP_BLOCK_STATUS,
};

enum vd_io_flags {
	VD_IO_FUA = 1u << 0,
	VD_IO_NO_HOLE = 1u << 1,	/* WRITE_ZEROES must allocate */
	VD_IO_FAST_ZERO = 1u << 2,	/* WRITE_ZEROES: fail with ENOTSUP if slow */
	VD_IO_REQ_ONE = 1u << 3,	/* BLOCK_STATUS: one extent is enough */
};

/* BLOCK_STATUS output: holes read as zeroes, zeroes may be allocated. */
enum vd_extent_flags {
	VD_EXTENT_HOLE = 1u << 0,
	VD_EXTENT_ZERO = 1u << 1,
};
struct vd_extent {
	uint32_t length;
	uint32_t flags;
};

/* One data-path request as a driver sees it. */
struct vd_io {
	enum vd_op op;
	uint64_t offset;
	uint64_t len;		/* READ/WRITE <= 32 MiB; others up to 4 GiB */
	unsigned flags;		/* enum vd_io_flags */
	void *buf;		/* READ/WRITE data, 4096-aligned, len bytes */

	/* BLOCK_STATUS: the driver fills extents[0..nr_extents) covering a
	 * prefix of [offset, offset+len), at most max_extents entries. */
	struct vd_extent *extents;
	unsigned nr_extents;
	unsigned max_extents;

	/* Set by whoever sends the request; the driver calls
	 * vd_io_complete() (or vd_io_release() once split). */
	void (*complete)(struct vd_io *io, int err);
	struct vd_io *parent;	/* a child's request (vd_io_child_init) */

	/* Sub-I/O accounting (rule 3). */
	unsigned refs;
	int first_err;

	/* Driver scratch: one tiocb covers the common case. */
	struct tiocb tiocb;
	void *drv_ptr;
	uint64_t drv_u64[4];
};

static inline void vd_io_complete(struct vd_io *io, int err)
{
	io->complete(io, err);
}

/* One piece of a group that completes together came back with err: the
 * group keeps its first error; true when this was the last piece. */
static inline bool vd_piece_done(int *first_err, unsigned *left, int err)
{
	if (err && !*first_err)
		*first_err = err;
	return --*left == 0;
}

/* Rule 3.  Begin before the first sub-I/O; the issuing code then ends
 * with vd_io_release(io, err) for its own reference. */
static inline void vd_io_split_begin(struct vd_io *io)
{
	io->refs = 1;
	io->first_err = 0;
}

static inline void vd_io_hold(struct vd_io *io)
{
	io->refs++;
}

void vd_io_release(struct vd_io *io, int err);

/* Makes child a sub-I/O of parent covering [offset, offset+len) with buf
 * (holds parent): when the child completes, parent is released with its
 * result.  Send it to a backing image with vd_image_submit(). */
void vd_io_child_init(struct vd_io *child, struct vd_io *parent, enum vd_op op,
		      uint64_t offset, uint64_t len, void *buf);

/* describe(): one fact about the open image per call, as text; number
 * says the value is a decimal integer.  A key given several times is a
 * list. */
typedef void vd_describe_fn(void *arg, const char *key, const char *value, bool number);
/* snapshot(): the result, on the main thread; msg says what failed. */
typedef void vd_snapshot_cb(void *arg, int err, const char *msg);

struct vd_driver {
	const char *name;
	/* Optional: images named "PREFIX..." are this driver's ("rbd:"). */
	const char *prefix;
	/* Optional: true when the open fd holds this format (vhd footer). */
	bool (*detect)(int fd, uint64_t size);
	/* image is a path (ram: a size).  Fills *info; *priv is handed back
	 * to every other op. */
	int (*open)(const char *image, const struct vd_open_opts *opts,
		    const struct vd_env *env, struct vd_info *info, void **priv);
	void (*close)(void *priv);
	int (*read)(void *priv, struct vd_io *io);
	int (*write)(void *priv, struct vd_io *io);
	int (*flush)(void *priv, struct vd_io *io);		/* optional */
	int (*trim)(void *priv, struct vd_io *io);		/* optional */
	int (*write_zeroes)(void *priv, struct vd_io *io);	/* optional */
	int (*block_status)(void *priv, struct vd_io *io);	/* optional */
	/* Optional: drop (on false) or take again the image's locks against
	 * other processes (drivers/file-lock.h), for the images it uses too.
	 * A reopen drops the old image's before it opens the new one, which
	 * may be the same file.  Returns 0 or a negative errno. */
	int (*lock)(void *priv, bool on);
	/* Optional: the backing image this one reads through (a VHD's parent). */
	struct vd_image *(*backing)(void *priv);
	/* Optional, main thread, must not block: driver-specific facts for
	 * info (rbd: pool, image, object size, features, snapshots). */
	void (*describe)(void *priv, vd_describe_fn *fn, void *arg);
	/* Optional: a named snapshot of the image as it is now (rbd).  The
	 * caller has drained and flushed.  Returns a negative errno when
	 * nothing started, else 0 and cb runs later, once. */
	int (*snapshot)(void *priv, const char *name, vd_snapshot_cb *cb, void *arg);
};

extern const struct vd_driver vd_raw_driver;
extern const struct vd_driver vd_ram_driver;
extern const struct vd_driver vd_vhd_driver;
extern const struct vd_driver vd_rbd_driver;

/* drivers/registry.c */
const struct vd_driver *vd_driver_find(const char *name);
/* Picks the driver for an image path: a format that claims it, else raw. */
const struct vd_driver *vd_driver_detect(const char *image);
/* "raw, ram" for messages, from the table. */
const char *vd_driver_names(void);

/* drivers/image.c: an open driver instance. */
struct vd_image;

/* Opens image with the named driver (NULL: detect).  Fills in defaults the
 * driver left out (block sizes) and forces read_only from opts. */
int vd_image_open(const char *image, const char *driver, const struct vd_open_opts *opts,
		  const struct vd_env *env, struct vd_image **out);
void vd_image_close(struct vd_image *img);
const struct vd_info *vd_image_info(const struct vd_image *img);
const struct vd_driver *vd_image_driver(const struct vd_image *img);
/* The path it was opened with. */
const char *vd_image_path(const struct vd_image *img);
/* The image it reads through (a differencing VHD's parent), or NULL. */
struct vd_image *vd_image_backing(const struct vd_image *img);
/* The driver's lock op (0 when it has none, or img is NULL). */
int vd_image_lock(struct vd_image *img, bool on);

/* Sends io (op and its fields filled, complete set) to the image's
 * driver.  Returns as a driver op does (rule 1): an op the driver lacks
 * is -EOPNOTSUPP (trim, write zeroes) or 1 (flush; block status, meaning
 * "no answer": the caller assumes data). */
int vd_image_submit(struct vd_image *img, struct vd_io *io);

/* The driver's describe op; nothing when it has none. */
void vd_image_describe(struct vd_image *img, vd_describe_fn *fn, void *arg);
/* The driver's snapshot op; -EOPNOTSUPP when it has none. */
int vd_image_snapshot(struct vd_image *img, const char *name, vd_snapshot_cb *cb,
		      void *arg);

/* drivers/extent.c: appends n bytes of one kind to io's extent list,
 * merging with the last entry of the same kind.  False when the list
 * (max entries) is full or a length would overflow: a prefix is a valid
 * answer, so the caller stops there. */
bool vd_extent_add(struct vd_io *io, unsigned max, uint32_t flags, uint64_t n);

#endif
