/* The handshake parser fed good, malformed, truncated and oversized
 * input, without sockets. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/nbd-handshake.h"
#include "frontends/nbd-proto.h"
#include "tests/lib/test.h"

static const struct nbd_export export = {
	.name = "disk",
	.description = "a test disk",
	.size = 64 << 20,
	.tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_CAN_MULTI_CONN,
	.min_block = 1,
	.pref_block = 4096,
	.max_block = 32 << 20,
};

/* Client bytes under construction. */
struct msg {
	uint8_t *p;
	size_t len;
};

static void put(struct msg *m, const void *d, size_t n)
{
	m->p = realloc(m->p, m->len + n);
	REQUIRE(m->p);
	memcpy(m->p + m->len, d, n);
	m->len += n;
}

static void put32(struct msg *m, uint32_t v)
{
	uint8_t b[4];

	nbd_put32(b, v);
	put(m, b, 4);
}

static void put16(struct msg *m, uint16_t v)
{
	uint8_t b[2];

	nbd_put16(b, v);
	put(m, b, 2);
}

static void opt_hdr(struct msg *m, uint32_t opt, uint32_t len)
{
	uint8_t b[16];

	nbd_put64(b, NBD_IHAVEOPT);
	nbd_put32(b + 8, opt);
	nbd_put32(b + 12, len);
	put(m, b, 16);
}

static void opt_go(struct msg *m, uint32_t opt, const char *name, unsigned nreq,
		   const uint16_t *reqs)
{
	uint32_t nl = (uint32_t)strlen(name);

	opt_hdr(m, opt, 4 + nl + 2 + 2 * nreq);
	put32(m, nl);
	put(m, name, nl);
	put16(m, (uint16_t)nreq);
	for (unsigned i = 0; i < nreq; i++)
		put16(m, reqs[i]);
}

static void opt_meta(struct msg *m, uint32_t opt, const char *name, unsigned nq,
		     const char *const *q)
{
	uint32_t len = 4 + (uint32_t)strlen(name) + 4;

	for (unsigned i = 0; i < nq; i++)
		len += 4 + (uint32_t)strlen(q[i]);
	opt_hdr(m, opt, len);
	put32(m, (uint32_t)strlen(name));
	put(m, name, strlen(name));
	put32(m, nq);
	for (unsigned i = 0; i < nq; i++) {
		put32(m, (uint32_t)strlen(q[i]));
		put(m, q[i], strlen(q[i]));
	}
}

/* One parsed option reply. */
struct rep {
	uint32_t opt, type, len;
	const uint8_t *data;
};

/* Splits out[off..) into replies; returns how many. */
static unsigned replies(const struct nbd_obuf *o, size_t off, struct rep *r, unsigned max)
{
	unsigned n = 0;

	while (off + 20 <= o->len && n < max) {
		REQUIRE(nbd_get64(o->data + off) == NBD_REP_MAGIC);
		r[n].opt = nbd_get32(o->data + off + 8);
		r[n].type = nbd_get32(o->data + off + 12);
		r[n].len = nbd_get32(o->data + off + 16);
		r[n].data = o->data + off + 20;
		REQUIRE(off + 20 + r[n].len <= o->len);
		off += 20 + r[n].len;
		n++;
	}
	CHECK_EQ(off, o->len);
	return n;
}

struct run {
	struct nbd_hs hs;
	struct nbd_obuf out;
	int result;
	size_t used;
};

/* Feeds everything at once, as far as the parser takes it. */
static void feed(struct run *r, const struct msg *m)
{
	nbd_hs_init(&r->hs, &export);
	memset(&r->out, 0, sizeof(r->out));
	r->result = nbd_hs_input(&r->hs, m->p, m->len, &r->used, &r->out);
}

/* Feeds in pieces of `step` bytes, keeping unused bytes like a receive
 * buffer does; the result must not depend on how the bytes were cut. */
static void feed_steps(struct run *r, const struct msg *m, size_t step)
{
	uint8_t *buf = malloc(m->len + 1);
	size_t have = 0, given = 0;

	REQUIRE(buf);
	nbd_hs_init(&r->hs, &export);
	memset(&r->out, 0, sizeof(r->out));
	r->result = NBD_HS_MORE;
	r->used = 0;
	while (given < m->len && r->result == NBD_HS_MORE) {
		size_t n = m->len - given < step ? m->len - given : step, used = 0;

		memcpy(buf + have, m->p + given, n);
		have += n;
		given += n;
		r->result = nbd_hs_input(&r->hs, buf, have, &used, &r->out);
		CHECK(used <= have);
		memmove(buf, buf + used, have - used);
		have -= used;
		r->used += used;
	}
	free(buf);
}

