/* STARTTLS in the handshake state machine: the rules of the NBD spec for
 * off, on and require, without sockets or GnuTLS. */
#include <stdlib.h>
#include <string.h>

#include "frontends/nbd-handshake.h"
#include "frontends/nbd-proto.h"
#include "tests/lib/test.h"

static const struct nbd_export export = {
	.name = "disk", .size = 1 << 20, .tflags = NBD_FLAG_HAS_FLAGS,
	.min_block = 1, .pref_block = 4096, .max_block = 32 << 20,
};

struct run {
	struct nbd_hs hs;
	struct nbd_obuf out;
	uint8_t in[256];
	size_t len, used;
	int result;
};

static void start(struct run *r, enum nbd_tls_mode mode)
{
	memset(r, 0, sizeof(*r));
	nbd_hs_init(&r->hs, &export);
	nbd_hs_set_tls(&r->hs, mode);
	nbd_put32(r->in, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	r->len = 4;
}

static void opt(struct run *r, uint32_t o, const void *data, uint32_t n)
{
	nbd_put64(r->in + r->len, NBD_IHAVEOPT);
	nbd_put32(r->in + r->len + 8, o);
	nbd_put32(r->in + r->len + 12, n);
	if (n)
		memcpy(r->in + r->len + 16, data, n);
	r->len += 16 + n;
}

static void go(struct run *r)
{
	r->out.off = r->out.len = 0;
	r->result = nbd_hs_input(&r->hs, r->in, r->len, &r->used, &r->out);
}

/* The type of the first reply in the output. */
static uint32_t first_reply(const struct run *r, uint32_t *o)
{
	if (r->out.len < NBD_OPT_REPLY_HDR_LEN)
		return 0;
	*o = nbd_get32(r->out.data + 8);
	return nbd_get32(r->out.data + 12);
}

static uint8_t go_data[] = { 0, 0, 0, 4, 'd', 'i', 's', 'k', 0, 0 };

int main(void)
{
	struct run r;
	uint32_t o = 0;

	/* off: STARTTLS is refused, everything else as before. */
	start(&r, NBD_TLS_OFF);
	opt(&r, NBD_OPT_STARTTLS, NULL, 0);
	go(&r);
	CHECK_EQ(r.result, NBD_HS_MORE);
	CHECK_EQ(first_reply(&r, &o), NBD_REP_ERR_POLICY);
	nbd_obuf_free(&r.out);

	/* require: LIST, INFO, GO, STRUCTURED_REPLY get TLS_REQD. */
	uint32_t opts[] = { NBD_OPT_LIST, NBD_OPT_INFO, NBD_OPT_GO, NBD_OPT_STRUCTURED_REPLY,
			    NBD_OPT_SET_META_CONTEXT, 42 };
	for (unsigned i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		start(&r, NBD_TLS_REQUIRE);
		if (opts[i] == NBD_OPT_INFO || opts[i] == NBD_OPT_GO)
			opt(&r, opts[i], go_data, sizeof(go_data));
		else
			opt(&r, opts[i], NULL, 0);
		go(&r);
		CHECK_EQ(r.result, NBD_HS_MORE);
		CHECK_EQ(r.used, r.len);
		CHECK_EQ(first_reply(&r, &o), NBD_REP_ERR_TLS_REQD);
		CHECK_EQ(o, opts[i]);
		/* Exactly one reply: nothing about the export leaked. */
		CHECK_EQ(r.out.len, NBD_OPT_REPLY_HDR_LEN + nbd_get32(r.out.data + 16));
		CHECK(!r.hs.structured);
		CHECK_EQ(r.hs.state, NBD_HS_OPTION);
		nbd_obuf_free(&r.out);
	}

	/* require: EXPORT_NAME closes; ABORT is answered. */
	start(&r, NBD_TLS_REQUIRE);
	opt(&r, NBD_OPT_EXPORT_NAME, "disk", 4);
	go(&r);
	CHECK_EQ(r.result, NBD_HS_CLOSE);
	CHECK_EQ(r.out.len, 0);
	nbd_obuf_free(&r.out);
	start(&r, NBD_TLS_REQUIRE);
	opt(&r, NBD_OPT_ABORT, NULL, 0);
	go(&r);
	CHECK_EQ(r.result, NBD_HS_CLOSE);
	CHECK_EQ(first_reply(&r, &o), NBD_REP_ACK);
	nbd_obuf_free(&r.out);

	/* STARTTLS with options behind it: STARTTLS stops the parser, the
	 * rest is left unused (the connection drops it). */
	start(&r, NBD_TLS_REQUIRE);
	opt(&r, NBD_OPT_STARTTLS, NULL, 0);
	size_t after = r.len;
	opt(&r, NBD_OPT_GO, go_data, sizeof(go_data));
	go(&r);
	CHECK_EQ(r.result, NBD_HS_STARTTLS);
	CHECK_EQ(r.used, after);
	CHECK_EQ(first_reply(&r, &o), NBD_REP_ACK);
	CHECK_EQ(r.out.len, NBD_OPT_REPLY_HDR_LEN);
	CHECK_EQ(r.hs.state, NBD_HS_OPTION);

	/* After TLS: GO works, STARTTLS again is ERR_INVALID. */
	nbd_hs_tls_done(&r.hs);
	r.len = 0;
	opt(&r, NBD_OPT_STARTTLS, NULL, 0);
	go(&r);
	CHECK_EQ(r.result, NBD_HS_MORE);
	CHECK_EQ(first_reply(&r, &o), NBD_REP_ERR_INVALID);
	r.len = 0;
	opt(&r, NBD_OPT_GO, go_data, sizeof(go_data));
	go(&r);
	CHECK_EQ(r.result, NBD_HS_GO);
	nbd_obuf_free(&r.out);

	/* STARTTLS forgets what clear text negotiated. */
	start(&r, NBD_TLS_ON);
	opt(&r, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	opt(&r, NBD_OPT_STARTTLS, NULL, 0);
	go(&r);
	CHECK_EQ(r.result, NBD_HS_STARTTLS);
	CHECK(!r.hs.structured);
	nbd_obuf_free(&r.out);

	/* on: clear text goes straight to GO. */
	start(&r, NBD_TLS_ON);
	opt(&r, NBD_OPT_GO, go_data, sizeof(go_data));
	go(&r);
	CHECK_EQ(r.result, NBD_HS_GO);
	nbd_obuf_free(&r.out);

	/* STARTTLS with data: ERR_INVALID, no TLS. */
	start(&r, NBD_TLS_REQUIRE);
	opt(&r, NBD_OPT_STARTTLS, "xy", 2);
	go(&r);
	CHECK_EQ(r.result, NBD_HS_MORE);
	CHECK_EQ(first_reply(&r, &o), NBD_REP_ERR_INVALID);
	nbd_obuf_free(&r.out);

	/* Under require, TLS_REQD options still count against the cap. */
	start(&r, NBD_TLS_REQUIRE);
	for (unsigned i = 0; i < 12; i++)
		opt(&r, NBD_OPT_LIST, NULL, 0);
	r.hs.nr_options = NBD_HS_MAX_OPTIONS - 4;
	go(&r);
	CHECK_EQ(r.result, NBD_HS_CLOSE);
	nbd_obuf_free(&r.out);
	return test_done("test-nbd-tls-hs");
}
