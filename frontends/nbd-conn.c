/* One NBD connection: its socket, its buffers and its lifetime.
 *
 * Input is read into rbuf and parsed as a whole batch (the transmission
 * phase's reading is in nbd-transmission.c).  Output (handshake bytes and
 * replies) is queued and sent from a deferred event, so the replies of
 * every completion reaped in one loop iteration leave in one sendmsg.
 *
 * A connection is freed only when nothing refers to it: in-flight
 * requests hold a pointer to it through their slot, so a connection
 * whose client vanished (DEAD) waits for them before it goes.  Only the
 * event callbacks and the completion callback free it, as their last
 * act (nbd_conn_check_done).
 *
 * Bytes move through c->tr: the socket (nbd_plain_transport) until
 * STARTTLS, GnuTLS (nbd_tls_transport, nbd-tls.c) after it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/clock.h"
#include "core/vbd.h"
#include "frontends/nbd-internal.h"
#include "frontends/nbd-proto.h"
#include "frontends/nbd-tls.h"

_Static_assert(NBD_RBUF_SIZE >= NBD_OPT_HDR_LEN + NBD_HS_MAX_OPTLEN,
	       "a whole option must fit in the receive buffer");

enum { NBD_SEND_IOV = 128 };	/* replies gathered per sendmsg (<= IOV_MAX) */

static ssize_t nbd_plain_recv(struct nbd_conn *c, const struct iovec *iov, int n)
{
	return readv(c->fd, iov, n);
}

static ssize_t nbd_plain_send(struct nbd_conn *c, const struct iovec *iov, int n, bool more)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n };

	/* More follows at once: let TCP fill its segments. */
	return sendmsg(c->fd, &msg, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
}

const struct nbd_transport nbd_plain_transport = {
	.name = "plain",
	.recv = nbd_plain_recv,
	.send = nbd_plain_send,
};

static bool nbd_conn_recv_pending(const struct nbd_conn *c)
{
	return c->tr->recv_pending && c->tr->recv_pending(c);
}

/* Input the transport holds (a TLS record read whole) makes no read
 * event: run the handler from the loop as if the socket had data. */
static void nbd_conn_kick_pending(struct nbd_conn *c)
{
	if (c->reading && c->read_ev && nbd_conn_recv_pending(c))
		event_active(c->read_ev, EV_READ, 0);
}

void nbd_conn_set_reading(struct nbd_conn *c, bool on)
{
	if (c->reading == on || !c->read_ev)
		return;
	if (on)
		event_add(c->read_ev, NULL);
	else
		event_del(c->read_ev);
	c->reading = on;
	nbd_conn_kick_pending(c);
}

void nbd_conn_set_writing(struct nbd_conn *c, bool on)
{
	if (c->writing == on || !c->write_ev)
		return;
	if (on)
		event_add(c->write_ev, NULL);
	else
		event_del(c->write_ev);
	c->writing = on;
}

/* Sending waits for the loop: everything that completes before then
 * goes out together.  While the socket is full, write_ev does it. */
static void nbd_conn_want_send(struct nbd_conn *c)
{
	if (c->state == NBD_CONN_DEAD || c->writing || !c->send_ev)
		return;
	if (!event_pending(c->send_ev, EV_TIMEOUT, NULL))
		event_active(c->send_ev, EV_TIMEOUT, 0);
}

void nbd_conn_queue_reply(struct nbd_conn *c, struct nbd_slot *s)
{
	s->next = NULL;
	*c->out_tail = s;
	c->out_tail = &s->next;
	nbd_conn_want_send(c);
}

void nbd_conn_slot_release(struct nbd_conn *c, struct nbd_slot *s)
{
	if (s->req) {
		vbd_request_put(s->req);
		s->req = NULL;
		if (c->srv)
			nbd_server_budget_freed(c->srv);
	}
	c->bytes -= s->bytes;
	s->bytes = 0;
	s->big_piece = false;
	s->next = c->free_slots;
	c->free_slots = s;
	c->used_slots--;
}

static void nbd_conn_drop_output(struct nbd_conn *c)
{
	while (c->out_head) {
		struct nbd_slot *s = c->out_head;

		c->out_head = s->next;
		nbd_conn_slot_release(c, s);
	}
	c->out_tail = &c->out_head;
	c->out_sent = 0;
}