static void client_flags(struct msg *m, uint32_t f)
{
	memset(m, 0, sizeof(*m));
	put32(m, f);
}

static void test_greeting(void)
{
	struct nbd_obuf o = { 0 };

	CHECK_EQ(nbd_hs_greeting(&o), 0);
	CHECK_EQ(o.len, NBD_GREETING_LEN);
	CHECK(nbd_get64(o.data) == NBD_MAGIC);
	CHECK(nbd_get64(o.data + 8) == NBD_IHAVEOPT);
	CHECK_EQ(nbd_get16(o.data + 16), NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	nbd_obuf_free(&o);
}

static void test_client_flags(void)
{
	struct msg m;
	struct run r;

	client_flags(&m, 1u << 2);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_CLOSE);
	CHECK_EQ(r.out.len, 0);
	free(m.p);
	nbd_obuf_free(&r.out);

	/* Three bytes are not enough to decide. */
	client_flags(&m, 3);
	nbd_hs_init(&r.hs, &export);
	memset(&r.out, 0, sizeof(r.out));
	CHECK_EQ(nbd_hs_input(&r.hs, m.p, 3, &r.used, &r.out), NBD_HS_MORE);
	CHECK_EQ(r.used, 0);
	free(m.p);
	nbd_obuf_free(&r.out);
}

static void test_export_name(void)
{
	struct msg m;
	struct run r;

	/* NO_ZEROES: size and flags only. */
	client_flags(&m, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	opt_hdr(&m, NBD_OPT_EXPORT_NAME, 4);
	put(&m, "disk", 4);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_GO);
	CHECK_EQ(r.used, m.len);
	CHECK_EQ(r.out.len, 10);
	CHECK(nbd_get64(r.out.data) == export.size);
	CHECK_EQ(nbd_get16(r.out.data + 8), export.tflags);
	free(m.p);
	nbd_obuf_free(&r.out);

	/* Without NO_ZEROES: 124 zero bytes follow; the empty name works. */
	client_flags(&m, NBD_FLAG_C_FIXED_NEWSTYLE);
	opt_hdr(&m, NBD_OPT_EXPORT_NAME, 0);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_GO);
	CHECK_EQ(r.out.len, 134);
	CHECK_EQ(r.out.data[133], 0);
	free(m.p);
	nbd_obuf_free(&r.out);

	/* An unknown name cannot be answered: the session ends. */
	client_flags(&m, 3);
	opt_hdr(&m, NBD_OPT_EXPORT_NAME, 5);
	put(&m, "other", 5);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_CLOSE);
	CHECK_EQ(r.out.len, 0);
	free(m.p);
	nbd_obuf_free(&r.out);

	/* 4097 bytes: refused from the header alone, nothing buffered. */
	client_flags(&m, 3);
	opt_hdr(&m, NBD_OPT_EXPORT_NAME, 4097);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_CLOSE);
	free(m.p);
	nbd_obuf_free(&r.out);

	/* 0xffffffff likewise. */
	client_flags(&m, 3);
	opt_hdr(&m, NBD_OPT_EXPORT_NAME, 0xffffffff);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_CLOSE);
	free(m.p);
	nbd_obuf_free(&r.out);

	/* 4096 is allowed (and is simply not our name). */
	client_flags(&m, 3);
	opt_hdr(&m, NBD_OPT_EXPORT_NAME, 4096);
	{
		char *big = malloc(4096);

		memset(big, 'x', 4096);
		put(&m, big, 4096);
		free(big);
	}
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_CLOSE);
	CHECK_EQ(r.used, m.len);
	free(m.p);
	nbd_obuf_free(&r.out);
}

