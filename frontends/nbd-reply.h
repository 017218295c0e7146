/* Reply messages of the transmission phase, built in place as an iovec
 * list (header bytes here, payload wherever it already is), so a reply
 * goes out with its data in one sendmsg and nothing is copied. */
#ifndef VD_NBD_REPLY_H
#define VD_NBD_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct vbd_extent;

enum {
	/* Structured header (20) + error (4) + message length (2), or
	 * + offset (8), or + context id (4). */
	NBD_REPLY_HDR_MAX = 28,
	NBD_REPLY_IOV_MAX = 3,
};

struct nbd_reply {
	uint8_t hdr[NBD_REPLY_HDR_MAX];
	uint8_t tail[8];		/* ERROR_OFFSET's offset, after the message */
	struct iovec iov[NBD_REPLY_IOV_MAX];
	unsigned niov;
	size_t total;			/* bytes over all iovecs */
};

/* Simple reply; data is READ's payload (NULL otherwise or on error). */
void nbd_reply_simple(struct nbd_reply *rp, uint64_t handle, uint32_t err,
		      void *data, size_t len);
/* Structured: one OFFSET_DATA chunk that ends the reply. */
void nbd_reply_data(struct nbd_reply *rp, uint64_t handle, uint64_t offset,
		    void *data, size_t len);
/* Structured: an OFFSET_DATA chunk with more to follow (not DONE), and
 * the NONE chunk that ends such a reply. */
void nbd_reply_data_part(struct nbd_reply *rp, uint64_t handle, uint64_t offset,
			 void *data, size_t len);
void nbd_reply_none(struct nbd_reply *rp, uint64_t handle);
/* Bytes alone: a simple READ reply's data after its header. */
void nbd_reply_raw(struct nbd_reply *rp, void *data, size_t len);
/* Structured: ERROR (offset_valid false) or ERROR_OFFSET, ends the reply.
 * msg is a static string (NULL: none). */
void nbd_reply_error(struct nbd_reply *rp, uint64_t handle, uint32_t err,
		     const char *msg, bool offset_valid, uint64_t offset);
/* Structured: one BLOCK_STATUS chunk; desc holds n wire descriptors. */
void nbd_reply_block_status(struct nbd_reply *rp, uint64_t handle, uint32_t ctx_id,
			    void *desc, unsigned n);

/* Writes the vbd's extents as base:allocation descriptors (8 bytes each,
 * at most n) into wire: drops empty ones, merges neighbours with equal
 * flags, stops once reqlen is covered and cuts the last one there; with
 * req_one, writes the first only.  Returns the count. */
unsigned nbd_extents_to_wire(const struct vbd_extent *e, unsigned n, uint8_t *wire,
			     uint32_t reqlen, bool req_one);

#endif
