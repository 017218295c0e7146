/* Transmission-phase requests: decoding the 28-byte header and checking
 * it against what was negotiated.  No sockets, no vbd: unit tested. */
#ifndef VD_NBD_REQUEST_H
#define VD_NBD_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

struct nbd_request {
	uint16_t flags;
	uint16_t type;
	uint64_t handle;
	uint64_t offset;
	uint32_t len;
};

/* What the handshake settled, as the checks need it. */
struct nbd_caps {
	uint64_t size;
	uint16_t tflags;		/* as sent to the client */
	bool structured;
	bool meta_base_allocation;
	uint32_t max_payload;		/* READ/WRITE/CACHE/WRITE_ZEROES */
	uint32_t max_big;		/* READ/WRITE of a client that never
					 * asked for block sizes: served in
					 * pieces up to this; 0 = none */
};

/* The cap on READ/WRITE for clients that did not negotiate block sizes
 * (the NBD project's own test client sends 40-48 MiB). */
enum { NBD_MAX_BIG = 1024 * 1024 * 1024 };

/* Fills *r from p[0..NBD_REQUEST_LEN).  -EPROTO on a bad magic: the
 * stream cannot be trusted any more and the connection is closed. */
int nbd_request_decode(const uint8_t *p, struct nbd_request *r);

/* 0 when the request may go to the disk, else the NBD error to answer
 * (NBD_EINVAL, NBD_EPERM, NBD_ENOSPC) with *msg saying why.  DISC is
 * not checked here.  A refused WRITE's payload must still be skipped. */
uint32_t nbd_request_check(const struct nbd_caps *c, const struct nbd_request *r,
			   const char **msg);

/* A host errno (negative or positive) as one of the protocol's values. */
uint32_t nbd_errno_to_wire(int err);

#endif