static void test_go(void)
{
	static const uint16_t reqs[] = { NBD_INFO_NAME, NBD_INFO_DESCRIPTION,
					 NBD_INFO_BLOCK_SIZE, NBD_INFO_NAME, 77 };
	struct rep rp[16];
	struct msg m;
	struct run r;
	unsigned n;

	client_flags(&m, 3);
	opt_hdr(&m, NBD_OPT_STRUCTURED_REPLY, 0);
	opt_go(&m, NBD_OPT_GO, "disk", 5, reqs);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_GO);
	CHECK_EQ(r.used, m.len);
	CHECK(r.hs.structured);
	n = replies(&r.out, 0, rp, 16);
	REQUIRE(n == 6);
	CHECK_EQ(rp[0].opt, NBD_OPT_STRUCTURED_REPLY);
	CHECK_EQ(rp[0].type, NBD_REP_ACK);
	CHECK_EQ(rp[1].type, NBD_REP_INFO);
	CHECK_EQ(rp[1].len, 12);
	CHECK_EQ(nbd_get16(rp[1].data), NBD_INFO_EXPORT);
	CHECK(nbd_get64(rp[1].data + 2) == export.size);
	CHECK_EQ(nbd_get16(rp[1].data + 10), export.tflags | NBD_FLAG_SEND_DF);
	CHECK_EQ(nbd_get16(rp[2].data), NBD_INFO_NAME);
	CHECK_EQ(rp[2].len, 2 + 4);
	CHECK(memcmp(rp[2].data + 2, "disk", 4) == 0);
	CHECK_EQ(nbd_get16(rp[3].data), NBD_INFO_DESCRIPTION);
	CHECK_EQ(rp[3].len, 2 + strlen(export.description));
	CHECK_EQ(nbd_get16(rp[4].data), NBD_INFO_BLOCK_SIZE);
	CHECK_EQ(rp[4].len, 14);
	CHECK_EQ(nbd_get32(rp[4].data + 2), 1);
	CHECK_EQ(nbd_get32(rp[4].data + 6), 4096);
	CHECK_EQ(nbd_get32(rp[4].data + 10), 32 << 20);
	CHECK_EQ(rp[5].type, NBD_REP_ACK);
	CHECK_EQ(rp[5].opt, NBD_OPT_GO);
	CHECK_EQ(nbd_hs_tflags(&r.hs), export.tflags | NBD_FLAG_SEND_DF);
	free(m.p);
	nbd_obuf_free(&r.out);

	/* INFO then GO; no DF without structured replies. */
	client_flags(&m, 3);
	opt_go(&m, NBD_OPT_INFO, "", 0, NULL);
	opt_go(&m, NBD_OPT_GO, "disk", 0, NULL);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_GO);
	n = replies(&r.out, 0, rp, 16);
	/* INFO: export, name (default name used), block size, ack; GO:
	 * export, block size, ack. */
	REQUIRE(n == 7);
	CHECK_EQ(rp[0].opt, NBD_OPT_INFO);
	CHECK_EQ(nbd_get16(rp[0].data + 10), export.tflags);
	CHECK_EQ(nbd_get16(rp[1].data), NBD_INFO_NAME);
	CHECK_EQ(rp[3].type, NBD_REP_ACK);
	CHECK_EQ(rp[3].opt, NBD_OPT_INFO);
	CHECK_EQ(rp[6].type, NBD_REP_ACK);
	CHECK_EQ(rp[6].opt, NBD_OPT_GO);
	free(m.p);
	nbd_obuf_free(&r.out);

	/* Bytes after a GO belong to the transmission phase. */
	client_flags(&m, 3);
	opt_go(&m, NBD_OPT_GO, "disk", 0, NULL);
	put(&m, "xxxx", 4);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_GO);
	CHECK_EQ(r.used, m.len - 4);
	free(m.p);
	nbd_obuf_free(&r.out);
}

/* GO/INFO with a bad name: the option fails, the session goes on. */
static void go_expect_error(uint32_t namelen_field, uint32_t optlen, size_t datalen,
			    uint32_t want)
{
	struct rep rp[4];
	struct msg m;
	struct run r;
	uint8_t *d = calloc(1, datalen + 1);

	REQUIRE(d);
	client_flags(&m, 3);
	opt_hdr(&m, NBD_OPT_GO, optlen);
	put32(&m, namelen_field);
	put(&m, d, datalen);
	free(d);
	opt_hdr(&m, NBD_OPT_ABORT, 0);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_CLOSE);
	CHECK_EQ(r.used, m.len);
	REQUIRE(replies(&r.out, 0, rp, 4) == 2);
	CHECK_EQ(rp[0].opt, NBD_OPT_GO);
	CHECK_EQ(rp[0].type, want);
	CHECK_EQ(rp[1].opt, NBD_OPT_ABORT);
	CHECK_EQ(rp[1].type, NBD_REP_ACK);
	free(m.p);
	nbd_obuf_free(&r.out);
}

