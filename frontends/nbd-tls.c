/* One connection's TLS session: the handshake driven by the event loop,
 * then the transport the connection uses instead of the socket.
 *
 * Non-blocking GnuTLS: every call may answer GNUTLS_E_AGAIN, and
 * gnutls_record_get_direction says whether it waits to read or to write.
 * Input: recv keeps taking records until the caller's buffers are full or
 * the socket is empty, so many requests come out of one read event; a
 * record only partly taken stays inside GnuTLS (recv_pending), and the
 * connection code runs its read handler again for it, since the socket
 * will not wake it.  GnuTLS reads through nbd_tls_pull, which takes up to
 * NBD_TLS_IBUF bytes per read(2): a client that sends each request in its
 * own small record costs one system call per batch, not two per record,
 * and a short read ends the batch, as on a plain socket (no read(2) that
 * only says EAGAIN).
 * Output: small replies gathered by the connection are corked into as
 * few records as their size needs (one uncork per batch, no allocation
 * per request); a large payload tops the corked record up to a whole one
 * and then goes out from the request's buffer in whole records.  When the
 * socket is full, the record waits inside GnuTLS and flush finishes it on
 * EV_WRITE.
 *
 * The kernel can take the record layer over (kTLS) when GnuTLS is built
 * and configured for it and the kernel has the tls module: GnuTLS then
 * does the same calls through the kernel, and "connections" says so. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/socket.h>
#include <gnutls/x509.h>

#include "frontends/nbd-internal.h"
#include "frontends/nbd-tls.h"

enum {
	NBD_TLS_IBUF = 64 * 1024,
	/* Records gathered before one sendmsg takes them all, and room for
	 * what a full socket leaves of the next (see nbd_tls_push). */
	NBD_TLS_OBATCH = 128 * 1024,
	NBD_TLS_OBUF = 2 * NBD_TLS_OBATCH + 32 * 1024,
};

struct nbd_tls_conn {
	gnutls_session_t session;
	struct nbd_tls_creds *creds;
	int fd;
	uint8_t *ibuf;		/* socket bytes GnuTLS has not pulled yet */
	size_t ipos, ilen;
	bool drained;		/* the last read(2) came back short */
	uint8_t *obuf;		/* encrypted records not yet on the socket */
	size_t opos, olen;
	bool gather;		/* in a batch: records wait in obuf */
	bool big;		/* whole payload records: straight out */
	bool handshaking;
	bool established;
	bool corked;		/* cork is on: data may wait in GnuTLS */
	bool again;		/* a record send said AGAIN: finish it first */
	bool failed;		/* a fatal error: no close_notify */
	bool ktls;
	char peer[256];
	char cipher[64];
};

/* A GnuTLS error as errno for the connection code; the reason goes to
 * the debug log. */
static ssize_t nbd_tls_error(struct nbd_conn *c, ssize_t r, const char *what)
{
	switch (r) {
	case GNUTLS_E_AGAIN:
		errno = EAGAIN;
		return -1;
	case GNUTLS_E_INTERRUPTED:
		errno = EINTR;
		return -1;
	}
	c->tls->failed = true;
	log_msg(LOG_LVL_DEBUG, "nbd: connection %u (%s): TLS %s: %s", c->id, c->peer, what,
		gnutls_strerror((int)r));
	errno = r == GNUTLS_E_PUSH_ERROR || r == GNUTLS_E_PULL_ERROR ? ECONNRESET : EPROTO;
	return -1;
}

/* Everything read so far is taken and the last read(2) was short: the
 * socket was empty then, and anything that came since wakes the loop
 * again.  Asking GnuTLS for another record would cost a read(2) that
 * says EAGAIN, once per batch (every request at QD1). */
static bool nbd_tls_drained(const struct nbd_tls_conn *t)
{
	return t->drained && t->ipos == t->ilen &&
		gnutls_record_check_pending(t->session) == 0;
}

