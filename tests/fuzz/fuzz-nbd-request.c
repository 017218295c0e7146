/* Transmission requests (frontends/nbd-request.h): decoding any 28 bytes
 * and checking them against negotiated capabilities taken from the
 * input.  Properties: a request that passes the checks lies inside the
 * disk and, when it carries or asks for a payload, within max_payload;
 * an error names an NBD error and says why. */
#include <errno.h>

#include "frontends/nbd-proto.h"
#include "frontends/nbd-request.h"
#include "tests/fuzz/fuzz.h"

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nbd_caps c;
	struct nbd_request r;
	const char *msg;
	uint32_t e;

	/* 16 bytes of capabilities, then requests of 28 bytes each. */
	if (size < 16)
		return 0;
	memset(&c, 0, sizeof(c));
	c.size = get64(data) >> (data[8] & 63);
	c.tflags = (uint16_t)(data[9] << 8 | data[10]) | NBD_FLAG_HAS_FLAGS;
	c.structured = data[11] & 1;
	c.meta_base_allocation = data[11] & 2;
	c.max_payload = (uint32_t)data[12] << 24 | (uint32_t)data[13] << 16 |
			(uint32_t)data[14] << 8 | data[15];
	if (data[11] & 4)
		c.max_payload = 32u << 20;	/* the daemon's own */
	data += 16;
	size -= 16;

	for (; size >= NBD_REQUEST_LEN; data += NBD_REQUEST_LEN, size -= NBD_REQUEST_LEN) {
		int d = nbd_request_decode(data, &r);

		FUZZ_ASSERT(d == 0 || d == -EPROTO);
		if (d < 0)
			continue;
		msg = NULL;
		e = nbd_request_check(&c, &r, &msg);
		if (e != 0) {
			FUZZ_ASSERT(msg != NULL && msg[0] != '\0');
			/* The three nbd-request.h documents. */
			FUZZ_ASSERT(e == NBD_EINVAL || e == NBD_EPERM || e == NBD_ENOSPC);
			continue;
		}
		if (r.type == NBD_CMD_DISC)
			continue;
		FUZZ_ASSERT(r.offset <= c.size && r.len <= c.size - r.offset);
		if (r.type == NBD_CMD_READ || r.type == NBD_CMD_WRITE)
			FUZZ_ASSERT(r.len <= c.max_payload);
		if (r.type == NBD_CMD_WRITE || r.type == NBD_CMD_TRIM ||
		    r.type == NBD_CMD_WRITE_ZEROES)
			FUZZ_ASSERT(!(c.tflags & NBD_FLAG_READ_ONLY));
		if (r.type != NBD_CMD_FLUSH)
			FUZZ_ASSERT(r.len > 0);
	}
	return 0;
}