static void test_go_bad_names(void)
{
	/* Name 4096 (all zero bytes, not ours), 4097, 0xffffffff, longer
	 * than the option, option shorter than its fixed part, counts that
	 * do not add up. */
	go_expect_error(4096, 4 + 4096 + 2, 4096 + 2, NBD_REP_ERR_UNKNOWN);
	go_expect_error(4097, 4 + 4097 + 2, 4097 + 2, NBD_REP_ERR_INVALID);
	go_expect_error(0xffffffff, 4 + 10, 10, NBD_REP_ERR_INVALID);
	go_expect_error(20, 4 + 10, 10, NBD_REP_ERR_INVALID);
	go_expect_error(0, 4, 0, NBD_REP_ERR_INVALID);
	go_expect_error(0, 4 + 2 + 3, 2 + 3, NBD_REP_ERR_INVALID);
	/* Zero-length name with zero requests is the default export. */
	{
		struct msg m;
		struct run r;

		client_flags(&m, 3);
		opt_go(&m, NBD_OPT_GO, "", 0, NULL);
		feed(&r, &m);
		CHECK_EQ(r.result, NBD_HS_GO);
		free(m.p);
		nbd_obuf_free(&r.out);
	}
}

static void test_oversized(void)
{
	struct rep rp[4];
	struct msg m;
	struct run r;

	/* 4 GB option: refused after the header, nothing read. */
	client_flags(&m, 3);
	opt_hdr(&m, NBD_OPT_GO, 0xffffffff);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_CLOSE);
	CHECK_EQ(r.out.len, 0);
	free(m.p);
	nbd_obuf_free(&r.out);

	client_flags(&m, 3);
	opt_hdr(&m, 1234, 0xfffffff0);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_CLOSE);
	free(m.p);
	nbd_obuf_free(&r.out);

	/* 100 000 bytes of GO: skipped in pieces (never buffered whole),
	 * then ERR_TOO_BIG, then the session goes on. */
	{
		uint8_t *junk = calloc(1, 100000);

		REQUIRE(junk);
		client_flags(&m, 3);
		opt_hdr(&m, NBD_OPT_GO, 100000);
		put(&m, junk, 100000);
		free(junk);
	}
	opt_go(&m, NBD_OPT_GO, "disk", 0, NULL);
	feed_steps(&r, &m, 4000);
	CHECK_EQ(r.result, NBD_HS_GO);
	CHECK_EQ(r.used, m.len);
	REQUIRE(replies(&r.out, 0, rp, 4) == 4);
	CHECK_EQ(rp[0].type, NBD_REP_ERR_TOO_BIG);
	CHECK_EQ(rp[3].type, NBD_REP_ACK);
	free(m.p);
	nbd_obuf_free(&r.out);
}

static void test_unknown_and_simple_options(void)
{
	struct rep rp[16];
	struct msg m;
	struct run r;
	unsigned n;

	client_flags(&m, 3);
	opt_hdr(&m, 99, 10);
	put(&m, "0123456789", 10);
	opt_hdr(&m, NBD_OPT_PEEK_EXPORT, 0);
	opt_hdr(&m, NBD_OPT_STARTTLS, 0);
	opt_hdr(&m, NBD_OPT_STARTTLS, 3);
	put(&m, "abc", 3);
	opt_hdr(&m, NBD_OPT_LIST, 0);
	opt_hdr(&m, NBD_OPT_LIST, 1);
	put(&m, "x", 1);
	opt_hdr(&m, NBD_OPT_STRUCTURED_REPLY, 2);
	put(&m, "xy", 2);
	opt_hdr(&m, NBD_OPT_EXTENDED_HEADERS, 0);
	opt_hdr(&m, NBD_OPT_ABORT, 5);
	put(&m, "hello", 5);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_CLOSE);
	CHECK_EQ(r.used, m.len);
	CHECK(!r.hs.structured);
	n = replies(&r.out, 0, rp, 16);
	REQUIRE(n == 10);
	CHECK_EQ(rp[0].opt, 99);
	CHECK_EQ(rp[0].type, NBD_REP_ERR_UNSUP);
	CHECK_EQ(rp[1].type, NBD_REP_ERR_UNSUP);
	CHECK(rp[2].type == NBD_REP_ERR_POLICY || rp[2].type == NBD_REP_ERR_UNSUP);
	CHECK_EQ(rp[3].type, NBD_REP_ERR_INVALID);
	CHECK_EQ(rp[4].type, NBD_REP_SERVER);
	CHECK_EQ(nbd_get32(rp[4].data), 4);
	CHECK(memcmp(rp[4].data + 4, "disk", 4) == 0);
	CHECK_EQ(rp[5].type, NBD_REP_ACK);
	CHECK_EQ(rp[6].type, NBD_REP_ERR_INVALID);
	CHECK_EQ(rp[7].type, NBD_REP_ERR_INVALID);
	CHECK_EQ(rp[8].type, NBD_REP_ERR_UNSUP);
	CHECK_EQ(rp[9].opt, NBD_OPT_ABORT);
	CHECK_EQ(rp[9].type, NBD_REP_ACK);
	free(m.p);
	nbd_obuf_free(&r.out);

	/* Bad option magic ends it. */
	client_flags(&m, 3);
	put(&m, "IHAVEOPX\0\0\0\1\0\0\0\0", 16);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_CLOSE);
	free(m.p);
	nbd_obuf_free(&r.out);
}