static ssize_t nbd_tls_recv(struct nbd_conn *c, const struct iovec *iov, int n)
{
	gnutls_session_t s = c->tls->session;
	ssize_t total = 0;

	for (int i = 0; i < n; i++) {
		size_t got = 0;

		while (got < iov[i].iov_len) {
			ssize_t r;

			if (total && nbd_tls_drained(c->tls))
				return total;
			r = gnutls_record_recv(s, (uint8_t *)iov[i].iov_base + got,
					       iov[i].iov_len - got);
			if (r > 0) {
				got += (size_t)r;
				total += r;
				continue;
			}
			if (r == GNUTLS_E_INTERRUPTED)
				continue;
			if (total)
				return total;	/* the error comes again next time */
			/* close_notify, or a client that just hung up. */
			if (r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION)
				return 0;
			return nbd_tls_error(c, r, "receive");
		}
	}
	return total;
}

static bool nbd_tls_recv_pending(const struct nbd_conn *c)
{
	const struct nbd_tls_conn *t = c->tls;

	return t && t->established && !t->failed &&
		(t->ipos < t->ilen || gnutls_record_check_pending(t->session) > 0);
}

/* GnuTLS's reads: from our buffer, refilled with one large read. */
static ssize_t nbd_tls_pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
	struct nbd_tls_conn *t = p;
	ssize_t n;

	if (t->ipos == t->ilen) {
		t->ipos = t->ilen = 0;
		n = read(t->fd, t->ibuf, NBD_TLS_IBUF);
		if (n <= 0) {
			t->drained = false;
			gnutls_transport_set_errno(t->session, n < 0 ? errno : 0);
			return n;
		}
		t->ilen = (size_t)n;
		t->drained = (size_t)n < NBD_TLS_IBUF;
	}
	n = (ssize_t)(t->ilen - t->ipos < len ? t->ilen - t->ipos : len);
	memcpy(data, t->ibuf + t->ipos, (size_t)n);
	t->ipos += (size_t)n;
	return n;
}

static size_t nbd_tls_opending(const struct nbd_tls_conn *t)
{
	return t->olen - t->opos;
}

/* Copies iov (less its first skip bytes, add of them) behind obuf's
 * records; the callers keep what is pending within NBD_TLS_OBUF. */
static void nbd_tls_oput(struct nbd_tls_conn *t, const giovec_t *iov, int n, size_t skip,
			 size_t add)
{
	if (t->olen + add > NBD_TLS_OBUF) {
		memmove(t->obuf, t->obuf + t->opos, t->olen - t->opos);
		t->olen -= t->opos;
		t->opos = 0;
	}
	for (int i = 0; i < n; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		memcpy(t->obuf + t->olen, (const uint8_t *)iov[i].iov_base + skip, l - skip);
		t->olen += l - skip;
		skip = 0;
	}
}

/* GnuTLS's writes, one record per call.  In a batch (gather) a record
 * is copied behind the others in obuf, and one sendmsg takes them all
 * once NBD_TLS_OBATCH is reached or the batch ends (flush): many small
 * replies in a few records cost one system call, not one per record,
 * and the client wakes once.  A whole payload record (big) goes out at
 * once with what obuf holds in front of it, not copied.  Whatever the
 * socket does not take is kept in obuf, so GnuTLS never has to resend. */
static ssize_t nbd_tls_push(gnutls_transport_ptr_t p, const giovec_t *iov, int n)
{
	struct nbd_tls_conn *t = p;
	struct iovec v[8];
	struct msghdr msg = { .msg_iov = v };
	size_t total = 0, pend = nbd_tls_opending(t), took;
	ssize_t r;
	int cnt = 0;

	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (t->gather && !t->big && t->olen + total <= NBD_TLS_OBATCH + t->opos &&
	    total <= NBD_TLS_OBATCH) {
		nbd_tls_oput(t, iov, n, 0, total);
		return (ssize_t)total;
	}
	if (pend) {
		v[cnt].iov_base = t->obuf + t->opos;
		v[cnt++].iov_len = pend;
	}
	for (int i = 0; i < n && cnt < 8; i++) {
		v[cnt].iov_base = iov[i].iov_base;
		v[cnt++].iov_len = iov[i].iov_len;
	}
	msg.msg_iovlen = (size_t)cnt;
	r = sendmsg(t->fd, &msg, MSG_NOSIGNAL);
	if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		gnutls_transport_set_errno(t->session, errno);
		return -1;
	}
	if (r < 0)
		r = 0;
	if ((size_t)r <= pend) {
		t->opos += (size_t)r;
		took = 0;
	} else {
		t->opos = t->olen = 0;
		took = (size_t)r - pend;
	}
	if (t->opos == t->olen)
		t->opos = t->olen = 0;
	if (took == total)
		return (ssize_t)total;
	/* The socket is full: keep the rest of the record, if it fits.  Not
	 * in the handshake, which must hear EAGAIN to wait for EV_WRITE. */
	if (t->established &&
	    t->olen - t->opos + (total - took) <= NBD_TLS_OBUF - NBD_TLS_OBATCH) {
		nbd_tls_oput(t, iov, n, took, total - took);
		return (ssize_t)total;
	}
	if (took)
		return (ssize_t)took;
	gnutls_transport_set_errno(t->session, EAGAIN);
	return -1;
}

