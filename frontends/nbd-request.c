/* Request decoding and validation, one place for every protocol rule of
 * the transmission phase.  The vbd checks ranges again; the frontend
 * owns the protocol's error codes and never sends the disk a request the
 * client had no right to make. */
#include <errno.h>

#include "frontends/nbd-proto.h"
#include "frontends/nbd-request.h"

int nbd_request_decode(const uint8_t *p, struct nbd_request *r)
{
	if (nbd_get32(p) != NBD_REQUEST_MAGIC)
		return -EPROTO;
	r->flags = nbd_get16(p + 4);
	r->type = nbd_get16(p + 6);
	r->handle = nbd_get64(p + 8);
	r->offset = nbd_get64(p + 16);
	r->len = nbd_get32(p + 24);
	return 0;
}

/* The flags a command may carry, given what was advertised. */
static uint16_t nbd_request_allowed_flags(const struct nbd_caps *c, uint16_t type)
{
	/* FUA is valid on every command once SEND_FUA was advertised. */
	uint16_t f = (c->tflags & NBD_FLAG_SEND_FUA) ? NBD_CMD_FLAG_FUA : 0;

	switch (type) {
	case NBD_CMD_READ:
		if (c->tflags & NBD_FLAG_SEND_DF)
			f |= NBD_CMD_FLAG_DF;
		break;
	case NBD_CMD_WRITE_ZEROES:
		f |= NBD_CMD_FLAG_NO_HOLE;
		if (c->tflags & NBD_FLAG_SEND_FAST_ZERO)
			f |= NBD_CMD_FLAG_FAST_ZERO;
		break;
	case NBD_CMD_BLOCK_STATUS:
		f |= NBD_CMD_FLAG_REQ_ONE;
		break;
	}
	return f;
}

uint32_t nbd_request_check(const struct nbd_caps *c, const struct nbd_request *r,
			   const char **msg)
{
	bool writes = false, limited = false;
	uint16_t needs = 0;

	switch (r->type) {
	case NBD_CMD_READ:
		limited = true;
		break;
	case NBD_CMD_WRITE:
		writes = limited = true;
		break;
	case NBD_CMD_FLUSH:
		needs = NBD_FLAG_SEND_FLUSH;
		break;
	case NBD_CMD_TRIM:
		writes = true;
		needs = NBD_FLAG_SEND_TRIM;
		break;
	case NBD_CMD_CACHE:
		limited = true;
		needs = NBD_FLAG_SEND_CACHE;
		break;
	case NBD_CMD_WRITE_ZEROES:
		writes = true;
		/* The maximum block size binds WRITE_ZEROES except a fast one. */
		limited = !(r->flags & NBD_CMD_FLAG_FAST_ZERO);
		needs = NBD_FLAG_SEND_WRITE_ZEROES;
		break;
	case NBD_CMD_BLOCK_STATUS:
		if (!c->meta_base_allocation) {
			*msg = "no metadata context was negotiated";
			return NBD_EINVAL;
		}
		break;
	default:
		*msg = "unknown command";
		return NBD_EINVAL;
	}

	/* EPERM comes first for writes on a read-only export, even for
	 * TRIM and WRITE_ZEROES which are then not advertised. */
	if (writes && (c->tflags & NBD_FLAG_READ_ONLY)) {
		*msg = "export is read-only";
		return NBD_EPERM;
	}
	if (needs && !(c->tflags & needs)) {
		*msg = "command not advertised";
		return NBD_EINVAL;
	}
	if (r->flags & ~nbd_request_allowed_flags(c, r->type)) {
		*msg = "invalid command flags";
		return NBD_EINVAL;
	}

	if (r->type == NBD_CMD_FLUSH) {
		if (r->offset || r->len) {
			*msg = "flush with offset or length";
			return NBD_EINVAL;
		}
		return 0;
	}
	if (r->len == 0) {
		*msg = "zero length";
		return NBD_EINVAL;
	}
	if (limited && r->len > c->max_payload &&
	    !((r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE) && r->len <= c->max_big)) {
		*msg = "request larger than the maximum block size";
		return NBD_EINVAL;
	}
	/* Written so that offset + len cannot wrap. */
	if (r->offset > c->size || r->len > c->size - r->offset) {
		*msg = "request beyond the end of the disk";
		/* The spec asks ENOSPC for writes past the end. */
		return r->type == NBD_CMD_WRITE || r->type == NBD_CMD_WRITE_ZEROES ?
			NBD_ENOSPC : NBD_EINVAL;
	}
	return 0;
}

uint32_t nbd_errno_to_wire(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return 0;
	case EPERM:
	case EROFS:
		return NBD_EPERM;
	case ENOMEM:
		return NBD_ENOMEM;
	case EINVAL:
		return NBD_EINVAL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return NBD_ENOSPC;
	case EOVERFLOW:
		return NBD_EOVERFLOW;
	case ENOTSUP:
		return NBD_ENOTSUP;
	case ESHUTDOWN:
		return NBD_ESHUTDOWN;
	default:
		return NBD_EIO;
	}
}