static void test_option_cap(void)
{
	struct msg m;
	struct run r;

	client_flags(&m, 3);
	for (int i = 0; i < NBD_HS_MAX_OPTIONS; i++)
		opt_hdr(&m, NBD_OPT_LIST, 0);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_MORE);
	CHECK_EQ(r.used, m.len);
	opt_go(&m, NBD_OPT_GO, "disk", 0, NULL);
	nbd_obuf_free(&r.out);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_CLOSE);
	free(m.p);
	nbd_obuf_free(&r.out);
}

static void test_meta_context(void)
{
	static const char *const q1[] = { "base:allocation" };
	static const char *const q2[] = { "qemu:dirty-bitmap:x", "base:allocation",
					  "base:allocation", "nocolon" };
	static const char *const q3[] = { "base:" };
	struct rep rp[16];
	struct msg m;
	struct run r;
	unsigned n;

	/* SET before structured replies is invalid. */
	client_flags(&m, 3);
	opt_meta(&m, NBD_OPT_SET_META_CONTEXT, "disk", 1, q1);
	opt_hdr(&m, NBD_OPT_STRUCTURED_REPLY, 0);
	opt_meta(&m, NBD_OPT_SET_META_CONTEXT, "disk", 4, q2);
	opt_meta(&m, NBD_OPT_LIST_META_CONTEXT, "", 0, NULL);
	opt_meta(&m, NBD_OPT_LIST_META_CONTEXT, "disk", 1, q3);
	opt_meta(&m, NBD_OPT_SET_META_CONTEXT, "", 1, q3);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_MORE);
	CHECK_EQ(r.used, m.len);
	n = replies(&r.out, 0, rp, 16);
	REQUIRE(n == 9);
	CHECK_EQ(rp[0].type, NBD_REP_ERR_INVALID);
	CHECK_EQ(rp[1].type, NBD_REP_ACK);
	/* One context, once, with a nonzero id. */
	CHECK_EQ(rp[2].type, NBD_REP_META_CONTEXT);
	CHECK_EQ(nbd_get32(rp[2].data), NBD_META_ID_BASE_ALLOCATION);
	CHECK_EQ(rp[2].len, 4 + strlen("base:allocation"));
	CHECK(memcmp(rp[2].data + 4, "base:allocation", 15) == 0);
	CHECK_EQ(rp[3].type, NBD_REP_ACK);
	/* LIST with no query and with "base:" list it (id 0). */
	CHECK_EQ(rp[4].type, NBD_REP_META_CONTEXT);
	CHECK_EQ(nbd_get32(rp[4].data), 0);
	CHECK_EQ(rp[5].type, NBD_REP_ACK);
	CHECK_EQ(rp[6].type, NBD_REP_META_CONTEXT);
	CHECK_EQ(rp[7].type, NBD_REP_ACK);
	/* SET "base:" selects nothing and clears the selection. */
	CHECK_EQ(rp[8].type, NBD_REP_ACK);
	CHECK(!r.hs.meta_base_allocation);
	free(m.p);
	nbd_obuf_free(&r.out);

	/* A query length past the option: invalid, selection cleared. */
	client_flags(&m, 3);
	opt_hdr(&m, NBD_OPT_STRUCTURED_REPLY, 0);
	opt_meta(&m, NBD_OPT_SET_META_CONTEXT, "disk", 1, q1);
	opt_hdr(&m, NBD_OPT_SET_META_CONTEXT, 4 + 4 + 4 + 3);
	put32(&m, 0);
	put32(&m, 1);
	put32(&m, 1000);
	put(&m, "abc", 3);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_MORE);
	n = replies(&r.out, 0, rp, 16);
	REQUIRE(n == 4);
	CHECK_EQ(rp[3].type, NBD_REP_ERR_INVALID);
	CHECK(!r.hs.meta_base_allocation);
	free(m.p);
	nbd_obuf_free(&r.out);

	/* Unknown export name. */
	client_flags(&m, 3);
	opt_hdr(&m, NBD_OPT_STRUCTURED_REPLY, 0);
	opt_meta(&m, NBD_OPT_SET_META_CONTEXT, "nope", 1, q1);
	feed(&r, &m);
	n = replies(&r.out, 0, rp, 16);
	REQUIRE(n == 2);
	CHECK_EQ(rp[1].type, NBD_REP_ERR_UNKNOWN);
	free(m.p);
	nbd_obuf_free(&r.out);

	/* Selected, then GO: stays selected. */
	client_flags(&m, 3);
	opt_hdr(&m, NBD_OPT_STRUCTURED_REPLY, 0);
	opt_meta(&m, NBD_OPT_SET_META_CONTEXT, "disk", 1, q1);
	opt_go(&m, NBD_OPT_GO, "disk", 0, NULL);
	feed(&r, &m);
	CHECK_EQ(r.result, NBD_HS_GO);
	CHECK(r.hs.meta_base_allocation);
	CHECK(r.hs.structured);
	free(m.p);
	nbd_obuf_free(&r.out);
}