/* Puts what obuf holds on the socket: 0, or -1 with errno (EAGAIN when
 * it is full). */
static int nbd_tls_drain(struct nbd_tls_conn *t)
{
	while (t->olen > t->opos) {
		ssize_t r = send(t->fd, t->obuf + t->opos, t->olen - t->opos, MSG_NOSIGNAL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		t->opos += (size_t)r;
	}
	t->opos = t->olen = 0;
	return 0;
}

static int nbd_tls_pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
	struct nbd_tls_conn *t = p;
	struct pollfd pfd = { .fd = t->fd, .events = POLLIN };

	if (t->ipos < t->ilen)
		return 1;
	return poll(&pfd, 1, (int)ms);
}

/* Turns what is corked or held inside GnuTLS into records in obuf. */
static int nbd_tls_settle(struct nbd_conn *c)
{
	struct nbd_tls_conn *t = c->tls;
	ssize_t r;

	if (t->corked) {
		r = gnutls_record_uncork(t->session, 0);
		if (r < 0)
			return (int)nbd_tls_error(c, r, "send");
		t->corked = false;
	}
	while (t->again) {
		r = gnutls_record_send(t->session, NULL, 0);
		if (r < 0)
			return (int)nbd_tls_error(c, r, "send");
		t->again = false;
	}
	return 0;
}

static int nbd_tls_flush(struct nbd_conn *c)
{
	struct nbd_tls_conn *t = c->tls;
	int r;

	t->gather = true;
	r = nbd_tls_settle(c);
	t->gather = false;
	if (r < 0)
		return r;
	return nbd_tls_drain(t);
}

