/* Reply encoding.  Every function leaves a complete reply in rp->iov. */
#include <string.h>

#include "core/vbd.h"
#include "frontends/nbd-proto.h"
#include "frontends/nbd-reply.h"

static void nbd_reply_iov_set(struct nbd_reply *rp, const void *hdr_end, void *data, size_t len)
{
	size_t hlen = (const uint8_t *)hdr_end - rp->hdr;

	rp->iov[0].iov_base = rp->hdr;
	rp->iov[0].iov_len = hlen;
	rp->niov = 1;
	rp->total = hlen;
	if (len) {
		rp->iov[1].iov_base = data;
		rp->iov[1].iov_len = len;
		rp->niov = 2;
		rp->total += len;
	}
}

void nbd_reply_simple(struct nbd_reply *rp, uint64_t handle, uint32_t err,
		      void *data, size_t len)
{
	nbd_put32(rp->hdr, NBD_SIMPLE_REPLY_MAGIC);
	nbd_put32(rp->hdr + 4, err);
	nbd_put64(rp->hdr + 8, handle);
	nbd_reply_iov_set(rp, rp->hdr + NBD_SIMPLE_REPLY_LEN, err ? NULL : data, err ? 0 : len);
}

static uint8_t *nbd_reply_structured(struct nbd_reply *rp, uint64_t handle, uint16_t type,
			   uint32_t len)
{
	nbd_put32(rp->hdr, NBD_STRUCTURED_REPLY_MAGIC);
	nbd_put16(rp->hdr + 4, NBD_REPLY_FLAG_DONE);
	nbd_put16(rp->hdr + 6, type);
	nbd_put64(rp->hdr + 8, handle);
	nbd_put32(rp->hdr + 16, len);
	return rp->hdr + NBD_STRUCTURED_REPLY_LEN;
}

void nbd_reply_data(struct nbd_reply *rp, uint64_t handle, uint64_t offset,
		    void *data, size_t len)
{
	uint8_t *p = nbd_reply_structured(rp, handle, NBD_REPLY_TYPE_OFFSET_DATA,
				(uint32_t)(8 + len));

	nbd_put64(p, offset);
	nbd_reply_iov_set(rp, p + 8, data, len);
}

void nbd_reply_data_part(struct nbd_reply *rp, uint64_t handle, uint64_t offset,
			 void *data, size_t len)
{
	nbd_reply_data(rp, handle, offset, data, len);
	nbd_put16(rp->hdr + 4, 0);	/* more chunks follow */
}

void nbd_reply_none(struct nbd_reply *rp, uint64_t handle)
{
	uint8_t *p = nbd_reply_structured(rp, handle, NBD_REPLY_TYPE_NONE, 0);

	nbd_reply_iov_set(rp, p, NULL, 0);
}

void nbd_reply_raw(struct nbd_reply *rp, void *data, size_t len)
{
	rp->iov[0].iov_base = data;
	rp->iov[0].iov_len = len;
	rp->niov = 1;
	rp->total = len;
}

void nbd_reply_error(struct nbd_reply *rp, uint64_t handle, uint32_t err,
		     const char *msg, bool offset_valid, uint64_t offset)
{
	size_t mlen = msg ? strlen(msg) : 0;
	uint8_t *p;

	if (mlen > NBD_MAX_STRING)
		mlen = NBD_MAX_STRING;
	p = nbd_reply_structured(rp, handle,
		       offset_valid ? NBD_REPLY_TYPE_ERROR_OFFSET : NBD_REPLY_TYPE_ERROR,
		       (uint32_t)(6 + mlen + (offset_valid ? 8 : 0)));
	nbd_put32(p, err);
	nbd_put16(p + 4, (uint16_t)mlen);
	/* The message is static: point at it rather than copy it. */
	nbd_reply_iov_set(rp, p + 6, (void *)msg, mlen);
	if (offset_valid) {
		nbd_put64(rp->tail, offset);
		rp->iov[rp->niov].iov_base = rp->tail;
		rp->iov[rp->niov].iov_len = 8;
		rp->niov++;
		rp->total += 8;
	}
}

void nbd_reply_block_status(struct nbd_reply *rp, uint64_t handle, uint32_t ctx_id,
			    void *desc, unsigned n)
{
	uint8_t *p = nbd_reply_structured(rp, handle, NBD_REPLY_TYPE_BLOCK_STATUS, 4 + 8 * n);

	nbd_put32(p, ctx_id);
	nbd_reply_iov_set(rp, p + 4, desc, (size_t)8 * n);
}

unsigned nbd_extents_to_wire(const struct vbd_extent *e, unsigned n, uint8_t *wire,
			     uint32_t reqlen, bool req_one)
{
	uint64_t sum = 0;
	uint32_t last_len = 0, last_flags = 0;
	unsigned out = 0;

	for (unsigned i = 0; i < n && sum < reqlen; i++) {
		uint32_t flags = (e[i].flags & VBD_EXTENT_HOLE ? NBD_STATE_HOLE : 0) |
				 (e[i].flags & VBD_EXTENT_ZERO ? NBD_STATE_ZERO : 0);
		/* Nothing past the request matters; keep a descriptor's
		 * 32-bit length from overflowing. */
		uint64_t len = e[i].length < reqlen - sum ? e[i].length : reqlen - sum;

		if (!len)
			continue;
		if (out && last_flags == flags && (uint64_t)last_len + len <= UINT32_MAX) {
			last_len += (uint32_t)len;
		} else {
			if (out)
				nbd_put32(wire + 8 * (out - 1), last_len);
			nbd_put32(wire + 8 * out + 4, flags);
			last_len = (uint32_t)len;
			last_flags = flags;
			out++;
		}
		sum += len;
	}
	if (out)
		nbd_put32(wire + 8 * (out - 1), last_len);
	return req_one && out > 1 ? 1 : out;
}