static void test_shutdown(void)
{
	struct rep rp[4];
	struct msg m;
	struct run r;

	client_flags(&m, 3);
	opt_go(&m, NBD_OPT_GO, "disk", 0, NULL);
	opt_hdr(&m, NBD_OPT_ABORT, 0);
	nbd_hs_init(&r.hs, &export);
	r.hs.shutting_down = true;
	memset(&r.out, 0, sizeof(r.out));
	r.result = nbd_hs_input(&r.hs, m.p, m.len, &r.used, &r.out);
	CHECK_EQ(r.result, NBD_HS_CLOSE);
	REQUIRE(replies(&r.out, 0, rp, 4) == 2);
	CHECK_EQ(rp[0].type, NBD_REP_ERR_SHUTDOWN);
	CHECK_EQ(rp[1].type, NBD_REP_ACK);
	free(m.p);
	nbd_obuf_free(&r.out);
}

/* A whole conversation cut at every offset must give the same result as
 * fed at once. */
static void test_every_cut(void)
{
	static const uint16_t reqs[] = { NBD_INFO_BLOCK_SIZE };
	static const char *const q1[] = { "base:allocation" };
	struct msg m;
	struct run whole, part;

	client_flags(&m, 3);
	opt_hdr(&m, 42, 3);
	put(&m, "abc", 3);
	opt_hdr(&m, NBD_OPT_STRUCTURED_REPLY, 0);
	opt_meta(&m, NBD_OPT_SET_META_CONTEXT, "disk", 1, q1);
	opt_hdr(&m, NBD_OPT_LIST, 0);
	opt_go(&m, NBD_OPT_INFO, "disk", 1, reqs);
	opt_go(&m, NBD_OPT_GO, "disk", 1, reqs);
	feed(&whole, &m);
	CHECK_EQ(whole.result, NBD_HS_GO);

	for (size_t step = 1; step <= 64; step++) {
		feed_steps(&part, &m, step);
		CHECK_EQ(part.result, NBD_HS_GO);
		CHECK_EQ(part.used, m.len);
		CHECK_EQ(part.out.len, whole.out.len);
		CHECK(part.out.len == whole.out.len &&
		      memcmp(part.out.data, whole.out.data, whole.out.len) == 0);
		nbd_obuf_free(&part.out);
	}
	/* Every prefix: the parser waits, never fails. */
	for (size_t cut = 0; cut < m.len; cut++) {
		struct run p;
		size_t used;

		nbd_hs_init(&p.hs, &export);
		memset(&p.out, 0, sizeof(p.out));
		p.result = nbd_hs_input(&p.hs, m.p, cut, &used, &p.out);
		CHECK_EQ(p.result, NBD_HS_MORE);
		CHECK(used <= cut);
		nbd_obuf_free(&p.out);
	}
	free(m.p);
	nbd_obuf_free(&whole.out);
}

int main(void)
{
	test_greeting();
	test_client_flags();
	test_export_name();
	test_go();
	test_go_bad_names();
	test_oversized();
	test_unknown_and_simple_options();
	test_option_cap();
	test_meta_context();
	test_shutdown();
	test_every_cut();
	return test_done("test-nbd-handshake");
}