/* Appends to the corked record; GnuTLS copies and never refuses. */
static int nbd_tls_cork_add(struct nbd_conn *c, const uint8_t *p, size_t len)
{
	struct nbd_tls_conn *t = c->tls;

	if (!t->corked) {
		gnutls_record_cork(t->session);
		t->corked = true;
	}
	while (len) {
		ssize_t w = gnutls_record_send(t->session, p, len);

		if (w <= 0)
			return (int)nbd_tls_error(c, w ? w : GNUTLS_E_INTERNAL_ERROR, "send");
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static ssize_t nbd_tls_send_batch(struct nbd_conn *c, const struct iovec *iov, int n,
				  bool more);

static ssize_t nbd_tls_send(struct nbd_conn *c, const struct iovec *iov, int n, bool more)
{
	struct nbd_tls_conn *t = c->tls;
	ssize_t r;

	t->gather = true;
	r = nbd_tls_send_batch(c, iov, n, more);
	t->gather = false;
	t->big = false;
	/* The batch's records go out now unless more follows at once; a
	 * full socket leaves them for flush (EV_WRITE). */
	if (r >= 0 && !more && nbd_tls_drain(t) < 0 && errno != EAGAIN && errno != EINTR)
		return r ? r : -1;
	return r;
}

static ssize_t nbd_tls_send_batch(struct nbd_conn *c, const struct iovec *iov, int n,
				  bool more)
{
	struct nbd_tls_conn *t = c->tls;
	size_t rec = gnutls_record_get_max_size(t->session);
	ssize_t total = 0;

	/* What an earlier batch left waiting goes first. */
	if (nbd_tls_settle(c) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		if (len < rec) {
			if (nbd_tls_cork_add(c, p, len) < 0)
				return total ? total : -1;
			total += (ssize_t)len;
			continue;
		}
		/* A payload: fill the corked record up to a whole one, send
		 * it, then whole records straight from the buffer. */
		if (t->corked) {
			size_t top = (rec - (size_t)gnutls_record_check_corked(t->session) % rec) % rec;

			if (nbd_tls_cork_add(c, p, top) < 0)
				return total ? total : -1;
			p += top;
			len -= top;
			total += (ssize_t)top;
			if (nbd_tls_settle(c) < 0)
				return total ? total : -1;
		}
		while (len) {
			size_t chunk = len < rec ? len : rec;
			ssize_t w;

			if (chunk < rec) {
				/* The tail joins the next replies' record. */
				if (nbd_tls_cork_add(c, p, chunk) < 0)
					return total ? total : -1;
				total += (ssize_t)chunk;
				break;
			}
			t->big = true;
			w = gnutls_record_send(t->session, p, chunk);
			t->big = false;
			if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) {
				/* Encrypted and held by GnuTLS: taken. */
				t->again = true;
				return total + (ssize_t)chunk;
			}
			if (w < 0)
				return total ? total : nbd_tls_error(c, w, "send");
			p += w;
			len -= (size_t)w;
			total += w;
		}
	}
	/* The batch's record is made now unless more follows at once. */
	if (!more && nbd_tls_settle(c) < 0 && errno != EAGAIN && errno != EINTR)
		return total ? total : -1;
	return total;
}

static bool nbd_tls_send_pending(const struct nbd_conn *c)
{
	const struct nbd_tls_conn *t = c->tls;

	return t && !t->failed && (t->again || t->corked || t->olen > t->opos);
}

const struct nbd_transport nbd_tls_transport = {
	.name = "tls",
	.recv = nbd_tls_recv,
	.send = nbd_tls_send,
	.flush = nbd_tls_flush,
	.recv_pending = nbd_tls_recv_pending,
	.send_pending = nbd_tls_send_pending,
};

bool nbd_tls_handshaking(const struct nbd_conn *c)
{
	return c->tls && c->tls->handshaking;
}

/* Who the client is: its certificate's DN or its PSK identity. */
static void nbd_tls_peer(struct nbd_tls_conn *t)
{
	gnutls_session_t s = t->session;

	if (gnutls_auth_get_type(s) == GNUTLS_CRD_PSK) {
		const char *u = gnutls_psk_server_get_username(s);

		snprintf(t->peer, sizeof(t->peer), "psk:%s", u ? u : "?");
	} else {
		unsigned n = 0;
		const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
		gnutls_x509_crt_t crt;
		gnutls_datum_t dn = { NULL, 0 };

		if (!certs || !n || gnutls_x509_crt_init(&crt) < 0) {
			snprintf(t->peer, sizeof(t->peer), "anonymous");
		} else {
			if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
			    gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0)
				snprintf(t->peer, sizeof(t->peer), "x509:%.*s", (int)dn.size,
					 (const char *)dn.data);
			else
				snprintf(t->peer, sizeof(t->peer), "x509:?");
			gnutls_free(dn.data);
			gnutls_x509_crt_deinit(crt);
		}
	}
	snprintf(t->cipher, sizeof(t->cipher), "%s/%s",
		 gnutls_protocol_get_name(gnutls_protocol_get_version(s)) ?: "?",
		 gnutls_cipher_get_name(gnutls_cipher_get(s)) ?: "?");
	t->ktls = gnutls_transport_is_ktls_enabled(s) != 0;
}

/* A handshake that failed: the client's fault, so warn (rate-limited)
 * and close this connection only. */
static void nbd_tls_fail(struct nbd_conn *c, const char *what, const char *why)
{
	c->tls->failed = true;
	if (c->srv && nbd_server_warn_ok(c->srv))
		log_msg(LOG_LVL_WARN, "nbd: connection %u (%s): TLS %s: %s", c->id, c->peer,
			what, why);
	nbd_conn_kill(c, "TLS handshake failed");
}

