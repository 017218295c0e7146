/* The NBD handshake state machine (frontends/nbd-handshake.h) fed as the
 * connection feeds it: the input arrives in pieces, unconsumed bytes stay
 * in the receive buffer.  The first byte picks the piece size (low four
 * bits), the export (bit 4) and a server shutting down (bits 5-7 all
 * set); the rest is what the client sends after the greeting.
 *
 * Properties: nbd_hs_input never claims more than it was given; what it
 * leaves unconsumed always fits the connection's receive buffer (an
 * option that does not fit is skipped, never buffered); it ends in GO or
 * CLOSE, or waits for more with everything usable used. */
#include <errno.h>

#include "frontends/nbd-handshake.h"
#include "frontends/nbd-proto.h"
#include "tests/fuzz/fuzz.h"

static const struct nbd_export exports[2] = {
	{ .name = "disk", .description = "fuzz disk", .size = 1ull << 30,
	  .tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
		    NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES,
	  .min_block = 1, .pref_block = 4096, .max_block = 32u << 20 },
	{ .name = "", .description = NULL, .size = 0,
	  .tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY,
	  .min_block = 512, .pref_block = 4096, .max_block = 1u << 20 },
};

/* Bytes per read, as a socket might deliver them. */
static const size_t pieces[16] = {
	1, 2, 3, 4, 7, 8, 15, 16, 17, 28, 64, 100, 512, 4096, 65536, 1u << 20,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nbd_hs hs;
	struct nbd_obuf out = { 0 };
	size_t piece, rpos = 0, rlen = 0;

	if (size < 1)
		return 0;
	piece = pieces[data[0] & 0x0f];
	nbd_hs_init(&hs, &exports[(data[0] >> 4) & 1]);
	hs.shutting_down = (data[0] & 0xe0) == 0xe0;	/* every answer ERR_SHUTDOWN */
	FUZZ_ASSERT(nbd_hs_greeting(&out) == 0);
	data++;
	size--;

	for (;;) {
		size_t used = 0, avail;
		int r;

		/* The next read: up to one piece more. */
		rlen += size - rlen < piece ? size - rlen : piece;
		avail = rlen - rpos;
		r = nbd_hs_input(&hs, data + rpos, avail, &used, &out);
		FUZZ_ASSERT(used <= avail);
		rpos += used;
		/* What is left must fit the connection's buffer. */
		FUZZ_ASSERT(rlen - rpos <= NBD_OPT_HDR_LEN + NBD_HS_MAX_OPTLEN);
		FUZZ_ASSERT(out.off <= out.len && out.len <= out.cap);
		nbd_obuf_consume(&out, nbd_obuf_pending(&out));	/* "sent" */
		if (r == -ENOMEM)
			break;
		FUZZ_ASSERT(r == NBD_HS_MORE || r == NBD_HS_GO || r == NBD_HS_CLOSE);
		if (r == NBD_HS_GO) {
			FUZZ_ASSERT(hs.state == NBD_HS_DONE);
			(void)nbd_hs_tflags(&hs);
			break;
		}
		if (r == NBD_HS_CLOSE)
			break;
		FUZZ_ASSERT(hs.state != NBD_HS_DONE);
		if (rlen == size)
			break;		/* the client sent nothing more */
	}
	nbd_obuf_free(&out);
	return 0;
}