/* Drops the socket.  In-flight requests keep the memory alive. */
void nbd_conn_kill(struct nbd_conn *c, const char *why)
{
	bool graceful = c->state == NBD_CONN_CLOSING;

	if (c->state == NBD_CONN_DEAD)
		return;
	if (why)
		log_msg(LOG_LVL_DEBUG, "nbd: connection %u (%s): closed: %s", c->id,
			c->peer, why);
	c->state = NBD_CONN_DEAD;
	if (c->budget_wait && c->srv)
		nbd_server_budget_forget(c->srv, c);
	if (c->tls)
		nbd_tls_end(c, graceful);
	c->tr = &nbd_plain_transport;
	/* The events go now: a dead connection may outlive the loop. */
	if (c->read_ev)
		event_free(c->read_ev);
	if (c->write_ev)
		event_free(c->write_ev);
	if (c->send_ev)
		event_free(c->send_ev);
	if (c->timer_ev)
		event_free(c->timer_ev);
	c->read_ev = c->write_ev = c->send_ev = c->timer_ev = NULL;
	c->reading = c->writing = false;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->wslot) {
		nbd_conn_slot_release(c, c->wslot);
		c->wslot = NULL;
	}
	nbd_big_drop(c);
	nbd_conn_drop_output(c);
	nbd_obuf_free(&c->hs_out);
	if (c->counted && c->srv)
		vbd_connection_add(c->srv->vbd, -1);
	c->counted = false;
}

static void nbd_conn_free(struct nbd_conn *c)
{
	if (c->srv)
		nbd_server_conn_gone(c->srv, c);
	free(c->slots);
	free(c->rbuf);
	nbd_obuf_free(&c->hs_out);
	free(c);
}

/* The end of every callback: close once all is said, free once dead and
 * nothing is in flight.  c may be gone afterwards. */
void nbd_conn_check_done(struct nbd_conn *c)
{
	if (c->in_read)
		return;
	if (c->state == NBD_CONN_CLOSING && !c->inflight && !c->out_head &&
	    !nbd_obuf_pending(&c->hs_out) &&
	    !(c->tr->send_pending && c->tr->send_pending(c)))
		nbd_conn_kill(c, "done");
	if (c->state == NBD_CONN_DEAD && !c->inflight)
		nbd_conn_free(c);
}

/* Input stopped: DISC, end of file, shutdown.  A WRITE still waiting for
 * its payload will never get it. */
void nbd_conn_stop_input(struct nbd_conn *c)
{
	if (c->state != NBD_CONN_HANDSHAKE && c->state != NBD_CONN_TRANSMISSION)
		return;
	c->state = NBD_CONN_CLOSING;
	nbd_conn_set_reading(c, false);
	if (c->wslot) {
		nbd_conn_slot_release(c, c->wslot);
		c->wslot = NULL;
	}
}

void nbd_conn_compact(struct nbd_conn *c)
{
	if (c->rpos == 0)
		return;
	if (c->rlen > c->rpos)
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
	c->rlen -= c->rpos;
	c->rpos = 0;
}

/* After a failed send: 0 to try again (EINTR), 1 when the socket is
 * full (EV_WRITE will call us back), -1 when the connection died. */
static int nbd_conn_send_failed(struct nbd_conn *c)
{
	if (errno == EINTR)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		nbd_conn_set_writing(c, true);
		return 1;
	}
	nbd_conn_kill(c, strerror(errno));
	return -1;
}

/* Sends the handshake output, then queued replies, as far as the socket
 * takes them.  Returns false when the connection died. */
static bool nbd_conn_send(struct nbd_conn *c)
{
	if (nbd_tls_handshaking(c))
		return true;	/* the handshake asks for EV_WRITE itself */
	while (nbd_obuf_pending(&c->hs_out)) {
		struct iovec v = {
			.iov_base = c->hs_out.data + c->hs_out.off,
			.iov_len = nbd_obuf_pending(&c->hs_out),
		};
		ssize_t n = c->tr->send(c, &v, 1, false);

		if (n < 0) {
			int f = nbd_conn_send_failed(c);

			if (f == 0)
				continue;
			return f > 0;
		}
		nbd_obuf_consume(&c->hs_out, (size_t)n);
	}
	if (c->starttls) {
		/* The ACK went out in clear text; TLS from the next byte. */
		c->starttls = false;
		nbd_conn_set_writing(c, false);
		nbd_tls_start(c);
		return c->state != NBD_CONN_DEAD;
	}

	while (c->out_head) {
		struct iovec iov[NBD_SEND_IOV];
		struct nbd_slot *s;
		size_t skip = c->out_sent;
		int cnt = 0;
		ssize_t n;

		/* Gather whole replies while they fit. */
		for (s = c->out_head; s; s = s->next) {
			if (cnt + (int)s->reply.niov > NBD_SEND_IOV)
				break;
			for (unsigned i = 0; i < s->reply.niov; i++) {
				struct iovec v = s->reply.iov[i];

				if (skip >= v.iov_len) {
					skip -= v.iov_len;
					continue;
				}
				v.iov_base = (uint8_t *)v.iov_base + skip;
				v.iov_len -= skip;
				skip = 0;
				iov[cnt++] = v;
			}
		}
		n = c->tr->send(c, iov, cnt, s != NULL);
		if (n < 0) {
			int f = nbd_conn_send_failed(c);

			if (f == 0)
				continue;
			return f > 0;
		}
		/* Retire what went out; keep the place in a partial one. */
		uint64_t now = vd_now_ns();
		while (c->out_head) {
			size_t left;

			s = c->out_head;
			left = s->reply.total - c->out_sent;
			if ((size_t)n < left) {
				c->out_sent += (size_t)n;
				break;
			}
			n -= (ssize_t)left;
			c->out_sent = 0;
			c->out_head = s->next;
			if (!c->out_head)
				c->out_tail = &c->out_head;
			if (s->req)
				vbd_request_replied(s->req, now);
			nbd_conn_slot_release(c, s);
		}
	}
	while (c->tr->flush && c->tr->flush(c) < 0) {
		int f = nbd_conn_send_failed(c);

		if (f != 0)
			return f > 0;
	}
	nbd_conn_set_writing(c, false);
	return true;
}