void nbd_tls_handshake_step(struct nbd_conn *c)
{
	struct nbd_tls_conn *t = c->tls;
	int r = gnutls_handshake(t->session);

	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
		bool w = gnutls_record_get_direction(t->session) == 1;

		nbd_conn_set_writing(c, w);
		nbd_conn_set_reading(c, !w);
		return;
	}
	if (r < 0) {
		const char *why = gnutls_strerror(r);
		char buf[160];

		if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
			gnutls_datum_t out = { NULL, 0 };
			unsigned st = gnutls_session_get_verify_cert_status(t->session);

			if (gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509,
									 &out, 0) == 0) {
				snprintf(buf, sizeof(buf), "%.*s", (int)out.size,
					 (const char *)out.data);
				why = buf;
			}
			gnutls_free(out.data);
		}
		nbd_tls_fail(c, "handshake failed", why);
		return;
	}
	t->handshaking = false;
	t->established = true;
	nbd_tls_peer(t);
	nbd_hs_tls_done(&c->hs);
	log_msg(LOG_LVL_INFO, "nbd: connection %u (%s): TLS %s, peer %s%s", c->id, c->peer,
		t->cipher, t->peer, t->ktls ? ", kTLS" : "");
	nbd_conn_set_writing(c, false);
	/* Reading resumes; a record that came with the handshake's last
	 * flight is already inside GnuTLS, and set_reading runs for it. */
	nbd_conn_set_reading(c, true);
}

void nbd_tls_start(struct nbd_conn *c)
{
	struct nbd_tls_conn *t;
	int r;

	if (!c->srv || !c->srv->tls_creds) {
		nbd_conn_kill(c, "no TLS credentials");
		return;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		nbd_conn_kill(c, "out of memory");
		return;
	}
	c->tls = t;
	t->handshaking = true;
	t->creds = nbd_tls_creds_get(c->srv->tls_creds);
	r = gnutls_init(&t->session, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (r < 0) {
		t->session = NULL;
		nbd_tls_fail(c, "session", gnutls_strerror(r));
		return;
	}
	r = nbd_tls_creds_apply(t->creds, t->session);
	if (r < 0) {
		nbd_tls_fail(c, "session", gnutls_strerror(r));
		return;
	}
	/* The connection's handshake timer bounds it; GnuTLS's own would
	 * only apply to blocking sockets anyway. */
	gnutls_handshake_set_timeout(t->session, 0);
	t->fd = c->fd;
	t->ibuf = malloc(NBD_TLS_IBUF);
	t->obuf = malloc(NBD_TLS_OBUF);
	if (!t->ibuf || !t->obuf) {
		nbd_tls_fail(c, "session", "out of memory");
		return;
	}
	/* Reads through our buffer, writes gathered in one sendmsg. */
	gnutls_transport_set_ptr(t->session, t);
	gnutls_transport_set_vec_push_function(t->session, nbd_tls_push);
	gnutls_transport_set_pull_function(t->session, nbd_tls_pull);
	gnutls_transport_set_pull_timeout_function(t->session, nbd_tls_pull_timeout);
	c->tr = &nbd_tls_transport;
	log_msg(LOG_LVL_DEBUG, "nbd: connection %u: STARTTLS (%s)", c->id,
		nbd_tls_creds_kind(t->creds));
	nbd_tls_handshake_step(c);
}

void nbd_tls_end(struct nbd_conn *c, bool graceful)
{
	struct nbd_tls_conn *t = c->tls;

	if (!t)
		return;
	/* Best effort, never waits: the socket closes right after. */
	if (t->session && graceful && t->established && !t->failed)
		gnutls_bye(t->session, GNUTLS_SHUT_WR);
	if (t->session)
		gnutls_deinit(t->session);
	nbd_tls_creds_put(t->creds);
	free(t->ibuf);
	free(t->obuf);
	free(t);
	c->tls = NULL;
}

void nbd_tls_conn_info(const struct nbd_conn *c, struct nbd_conn_info *out)
{
	const struct nbd_tls_conn *t = c->tls;

	out->tls = t && t->established;
	out->ktls = t && t->ktls;
	snprintf(out->tls_peer, sizeof(out->tls_peer), "%s", t ? t->peer : "");
	snprintf(out->tls_cipher, sizeof(out->tls_cipher), "%s", t ? t->cipher : "");
}
