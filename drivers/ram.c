/* The ram driver: a sparse disk in memory, for tests and scratch disks.
 *
 * Memory is taken in 64 KiB chunks on first write, through a two-level
 * table whose leaves are allocated lazily too, so a 16 TiB ram disk costs
 * a few hundred KiB of untouched (lazily mapped) top-level table until it
 * is written.  Every op completes synchronously; the vbd defers such
 * completions to its loop itself. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/size.h"
#include "drivers/driver.h"

enum {
	RAM_CHUNK_SHIFT = 16,			/* 64 KiB */
	RAM_CHUNK = 1u << RAM_CHUNK_SHIFT,
	RAM_LEAF_SHIFT = 12,			/* 4096 chunks: 256 MiB a leaf */
	RAM_LEAF_CHUNKS = 1u << RAM_LEAF_SHIFT,
};

/* Largest ram disk: keeps the top-level table at 2 MiB (of pointers). */
#define RAM_MAX_SIZE (64ull << 40)

struct ram_leaf {
	unsigned used;				/* non-NULL chunks */
	unsigned char *chunk[RAM_LEAF_CHUNKS];
};

struct ram {
	uint64_t size;
	uint64_t nr_leaves;
	struct ram_leaf **leaf;
};

/* The chunk holding byte pos, or NULL when it is not allocated. */
static unsigned char *ram_chunk(const struct ram *r, uint64_t pos)
{
	uint64_t c = pos >> RAM_CHUNK_SHIFT;
	const struct ram_leaf *l = r->leaf[c >> RAM_LEAF_SHIFT];

	return l ? l->chunk[c & (RAM_LEAF_CHUNKS - 1)] : NULL;
}

/* The chunk holding byte pos, allocated (zeroed) on first use. */
static unsigned char *ram_chunk_get(struct ram *r, uint64_t pos)
{
	uint64_t c = pos >> RAM_CHUNK_SHIFT;
	struct ram_leaf **lp = &r->leaf[c >> RAM_LEAF_SHIFT];
	unsigned char **cp;

	if (!*lp) {
		*lp = calloc(1, sizeof(**lp));
		if (!*lp)
			return NULL;
	}
	cp = &(*lp)->chunk[c & (RAM_LEAF_CHUNKS - 1)];
	if (!*cp) {
		*cp = calloc(1, RAM_CHUNK);
		if (!*cp)
			return NULL;	/* an empty leaf stays: harmless */
		(*lp)->used++;
	}
	return *cp;
}

static void ram_chunk_free(struct ram *r, uint64_t pos)
{
	uint64_t c = pos >> RAM_CHUNK_SHIFT;
	struct ram_leaf **lp = &r->leaf[c >> RAM_LEAF_SHIFT];
	unsigned char **cp;

	if (!*lp)
		return;
	cp = &(*lp)->chunk[c & (RAM_LEAF_CHUNKS - 1)];
	if (!*cp)
		return;
	free(*cp);
	*cp = NULL;
	if (--(*lp)->used == 0) {
		free(*lp);
		*lp = NULL;
	}
}

/* Bytes from pos to the end of its chunk, at most left. */
static uint64_t ram_span(uint64_t pos, uint64_t left)
{
	uint64_t n = RAM_CHUNK - (pos & (RAM_CHUNK - 1));

	return n < left ? n : left;
}