/* Slots were freed: a throttled connection reads again, starting with
 * the requests already in its buffer.  One waiting for the daemon's
 * budget is woken by the server instead, in turn. */
static void nbd_conn_unthrottle(struct nbd_conn *c)
{
	if (!c->throttled || c->budget_wait || c->state != NBD_CONN_TRANSMISSION)
		return;
	if (!c->free_slots || c->bytes >= NBD_CONN_MAX_BYTES)
		return;
	c->throttled = false;
	nbd_tx_parse(c);
	nbd_tx_kick(c);
	if (c->state == NBD_CONN_TRANSMISSION && !c->throttled)
		nbd_conn_set_reading(c, true);
}

void nbd_conn_budget_resume(struct nbd_conn *c)
{
	c->budget_wait = false;
	nbd_conn_unthrottle(c);
	nbd_conn_check_done(c);
}

static void nbd_conn_on_send(evutil_socket_t fd, short what, void *arg)
{
	struct nbd_conn *c = arg;

	if (nbd_conn_send(c)) {
		if (c->big.head)
			nbd_big_other_done(c);	/* slots came back */
		nbd_conn_unthrottle(c);
	}
	nbd_conn_check_done(c);
}

static void nbd_conn_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct nbd_conn *c = arg;

	if (nbd_tls_handshaking(c)) {
		nbd_tls_handshake_step(c);
		nbd_conn_check_done(c);
		return;
	}
	nbd_conn_on_send(fd, what, arg);
}

static void nbd_conn_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct nbd_conn *c = arg;

	if (c->state == NBD_CONN_HANDSHAKE) {
		if (c->srv && nbd_server_warn_ok(c->srv))
			log_msg(LOG_LVL_WARN, "nbd: connection %u (%s): handshake timed out",
				c->id, c->peer);
		nbd_conn_kill(c, "handshake timeout");
	}
	nbd_conn_check_done(c);
}

