/* The fixed newstyle handshake as a byte-stream state machine: bytes in,
 * reply bytes out, no sockets.  The connection code feeds it what it
 * read; the unit tests feed it malformed input directly. */
#ifndef VD_NBD_HANDSHAKE_H
#define VD_NBD_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frontends/nbd.h"

/* What the handshake tells the client about the one export. */
struct nbd_export {
	const char *name;
	const char *description;	/* NULL: none */
	uint64_t size;
	uint16_t tflags;		/* transmission flags without SEND_DF */
	uint32_t min_block, pref_block, max_block;
};

/* A growable byte buffer for handshake replies (not the data path). */
struct nbd_obuf {
	uint8_t *data;
	size_t off;		/* sent so far */
	size_t len;		/* filled */
	size_t cap;
};

/* Returns room for n more bytes at the end (counted as filled), or NULL
 * when memory is short. */
uint8_t *nbd_obuf_append(struct nbd_obuf *b, size_t n);
int nbd_obuf_put(struct nbd_obuf *b, const void *p, size_t n);
void nbd_obuf_consume(struct nbd_obuf *b, size_t n);
static inline size_t nbd_obuf_pending(const struct nbd_obuf *b)
{
	return b->len - b->off;
}
void nbd_obuf_free(struct nbd_obuf *b);

/* Limits.  An option's data is parsed only once all of it is buffered,
 * so the caller's receive buffer must hold NBD_OPT_HDR_LEN +
 * NBD_HS_MAX_OPTLEN bytes. */
enum {
	NBD_HS_MAX_OPTIONS = 32,	/* then the connection is closed */
	NBD_HS_MAX_OPTLEN = 64 * 1024,	/* larger: discarded, ERR_TOO_BIG */
	NBD_HS_MAX_DISCARD = 1024 * 1024, /* larger: connection closed */
};

enum nbd_hs_state {
	NBD_HS_CLIENT_FLAGS,
	NBD_HS_OPTION,		/* waiting for a whole option */
	NBD_HS_DISCARD,		/* dropping an option's data, then replying */
	NBD_HS_DONE,		/* transmission phase */
	NBD_HS_CLOSED,
};

struct nbd_hs {
	const struct nbd_export *exp;
	enum nbd_hs_state state;
	bool no_zeroes;
	bool structured;		/* NBD_OPT_STRUCTURED_REPLY acked */
	bool meta_base_allocation;	/* base:allocation selected */
	bool block_size_asked;		/* GO/INFO asked for NBD_INFO_BLOCK_SIZE */
	bool shutting_down;		/* answer ERR_SHUTDOWN from now on */
	enum nbd_tls_mode tls_mode;	/* NBD_TLS_OFF unless nbd_hs_set_tls */
	bool tls_active;		/* the TLS handshake finished */
	unsigned nr_options;
	/* NBD_HS_DISCARD */
	uint32_t discard_opt;
	uint32_t discard_left;
	uint32_t discard_reply;		/* 0: close after discarding */
	const char *discard_msg;
	/* Set when an option fails, for the connection's log. */
	const char *why;
};

enum nbd_hs_result {
	NBD_HS_MORE,		/* everything usable was used; read more */
	NBD_HS_GO,		/* transmission starts after *used bytes */
	NBD_HS_CLOSE,		/* send the output, then close */
	NBD_HS_STARTTLS,	/* send the output in clear text, drop every
				 * input byte after *used, then run the TLS
				 * handshake and call nbd_hs_tls_done */
};

/* The metadata context id handed out for base:allocation. */
enum { NBD_META_ID_BASE_ALLOCATION = 1 };

void nbd_hs_init(struct nbd_hs *hs, const struct nbd_export *exp);
/* STARTTLS is refused with NBD_TLS_OFF (the default); with
 * NBD_TLS_REQUIRE every option but STARTTLS and ABORT gets
 * ERR_TLS_REQD until nbd_hs_tls_done. */
void nbd_hs_set_tls(struct nbd_hs *hs, enum nbd_tls_mode mode);
/* The TLS handshake that STARTTLS began has finished. */
void nbd_hs_tls_done(struct nbd_hs *hs);
/* The server's opening 18 bytes. */
int nbd_hs_greeting(struct nbd_obuf *out);
/* Consumes bytes of in[0..len) (*used says how many) and appends replies
 * to out.  Returns an enum nbd_hs_result or -ENOMEM. */
int nbd_hs_input(struct nbd_hs *hs, const uint8_t *in, size_t len, size_t *used,
		 struct nbd_obuf *out);
/* Transmission flags the client was given (SEND_DF with structured
 * replies). */
uint16_t nbd_hs_tflags(const struct nbd_hs *hs);

#endif
