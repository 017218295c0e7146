/* NBD wire constants (doc/proto.md of the NBD project) and the byte-order
 * helpers the parsers use.  Everything on the wire is big-endian. */
#ifndef VD_NBD_PROTO_H
#define VD_NBD_PROTO_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

/* Handshake. */
#define NBD_MAGIC		UINT64_C(0x4e42444d41474943)	/* "NBDMAGIC" */
#define NBD_IHAVEOPT		UINT64_C(0x49484156454f5054)	/* "IHAVEOPT" */
#define NBD_REP_MAGIC		UINT64_C(0x0003e889045565a9)

/* Handshake flags (server) and client flags. */
#define NBD_FLAG_FIXED_NEWSTYLE		(1u << 0)
#define NBD_FLAG_NO_ZEROES		(1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE	(1u << 0)
#define NBD_FLAG_C_NO_ZEROES		(1u << 1)

/* Transmission flags. */
#define NBD_FLAG_HAS_FLAGS		(1u << 0)
#define NBD_FLAG_READ_ONLY		(1u << 1)
#define NBD_FLAG_SEND_FLUSH		(1u << 2)
#define NBD_FLAG_SEND_FUA		(1u << 3)
#define NBD_FLAG_ROTATIONAL		(1u << 4)
#define NBD_FLAG_SEND_TRIM		(1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES	(1u << 6)
#define NBD_FLAG_SEND_DF		(1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN		(1u << 8)
#define NBD_FLAG_SEND_RESIZE		(1u << 9)
#define NBD_FLAG_SEND_CACHE		(1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO		(1u << 11)

/* Options. */
enum {
	NBD_OPT_EXPORT_NAME = 1,
	NBD_OPT_ABORT = 2,
	NBD_OPT_LIST = 3,
	NBD_OPT_PEEK_EXPORT = 4,
	NBD_OPT_STARTTLS = 5,
	NBD_OPT_INFO = 6,
	NBD_OPT_GO = 7,
	NBD_OPT_STRUCTURED_REPLY = 8,
	NBD_OPT_LIST_META_CONTEXT = 9,
	NBD_OPT_SET_META_CONTEXT = 10,
	NBD_OPT_EXTENDED_HEADERS = 11,
};

/* Option replies. */
#define NBD_REP_ACK			1u
#define NBD_REP_SERVER			2u
#define NBD_REP_INFO			3u
#define NBD_REP_META_CONTEXT		4u
#define NBD_REP_ERR(n)			((1u << 31) + (n))
#define NBD_REP_ERR_UNSUP		NBD_REP_ERR(1)
#define NBD_REP_ERR_POLICY		NBD_REP_ERR(2)
#define NBD_REP_ERR_INVALID		NBD_REP_ERR(3)
#define NBD_REP_ERR_PLATFORM		NBD_REP_ERR(4)
#define NBD_REP_ERR_TLS_REQD		NBD_REP_ERR(5)
#define NBD_REP_ERR_UNKNOWN		NBD_REP_ERR(6)
#define NBD_REP_ERR_SHUTDOWN		NBD_REP_ERR(7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD	NBD_REP_ERR(8)
#define NBD_REP_ERR_TOO_BIG		NBD_REP_ERR(9)

/* NBD_REP_INFO types. */
enum {
	NBD_INFO_EXPORT = 0,
	NBD_INFO_NAME = 1,
	NBD_INFO_DESCRIPTION = 2,
	NBD_INFO_BLOCK_SIZE = 3,
};

/* Transmission. */
#define NBD_REQUEST_MAGIC		UINT32_C(0x25609513)
#define NBD_SIMPLE_REPLY_MAGIC		UINT32_C(0x67446698)
#define NBD_STRUCTURED_REPLY_MAGIC	UINT32_C(0x668e33ef)

enum {
	NBD_CMD_READ = 0,
	NBD_CMD_WRITE = 1,
	NBD_CMD_DISC = 2,
	NBD_CMD_FLUSH = 3,
	NBD_CMD_TRIM = 4,
	NBD_CMD_CACHE = 5,
	NBD_CMD_WRITE_ZEROES = 6,
	NBD_CMD_BLOCK_STATUS = 7,
};

#define NBD_CMD_FLAG_FUA		(1u << 0)
#define NBD_CMD_FLAG_NO_HOLE		(1u << 1)
#define NBD_CMD_FLAG_DF			(1u << 2)
#define NBD_CMD_FLAG_REQ_ONE		(1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO		(1u << 4)

#define NBD_REPLY_FLAG_DONE		(1u << 0)

#define NBD_REPLY_TYPE_NONE		0u
#define NBD_REPLY_TYPE_OFFSET_DATA	1u
#define NBD_REPLY_TYPE_OFFSET_HOLE	2u
#define NBD_REPLY_TYPE_BLOCK_STATUS	5u
#define NBD_REPLY_TYPE_ERROR		((1u << 15) + 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET	((1u << 15) + 2)

/* base:allocation status flags. */
#define NBD_STATE_HOLE			(1u << 0)
#define NBD_STATE_ZERO			(1u << 1)

/* Error values of the protocol (not host errnos, though they match Linux). */
enum {
	NBD_EPERM = 1,
	NBD_EIO = 5,
	NBD_ENOMEM = 12,
	NBD_EINVAL = 22,
	NBD_ENOSPC = 28,
	NBD_EOVERFLOW = 75,
	NBD_ENOTSUP = 95,
	NBD_ESHUTDOWN = 108,
};

/* Fixed sizes on the wire. */
enum {
	NBD_GREETING_LEN = 18,		/* NBDMAGIC, IHAVEOPT, 16-bit flags */
	NBD_CLIENT_FLAGS_LEN = 4,
	NBD_OPT_HDR_LEN = 16,		/* IHAVEOPT, option, length */
	NBD_OPT_REPLY_HDR_LEN = 20,	/* magic, option, type, length */
	NBD_REQUEST_LEN = 28,
	NBD_SIMPLE_REPLY_LEN = 16,
	NBD_STRUCTURED_REPLY_LEN = 20,
	NBD_MAX_STRING = 4096,		/* names, messages */
};

#define NBD_META_BASE_ALLOCATION	"base:allocation"

/* Big-endian loads and stores on unaligned bytes. */
static inline uint16_t nbd_get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return be16toh(v);
}

static inline uint32_t nbd_get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return be32toh(v);
}

static inline uint64_t nbd_get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return be64toh(v);
}

static inline void nbd_put16(uint8_t *p, uint16_t v)
{
	v = htobe16(v);
	memcpy(p, &v, sizeof(v));
}

static inline void nbd_put32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void nbd_put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, sizeof(v));
}

#endif