/* A read error or end of file: -1 dead, 0 try later, >0 bytes. */
ssize_t nbd_conn_readv(struct nbd_conn *c, struct iovec *iov, int n)
{
	for (;;) {
		ssize_t r = c->tr->recv(c, iov, n);

		if (r > 0)
			return r;
		if (r == 0) {
			/* The client closed its side: what is in flight still
			 * gets its replies, as far as the client reads them. */
			if (c->state == NBD_CONN_HANDSHAKE)
				nbd_conn_kill(c, "client closed during the handshake");
			else
				nbd_conn_stop_input(c);
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		nbd_conn_kill(c, strerror(errno));
		return -1;
	}
}

static void nbd_conn_read_handshake(struct nbd_conn *c)
{
	for (;;) {
		struct iovec iov;
		size_t used = 0;
		ssize_t n;
		int r;

		nbd_conn_compact(c);
		iov.iov_base = c->rbuf + c->rlen;
		iov.iov_len = NBD_RBUF_SIZE - c->rlen;
		if (iov.iov_len == 0) {
			/* Cannot happen: an option that does not fit is
			 * skipped, not buffered. */
			nbd_conn_kill(c, "handshake buffer full");
			return;
		}
		n = nbd_conn_readv(c, &iov, 1);
		if (n <= 0)
			break;
		c->heard = true;
		c->rlen += (size_t)n;

		r = nbd_hs_input(&c->hs, c->rbuf + c->rpos, c->rlen - c->rpos, &used,
				 &c->hs_out);
		c->rpos += used;
		if (r < 0) {
			nbd_conn_kill(c, "out of memory");
			return;
		}
		if (r == NBD_HS_CLOSE) {
			if (c->hs.why && c->srv && nbd_server_warn_ok(c->srv))
				log_msg(LOG_LVL_INFO, "nbd: connection %u (%s): handshake ended: %s",
					c->id, c->peer, c->hs.why);
			c->state = NBD_CONN_CLOSING;
			nbd_conn_set_reading(c, false);
			break;
		}
		if (r == NBD_HS_STARTTLS) {
			/* Whatever the client sent behind STARTTLS came in
			 * clear text: it is dropped, never parsed (the
			 * STARTTLS injection attack).  Reading resumes in TLS
			 * once the ACK is out. */
			c->rpos = c->rlen = 0;
			c->starttls = true;
			nbd_conn_set_reading(c, false);
			break;
		}
		if (r == NBD_HS_GO) {
			if (nbd_tx_start(c) < 0) {
				nbd_conn_kill(c, "out of memory");
				return;
			}
			/* A client may send requests right behind its GO. */
			nbd_tx_parse(c);
			nbd_tx_kick(c);
			break;
		}
		if ((size_t)n < iov.iov_len)
			break;
	}
	if (c->state != NBD_CONN_DEAD && nbd_obuf_pending(&c->hs_out))
		nbd_conn_want_send(c);
}

static void nbd_conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct nbd_conn *c = arg;

	c->in_read = true;
	if (nbd_tls_handshaking(c))
		nbd_tls_handshake_step(c);
	else if (c->state == NBD_CONN_HANDSHAKE)
		nbd_conn_read_handshake(c);
	else if (c->state == NBD_CONN_TRANSMISSION)
		nbd_tx_read(c);
	c->in_read = false;
	if (c->state != NBD_CONN_DEAD && !c->throttled && !nbd_tls_handshaking(c))
		nbd_conn_kick_pending(c);
	nbd_conn_check_done(c);
}

int nbd_conn_new(struct nbd_server *srv, int fd, const char *peer, struct nbd_conn **out)
{
	struct timeval tv = { .tv_sec = srv->handshake_timeout_s };
	struct nbd_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->srv = srv;
	c->fd = fd;
	c->id = ++srv->next_id;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->out_tail = &c->out_head;
	c->tr = &nbd_plain_transport;
	c->rbuf = malloc(NBD_RBUF_SIZE);
	c->read_ev = event_new(srv->base, fd, EV_READ | EV_PERSIST, nbd_conn_on_read, c);
	c->write_ev = event_new(srv->base, fd, EV_WRITE | EV_PERSIST, nbd_conn_on_write, c);
	c->send_ev = event_new(srv->base, -1, 0, nbd_conn_on_send, c);
	c->timer_ev = evtimer_new(srv->base, nbd_conn_on_timeout, c);
	if (!c->rbuf || !c->read_ev || !c->write_ev || !c->send_ev || !c->timer_ev)
		goto err;
	nbd_server_export(srv, &c->exp);
	nbd_hs_init(&c->hs, &c->exp);
	nbd_hs_set_tls(&c->hs, srv->tls_mode);
	if (nbd_hs_greeting(&c->hs_out) < 0)
		goto err;
	if (event_add(c->timer_ev, &tv) < 0)
		goto err;
	nbd_conn_set_reading(c, true);
	nbd_conn_want_send(c);
	log_msg(LOG_LVL_DEBUG, "nbd: connection %u from %s", c->id, c->peer);
	*out = c;
	return 0;
err:
	c->fd = -1;		/* the caller closes it */
	c->srv = NULL;
	nbd_conn_kill(c, NULL);
	nbd_conn_free(c);
	return -ENOMEM;
}

void nbd_conn_shutdown(struct nbd_conn *c)
{
	switch (c->state) {
	case NBD_CONN_HANDSHAKE:
		/* Further options get ERR_SHUTDOWN; the grace timer ends a
		 * client that sends none. */
		c->hs.shutting_down = true;
		break;
	case NBD_CONN_TRANSMISSION:
		nbd_conn_stop_input(c);
		break;
	case NBD_CONN_CLOSING:
	case NBD_CONN_DEAD:
		break;
	}
	nbd_conn_check_done(c);
}

void nbd_conn_detach(struct nbd_conn *c)
{
	if (c->inflight)
		log_msg(LOG_LVL_WARN, "nbd: connection %u freed with %u requests in flight",
			c->id, c->inflight);
	nbd_conn_kill(c, "server freed");
	c->srv = NULL;
	nbd_conn_check_done(c);
}
