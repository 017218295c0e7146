/* The driver operations table: one per image format.
 *
 * A data-path op either returns a negative errno at once (nothing was
 * started, the caller completes the request) or returns 0 and later calls
 * vd_io_complete(io, err) exactly once, on the main thread.  The vbd core
 * (daemon/vbd.c) checks ranges, alignment of buffers, read-only and the
 * capability flags before it calls an op, so drivers do not repeat it. */
#ifndef VD_DRIVER_H
#define VD_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/tiocb.h"

struct tqueue;

enum vd_cache {
	VD_CACHE_NONE,		/* O_DIRECT */
	VD_CACHE_WRITEBACK,	/* page cache */
};

struct vd_open_opts {
	bool read_only;
	enum vd_cache cache;
};

/* What a driver tells the vbd about an open image. */
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

enum vd_io_flags {
	VD_IO_FUA = 1u << 0,
	VD_IO_NO_HOLE = 1u << 1,	/* WRITE_ZEROES must allocate */
	VD_IO_FAST_ZERO = 1u << 2,	/* WRITE_ZEROES: fail with ENOTSUP if slow */
	VD_IO_REQ_ONE = 1u << 3,	/* BLOCK_STATUS: one extent is enough */
};

/* BLOCK_STATUS output, NBD base:allocation semantics. */
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
	uint64_t offset;
	uint64_t len;		/* READ/WRITE <= 32 MiB; others up to 4 GiB */
	unsigned flags;		/* enum vd_io_flags */
	void *buf;		/* READ/WRITE data, 4096-aligned, len bytes */

	/* BLOCK_STATUS: the driver fills extents[0..nr_extents) covering a
	 * prefix of [offset, offset+len), at most max_extents entries. */
	struct vd_extent *extents;
	unsigned nr_extents;
	unsigned max_extents;

	/* Set by the vbd; the driver calls vd_io_complete(). */
	void (*complete)(struct vd_io *io, int err);

	/* Driver scratch: one tiocb covers the common case. */
	struct tiocb tiocb;
	void *drv_ptr;
	uint64_t drv_u64[4];
};

static inline void vd_io_complete(struct vd_io *io, int err)
{
	io->complete(io, err);
}

struct vd_driver {
	const char *name;
	/* Optional: true when the open fd holds this format (vhd footer). */
	bool (*detect)(int fd, uint64_t size);
	/* image is a path (ram: a size).  Fills *info; *priv is handed back
	 * to every other op. */
	int (*open)(const char *image, const struct vd_open_opts *opts,
		    struct tqueue *q, struct vd_info *info, void **priv);
	void (*close)(void *priv);
	int (*read)(void *priv, struct vd_io *io);
	int (*write)(void *priv, struct vd_io *io);
	int (*flush)(void *priv, struct vd_io *io);
	int (*trim)(void *priv, struct vd_io *io);		/* optional */
	int (*write_zeroes)(void *priv, struct vd_io *io);	/* optional */
	int (*block_status)(void *priv, struct vd_io *io);	/* optional */
};

extern const struct vd_driver vd_raw_driver;
extern const struct vd_driver vd_ram_driver;

/* drivers/registry.c */
const struct vd_driver *vd_driver_find(const char *name);
/* Picks the driver for an image path: VHD footer, else raw. */
const struct vd_driver *vd_driver_detect(const char *image);
/* "raw, ram, vhd" for messages. */
const char *vd_driver_names(void);

/* drivers/extent.c: appends n bytes of one kind to io's extent list,
 * merging with the last entry of the same kind.  False when the list
 * (max entries) is full or a length would overflow: a prefix is a valid
 * answer, so the caller stops there. */
bool vd_extent_add(struct vd_io *io, unsigned max, uint32_t flags, uint64_t n);

/* Parses a size: digits with an optional K/M/G/T/P suffix (powers of 1024,
 * optional "iB"/"B").  Rejects 0, negatives, junk and overflow. */
int vd_parse_size(const char *s, uint64_t *out);

#endif
