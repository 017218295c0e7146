/* Fixed newstyle negotiation: client flags, then options until
 * NBD_OPT_EXPORT_NAME or a successful NBD_OPT_GO.
 *
 * An option is parsed only when all of its data is in the input, so its
 * length is checked first: an option that carries no data, an unknown
 * option and an oversized one are skipped by counting bytes (never
 * buffered), then answered.  Lengths no client needs (NBD_HS_MAX_DISCARD)
 * and more than NBD_HS_MAX_OPTIONS options end the connection: the spec
 * lets a server hang up on a client it takes for a denial of service.
 *
 * TLS: STARTTLS is acknowledged here and the connection does the rest
 * (NBD_HS_STARTTLS: it drops whatever followed the option in clear text,
 * so nothing a client pipelined behind STARTTLS is ever acted upon).
 * Under NBD_TLS_REQUIRE every other option but ABORT is skipped unread
 * and answered ERR_TLS_REQD until nbd_hs_tls_done: LIST reveals nothing,
 * INFO and GO open nothing, EXPORT_NAME (which has no error reply) ends
 * the session. */
#include <errno.h>
#include <string.h>

#include "frontends/nbd-handshake.h"
#include "frontends/nbd-proto.h"

void nbd_hs_init(struct nbd_hs *hs, const struct nbd_export *exp)
{
	memset(hs, 0, sizeof(*hs));
	hs->exp = exp;
	hs->state = NBD_HS_CLIENT_FLAGS;
}

void nbd_hs_set_tls(struct nbd_hs *hs, enum nbd_tls_mode mode)
{
	hs->tls_mode = mode;
}

void nbd_hs_tls_done(struct nbd_hs *hs)
{
	hs->tls_active = true;
}

uint16_t nbd_hs_tflags(const struct nbd_hs *hs)
{
	uint16_t f = hs->exp->tflags | NBD_FLAG_HAS_FLAGS;

	/* DF only means something once replies can be fragmented. */
	if (hs->structured)
		f |= NBD_FLAG_SEND_DF;
	return f;
}