static int ram_open(const char *image, const struct vd_open_opts *opts,
		    const struct vd_env *env, struct vd_info *info, void **priv)
{
	struct ram *r;
	uint64_t size;
	int err = vd_parse_size(image, &size);

	if (err) {
		log_msg(LOG_LVL_ERR, "ram: bad size \"%s\" (want e.g. 512M, 1G, 16T)",
			image ? image : "");
		return err;
	}
	if (size > RAM_MAX_SIZE) {
		log_msg(LOG_LVL_ERR, "ram: size %s is larger than the 64 TiB limit",
			image);
		return -EFBIG;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->size = size;
	r->nr_leaves = ((size + RAM_CHUNK - 1) >> RAM_CHUNK_SHIFT) + RAM_LEAF_CHUNKS - 1;
	r->nr_leaves >>= RAM_LEAF_SHIFT;
	/* Large callocs are fresh zero pages: no cost until touched. */
	r->leaf = calloc(r->nr_leaves, sizeof(*r->leaf));
	if (!r->leaf) {
		free(r);
		return -ENOMEM;
	}
	*info = (struct vd_info){
		.size = size,
		.logical_block = 512,	/* any alignment works; 512 is what clients expect */
		.physical_block = 4096,
		.read_only = opts->read_only,
		.can_flush = true,
		.can_fua = true,
		.can_trim = true,
		.can_zero = true,
		.can_fast_zero = true,
		.can_block_status = true,
	};
	*priv = r;
	return 0;
}

static void ram_close(void *priv)
{
	struct ram *r = priv;

	for (uint64_t i = 0; i < r->nr_leaves; i++) {
		struct ram_leaf *l = r->leaf[i];

		if (!l)
			continue;
		for (unsigned c = 0; c < RAM_LEAF_CHUNKS; c++)
			free(l->chunk[c]);
		free(l);
	}
	free(r->leaf);
	free(r);
}

static int ram_read(void *priv, struct vd_io *io)
{
	const struct ram *r = priv;
	unsigned char *dst = io->buf;
	uint64_t pos = io->offset, left = io->len;

	while (left) {
		uint64_t n = ram_span(pos, left);
		const unsigned char *c = ram_chunk(r, pos);

		if (c)
			memcpy(dst, c + (pos & (RAM_CHUNK - 1)), n);
		else
			memset(dst, 0, n);
		dst += n;
		pos += n;
		left -= n;
	}
	vd_io_complete(io, 0);
	return 0;
}

static int ram_write(void *priv, struct vd_io *io)
{
	struct ram *r = priv;
	const unsigned char *src = io->buf;
	uint64_t pos = io->offset, left = io->len;
	int err = 0;

	while (left) {
		uint64_t n = ram_span(pos, left);
		unsigned char *c = ram_chunk_get(r, pos);

		if (!c) {
			err = -ENOMEM;
			break;
		}
		memcpy(c + (pos & (RAM_CHUNK - 1)), src, n);
		src += n;
		pos += n;
		left -= n;
	}
	vd_io_complete(io, err);
	return 0;
}

static int ram_flush(void *priv, struct vd_io *io)
{
	vd_io_complete(io, 0);	/* nothing is more durable than memory */
	return 0;
}

/* Zeroes [offset, offset+len): whole chunks are freed (or, when the
 * caller wants allocation, zeroed in place), partial ones zeroed. */
static int ram_zero_range(struct ram *r, uint64_t pos, uint64_t left, bool allocate)
{
	while (left) {
		uint64_t n = ram_span(pos, left);
		unsigned char *c;

		if (n == RAM_CHUNK && !allocate) {
			ram_chunk_free(r, pos);
		} else {
			c = allocate ? ram_chunk_get(r, pos) : ram_chunk(r, pos);
			if (allocate && !c)
				return -ENOMEM;
			if (c)
				memset(c + (pos & (RAM_CHUNK - 1)), 0, n);
		}
		pos += n;
		left -= n;
	}
	return 0;
}

static int ram_trim(void *priv, struct vd_io *io)
{
	vd_io_complete(io, ram_zero_range(priv, io->offset, io->len, false));
	return 0;
}

static int ram_write_zeroes(void *priv, struct vd_io *io)
{
	bool allocate = io->flags & VD_IO_NO_HOLE;

	vd_io_complete(io, ram_zero_range(priv, io->offset, io->len, allocate));
	return 0;
}

static int ram_block_status(void *priv, struct vd_io *io)
{
	const struct ram *r = priv;
	const uint32_t hole = VD_EXTENT_HOLE | VD_EXTENT_ZERO;
	unsigned max = io->flags & VD_IO_REQ_ONE ? 1 : io->max_extents;
	uint64_t pos = io->offset, left = io->len;

	io->nr_extents = 0;
	while (left) {
		uint64_t c = pos >> RAM_CHUNK_SHIFT;
		uint64_t n = ram_span(pos, left);
		bool mapped;

		/* A missing leaf is one hole of 256 MiB: skip it whole. */
		if (!r->leaf[c >> RAM_LEAF_SHIFT]) {
			uint64_t leaf_end = ((c >> RAM_LEAF_SHIFT) + 1) <<
					    (RAM_LEAF_SHIFT + RAM_CHUNK_SHIFT);
			n = leaf_end - pos < left ? leaf_end - pos : left;
			mapped = false;
		} else {
			mapped = ram_chunk(r, pos) != NULL;
		}
		if (!vd_extent_add(io, max, mapped ? 0 : hole, n))
			break;
		pos += n;
		left -= n;
	}
	vd_io_complete(io, io->nr_extents ? 0 : -EINVAL);
	return 0;
}

const struct vd_driver vd_ram_driver = {
	.name = "ram",
	.open = ram_open,
	.close = ram_close,
	.read = ram_read,
	.write = ram_write,
	.flush = ram_flush,
	.trim = ram_trim,
	.write_zeroes = ram_write_zeroes,
	.block_status = ram_block_status,
};