int nbd_hs_greeting(struct nbd_obuf *out)
{
	uint8_t *p = nbd_obuf_append(out, NBD_GREETING_LEN);

	if (!p)
		return -ENOMEM;
	nbd_put64(p, NBD_MAGIC);
	nbd_put64(p + 8, NBD_IHAVEOPT);
	nbd_put16(p + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	return 0;
}

/* One option reply: header, then len bytes of data (or data2 after data
 * when given, so callers need no scratch buffer). */
static int nbd_hs_reply2(struct nbd_obuf *out, uint32_t opt, uint32_t type,
		  const void *data, size_t len, const void *data2, size_t len2)
{
	uint8_t *p = nbd_obuf_append(out, NBD_OPT_REPLY_HDR_LEN + len + len2);

	if (!p)
		return -ENOMEM;
	nbd_put64(p, NBD_REP_MAGIC);
	nbd_put32(p + 8, opt);
	nbd_put32(p + 12, type);
	nbd_put32(p + 16, (uint32_t)(len + len2));
	if (len)
		memcpy(p + NBD_OPT_REPLY_HDR_LEN, data, len);
	if (len2)
		memcpy(p + NBD_OPT_REPLY_HDR_LEN + len, data2, len2);
	return 0;
}

static int nbd_hs_reply(struct nbd_obuf *out, uint32_t opt, uint32_t type,
		 const void *data, size_t len)
{
	return nbd_hs_reply2(out, opt, type, data, len, NULL, 0);
}

/* An error reply carries a message for the user. */
static int nbd_hs_reply_err(struct nbd_hs *hs, struct nbd_obuf *out, uint32_t opt,
		     uint32_t type, const char *msg)
{
	hs->why = msg;
	return nbd_hs_reply(out, opt, type, msg, msg ? strlen(msg) : 0);
}

/* The export name is the disk's name; the empty name is the default. */
static bool nbd_hs_name_matches(const struct nbd_hs *hs, const uint8_t *name, uint32_t len)
{
	return len == 0 ||
		(len == strlen(hs->exp->name) && memcmp(name, hs->exp->name, len) == 0);
}

static int nbd_hs_info_export(struct nbd_hs *hs, struct nbd_obuf *out, uint32_t opt)
{
	uint8_t d[12];

	nbd_put16(d, NBD_INFO_EXPORT);
	nbd_put64(d + 2, hs->exp->size);
	nbd_put16(d + 10, nbd_hs_tflags(hs));
	return nbd_hs_reply(out, opt, NBD_REP_INFO, d, sizeof(d));
}

static int nbd_hs_info_string(struct nbd_obuf *out, uint32_t opt, uint16_t type, const char *s)
{
	uint8_t d[2];

	nbd_put16(d, type);
	return nbd_hs_reply2(out, opt, NBD_REP_INFO, d, sizeof(d), s, strlen(s));
}

static int nbd_hs_info_block_size(struct nbd_hs *hs, struct nbd_obuf *out, uint32_t opt)
{
	uint8_t d[14];

	nbd_put16(d, NBD_INFO_BLOCK_SIZE);
	nbd_put32(d + 2, hs->exp->min_block);
	nbd_put32(d + 6, hs->exp->pref_block);
	nbd_put32(d + 10, hs->exp->max_block);
	return nbd_hs_reply(out, opt, NBD_REP_INFO, d, sizeof(d));
}

/* NBD_OPT_INFO and NBD_OPT_GO: name length, name, count, info requests. */
static int nbd_hs_opt_info_go(struct nbd_hs *hs, uint32_t opt, const uint8_t *d, uint32_t n,
		       struct nbd_obuf *out)
{
	uint32_t namelen;
	uint16_t nreq;
	unsigned want = 0;
	int r;

	if (n < 6)
		return nbd_hs_reply_err(hs, out, opt, NBD_REP_ERR_INVALID, "option too short");
	namelen = nbd_get32(d);
	if (namelen > n - 6)
		return nbd_hs_reply_err(hs, out, opt, NBD_REP_ERR_INVALID,
				 "name length exceeds the option");
	nreq = nbd_get16(d + 4 + namelen);
	if ((uint64_t)n != 4 + (uint64_t)namelen + 2 + 2 * (uint64_t)nreq)
		return nbd_hs_reply_err(hs, out, opt, NBD_REP_ERR_INVALID,
				 "option length does not match its contents");
	if (namelen > NBD_MAX_STRING)
		return nbd_hs_reply_err(hs, out, opt, NBD_REP_ERR_INVALID, "export name too long");
	if (!nbd_hs_name_matches(hs, d + 4, namelen))
		return nbd_hs_reply_err(hs, out, opt, NBD_REP_ERR_UNKNOWN, "no such export");

	/* Unknown requests are ignored; duplicates answered once. */
	for (unsigned i = 0; i < nreq; i++) {
		uint16_t type = nbd_get16(d + 4 + namelen + 2 + 2 * i);

		if (type <= NBD_INFO_BLOCK_SIZE)
			want |= 1u << type;
	}

	r = nbd_hs_info_export(hs, out, opt);
	/* The canonical name, when asked or when the client used the default. */
	if (!r && ((want & (1u << NBD_INFO_NAME)) || namelen == 0))
		r = nbd_hs_info_string(out, opt, NBD_INFO_NAME, hs->exp->name);
	if (!r && (want & (1u << NBD_INFO_DESCRIPTION)) && hs->exp->description)
		r = nbd_hs_info_string(out, opt, NBD_INFO_DESCRIPTION, hs->exp->description);
	/* Sent unasked too: the 32 MiB maximum is not the default. */
	if (!r)
		r = nbd_hs_info_block_size(hs, out, opt);
	if (!r)
		r = nbd_hs_reply(out, opt, NBD_REP_ACK, NULL, 0);
	if (r)
		return r;
	if (opt == NBD_OPT_GO) {
		hs->block_size_asked = want & (1u << NBD_INFO_BLOCK_SIZE);
		hs->state = NBD_HS_DONE;
		return NBD_HS_GO;
	}
	return NBD_HS_MORE;
}

static int nbd_hs_opt_export_name(struct nbd_hs *hs, const uint8_t *d, uint32_t n,
			   struct nbd_obuf *out)
{
	size_t len = 8 + 2 + (hs->no_zeroes ? 0 : 124);
	uint8_t *p;

	/* This option cannot fail politely: the session ends. */
	if (hs->shutting_down || !nbd_hs_name_matches(hs, d, n)) {
		hs->why = hs->shutting_down ? "shutting down" : "no such export";
		hs->state = NBD_HS_CLOSED;
		return NBD_HS_CLOSE;
	}
	p = nbd_obuf_append(out, len);
	if (!p)
		return -ENOMEM;
	memset(p, 0, len);
	nbd_put64(p, hs->exp->size);
	nbd_put16(p + 8, nbd_hs_tflags(hs));
	hs->state = NBD_HS_DONE;
	return NBD_HS_GO;
}

static int nbd_hs_opt_list(struct nbd_hs *hs, struct nbd_obuf *out)
{
	const char *desc = hs->exp->description ? hs->exp->description : "";
	size_t namelen = strlen(hs->exp->name);
	uint8_t *p = nbd_obuf_append(out, NBD_OPT_REPLY_HDR_LEN + 4 + namelen + strlen(desc));

	if (!p)
		return -ENOMEM;
	nbd_put64(p, NBD_REP_MAGIC);
	nbd_put32(p + 8, NBD_OPT_LIST);
	nbd_put32(p + 12, NBD_REP_SERVER);
	nbd_put32(p + 16, (uint32_t)(4 + namelen + strlen(desc)));
	nbd_put32(p + 20, (uint32_t)namelen);
	memcpy(p + 24, hs->exp->name, namelen);
	memcpy(p + 24 + namelen, desc, strlen(desc));
	return nbd_hs_reply(out, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

static bool nbd_hs_query_is(const uint8_t *q, uint32_t len, const char *s)
{
	return len == strlen(s) && memcmp(q, s, len) == 0;
}

/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT: name length,
 * name, query count, queries (length, string).  Only base:allocation
 * exists; queries of other namespaces are ignored as the spec says. */
static int nbd_hs_opt_meta_context(struct nbd_hs *hs, uint32_t opt, const uint8_t *d,
			    uint32_t n, struct nbd_obuf *out)
{
	bool set = opt == NBD_OPT_SET_META_CONTEXT;
	bool match = false;
	uint32_t namelen, nq, p;
	uint8_t id[4];
	int r;

	/* A SET replaces the selection, even when it fails. */
	if (set)
		hs->meta_base_allocation = false;
	if (set && !hs->structured)
		return nbd_hs_reply_err(hs, out, opt, NBD_REP_ERR_INVALID,
				 "structured replies not negotiated");
	if (n < 8)
		return nbd_hs_reply_err(hs, out, opt, NBD_REP_ERR_INVALID, "option too short");
	namelen = nbd_get32(d);
	if (namelen > n - 8)
		return nbd_hs_reply_err(hs, out, opt, NBD_REP_ERR_INVALID,
				 "name length exceeds the option");
	if (namelen > NBD_MAX_STRING)
		return nbd_hs_reply_err(hs, out, opt, NBD_REP_ERR_INVALID, "export name too long");
	p = 4 + namelen;
	nq = nbd_get32(d + p);
	p += 4;
	/* Every query needs 4 bytes, so this loop is bounded by n / 4. */
	for (uint32_t i = 0; i < nq; i++) {
		uint32_t ql;

		if (n - p < 4)
			return nbd_hs_reply_err(hs, out, opt, NBD_REP_ERR_INVALID,
					 "queries exceed the option");
		ql = nbd_get32(d + p);
		p += 4;
		if (ql > n - p)
			return nbd_hs_reply_err(hs, out, opt, NBD_REP_ERR_INVALID,
					 "query length exceeds the option");
		if (ql > NBD_MAX_STRING)
			return nbd_hs_reply_err(hs, out, opt, NBD_REP_ERR_INVALID, "query too long");
		if (nbd_hs_query_is(d + p, ql, NBD_META_BASE_ALLOCATION) ||
		    (!set && nbd_hs_query_is(d + p, ql, "base:")))
			match = true;
		p += ql;
	}
	if (p != n)
		return nbd_hs_reply_err(hs, out, opt, NBD_REP_ERR_INVALID,
				 "trailing bytes after the queries");
	if (!nbd_hs_name_matches(hs, d + 4, namelen))
		return nbd_hs_reply_err(hs, out, opt, NBD_REP_ERR_UNKNOWN, "no such export");
	/* LIST with no query lists everything; SET with none selects none. */
	if (!set && nq == 0)
		match = true;
	if (match) {
		/* LIST's ids are reserved and SHOULD be zero. */
		nbd_put32(id, set ? NBD_META_ID_BASE_ALLOCATION : 0);
		r = nbd_hs_reply2(out, opt, NBD_REP_META_CONTEXT, id, sizeof(id),
			   NBD_META_BASE_ALLOCATION, strlen(NBD_META_BASE_ALLOCATION));
		if (r)
			return r;
		if (set)
			hs->meta_base_allocation = true;
	}
	return nbd_hs_reply(out, opt, NBD_REP_ACK, NULL, 0);
}

/* An option with all its data at hand. */
static int nbd_hs_opt_run(struct nbd_hs *hs, uint32_t opt, const uint8_t *d, uint32_t n,
		   struct nbd_obuf *out)
{
	switch (opt) {
	case NBD_OPT_EXPORT_NAME:
		return nbd_hs_opt_export_name(hs, d, n, out);
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		return nbd_hs_opt_info_go(hs, opt, d, n, out);
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		return nbd_hs_opt_meta_context(hs, opt, d, n, out);
	}
	return -EINVAL;		/* not reached: see nbd_hs_opt_header */
}

/* The reply to an option whose data is not needed, sent once that data
 * has been skipped.  Returns the reply type and sets *msg. */
static uint32_t nbd_hs_opt_dataless(struct nbd_hs *hs, uint32_t opt, uint32_t n, const char **msg)
{
	*msg = NULL;
	switch (opt) {
	case NBD_OPT_ABORT:
		/* Data is ignored, as the spec asks. */
		return NBD_REP_ACK;
	case NBD_OPT_LIST:
	case NBD_OPT_STRUCTURED_REPLY:
	case NBD_OPT_STARTTLS:
		if (n) {
			*msg = "this option takes no data";
			return NBD_REP_ERR_INVALID;
		}
		if (opt == NBD_OPT_STARTTLS && hs->tls_mode == NBD_TLS_OFF) {
			*msg = "TLS is not supported by this server";
			return NBD_REP_ERR_POLICY;
		}
		if (opt == NBD_OPT_STARTTLS && hs->tls_active) {
			*msg = "TLS is already active";
			return NBD_REP_ERR_INVALID;
		}
		return NBD_REP_ACK;
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		*msg = "option too long";
		return NBD_REP_ERR_TOO_BIG;
	}
	*msg = "option not supported";
	return NBD_REP_ERR_UNSUP;
}

/* Runs once the data of a skipped option is gone. */
static int nbd_hs_opt_finish_discard(struct nbd_hs *hs, struct nbd_obuf *out)
{
	uint32_t opt = hs->discard_opt;
	int r;

	hs->state = NBD_HS_OPTION;
	if (hs->discard_reply != NBD_REP_ACK || hs->discard_msg)
		r = nbd_hs_reply_err(hs, out, opt, hs->discard_reply, hs->discard_msg);
	else if (opt == NBD_OPT_LIST)
		r = nbd_hs_opt_list(hs, out);
	else
		r = nbd_hs_reply(out, opt, NBD_REP_ACK, NULL, 0);
	if (r)
		return r;
	if (opt == NBD_OPT_STRUCTURED_REPLY && hs->discard_reply == NBD_REP_ACK)
		hs->structured = true;
	if (opt == NBD_OPT_STARTTLS && hs->discard_reply == NBD_REP_ACK) {
		/* What was agreed in clear text is forgotten (the spec asks
		 * the client to negotiate it again under TLS). */
		hs->structured = false;
		hs->meta_base_allocation = false;
		return NBD_HS_STARTTLS;
	}
	if (opt == NBD_OPT_ABORT) {
		hs->state = NBD_HS_CLOSED;
		return NBD_HS_CLOSE;
	}
	return NBD_HS_MORE;
}

static bool nbd_hs_opt_parsed(uint32_t opt)
{
	return opt == NBD_OPT_EXPORT_NAME || opt == NBD_OPT_INFO || opt == NBD_OPT_GO ||
		opt == NBD_OPT_LIST_META_CONTEXT || opt == NBD_OPT_SET_META_CONTEXT;
}

static int nbd_hs_close(struct nbd_hs *hs, const char *why)
{
	hs->why = why;
	hs->state = NBD_HS_CLOSED;
	return NBD_HS_CLOSE;
}

/* Under NBD_TLS_REQUIRE before TLS: the option's data is skipped unread
 * and the answer is ERR_TLS_REQD, whatever the option. */
static int nbd_hs_tls_required(struct nbd_hs *hs, uint32_t opt, uint32_t n, size_t *used,
			       struct nbd_obuf *out)
{
	if (++hs->nr_options > NBD_HS_MAX_OPTIONS)
		return nbd_hs_close(hs, "too many options");
	if (opt == NBD_OPT_EXPORT_NAME)
		return nbd_hs_close(hs, "EXPORT_NAME without TLS");
	if (n > NBD_HS_MAX_DISCARD)
		return nbd_hs_close(hs, "option too long");
	*used = NBD_OPT_HDR_LEN;
	hs->discard_opt = opt;
	hs->discard_left = n;
	hs->discard_reply = NBD_REP_ERR_TLS_REQD;
	hs->discard_msg = "TLS is required: send NBD_OPT_STARTTLS first";
	hs->state = NBD_HS_DISCARD;
	if (n == 0)
		return nbd_hs_opt_finish_discard(hs, out);
	return NBD_HS_MORE;
}

/* A whole option header is at in[0..16).  Either starts a skip (and
 * consumes the header) or waits for the data and runs the option. */
static int nbd_hs_opt_header(struct nbd_hs *hs, const uint8_t *in, size_t avail, size_t *used,
		      struct nbd_obuf *out)
{
	uint64_t magic = nbd_get64(in);
	uint32_t opt = nbd_get32(in + 8);
	uint32_t n = nbd_get32(in + 12);
	int r;

	if (magic != NBD_IHAVEOPT)
		return nbd_hs_close(hs, "bad option magic");

	if (hs->tls_mode == NBD_TLS_REQUIRE && !hs->tls_active &&
	    opt != NBD_OPT_STARTTLS && opt != NBD_OPT_ABORT)
		return nbd_hs_tls_required(hs, opt, n, used, out);

	if (opt == NBD_OPT_EXPORT_NAME && n > NBD_MAX_STRING)
		return nbd_hs_close(hs, "export name too long");

	if (nbd_hs_opt_parsed(opt) && n <= NBD_HS_MAX_OPTLEN && !hs->shutting_down) {
		if (avail < NBD_OPT_HDR_LEN + (size_t)n)
			return NBD_HS_MORE;		/* *used stays 0 */
		if (++hs->nr_options > NBD_HS_MAX_OPTIONS)
			return nbd_hs_close(hs, "too many options");
		*used = NBD_OPT_HDR_LEN + n;
		return nbd_hs_opt_run(hs, opt, in + NBD_OPT_HDR_LEN, n, out);
	}

	if (++hs->nr_options > NBD_HS_MAX_OPTIONS)
		return nbd_hs_close(hs, "too many options");
	if (opt == NBD_OPT_EXPORT_NAME)		/* shutting down */
		return nbd_hs_opt_export_name(hs, NULL, 0, out);
	if (n > NBD_HS_MAX_DISCARD)
		return nbd_hs_close(hs, "option too long");
	if (opt == NBD_OPT_SET_META_CONTEXT)
		hs->meta_base_allocation = false;
	*used = NBD_OPT_HDR_LEN;
	hs->discard_opt = opt;
	hs->discard_left = n;
	hs->discard_reply = nbd_hs_opt_dataless(hs, opt, n, &hs->discard_msg);
	if (hs->shutting_down && opt != NBD_OPT_ABORT) {
		hs->discard_reply = NBD_REP_ERR_SHUTDOWN;
		hs->discard_msg = "server shutting down";
	}
	hs->state = NBD_HS_DISCARD;
	if (n == 0) {
		r = nbd_hs_opt_finish_discard(hs, out);
		return r;
	}
	return NBD_HS_MORE;
}

int nbd_hs_input(struct nbd_hs *hs, const uint8_t *in, size_t len, size_t *used,
		 struct nbd_obuf *out)
{
	size_t pos = 0;
	int r = NBD_HS_MORE;

	for (;;) {
		size_t avail = len - pos, u = 0;

		switch (hs->state) {
		case NBD_HS_CLIENT_FLAGS: {
			uint32_t flags;

			if (avail < NBD_CLIENT_FLAGS_LEN)
				goto out;
			flags = nbd_get32(in + pos);
			pos += NBD_CLIENT_FLAGS_LEN;
			/* Unknown flags end the session (a MUST).  A client
			 * without FIXED_NEWSTYLE is served fixed newstyle
			 * anyway: it will only send EXPORT_NAME. */
			if (flags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
				r = nbd_hs_close(hs, "unknown client flags");
				goto out;
			}
			hs->no_zeroes = flags & NBD_FLAG_C_NO_ZEROES;
			hs->state = NBD_HS_OPTION;
			break;
		}
		case NBD_HS_OPTION:
			if (avail < NBD_OPT_HDR_LEN)
				goto out;
			r = nbd_hs_opt_header(hs, in + pos, avail, &u, out);
			pos += u;
			if (r != NBD_HS_MORE || u == 0)
				goto out;
			break;
		case NBD_HS_DISCARD: {
			size_t d = avail < hs->discard_left ? avail : hs->discard_left;

			pos += d;
			hs->discard_left -= (uint32_t)d;
			if (hs->discard_left)
				goto out;
			r = nbd_hs_opt_finish_discard(hs, out);
			if (r != NBD_HS_MORE)
				goto out;
			break;
		}
		case NBD_HS_DONE:
		case NBD_HS_CLOSED:
			goto out;
		}
	}
out:
	*used = pos;
	return r;
}
