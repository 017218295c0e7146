/* The transmission phase: requests parsed from the receive buffer become
 * vbd requests; their completions become replies.
 *
 * Every request gets a slot (per connection, allocated once) that holds
 * the client's handle and the reply's header bytes until the reply is
 * sent; the vbd request (from the vbd's pool) holds the data.  Nothing
 * is allocated per request here. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <event2/event.h>

#include "common/clock.h"
#include "core/vbd.h"
#include "frontends/nbd-internal.h"
#include "frontends/nbd-proto.h"

int nbd_tx_start(struct nbd_conn *c)
{
	struct nbd_server *srv = c->srv;

	c->slots = calloc(NBD_CONN_MAX_SLOTS, sizeof(*c->slots));
	if (!c->slots)
		return -ENOMEM;
	for (unsigned i = NBD_CONN_MAX_SLOTS; i-- > 0;) {
		c->slots[i].conn = c;
		c->slots[i].next = c->free_slots;
		c->free_slots = &c->slots[i];
	}
	c->caps.size = c->exp.size;
	c->caps.tflags = nbd_hs_tflags(&c->hs);
	c->caps.structured = c->hs.structured;
	c->caps.meta_base_allocation = c->hs.meta_base_allocation;
	c->caps.max_payload = c->exp.max_block;
	/* Block sizes not asked for: larger READ/WRITE are served in pieces. */
	c->caps.max_big = c->hs.block_size_asked ? 0 : NBD_MAX_BIG;
	c->state = NBD_CONN_TRANSMISSION;
	if (c->timer_ev)
		event_del(c->timer_ev);
	vbd_connection_add(srv->vbd, +1);
	c->counted = true;
	log_msg(LOG_LVL_DEBUG, "nbd: connection %u: transmission (structured replies %s, "
		"base:allocation %s)", c->id, c->caps.structured ? "on" : "off",
		c->caps.meta_base_allocation ? "on" : "off");
	return 0;
}

static struct nbd_slot *nbd_tx_slot_get(struct nbd_conn *c, const struct nbd_request *r)
{
	struct nbd_slot *s = c->free_slots;

	c->free_slots = s->next;
	c->used_slots++;
	s->next = NULL;
	s->req = NULL;
	s->bytes = 0;
	s->big_piece = false;
	s->handle = r->handle;
	s->offset = r->offset;
	s->len = r->len;
	s->type = r->type;
	s->flags = r->flags;
	return s;
}

/* Errors found before the disk: structured replies prefer an error chunk
 * (a READ must get one). */
static void nbd_tx_reply_error(struct nbd_conn *c, struct nbd_slot *s, uint32_t err,
			const char *msg, bool offset_valid)
{
	if (c->caps.structured)
		nbd_reply_error(&s->reply, s->handle, err, msg, offset_valid, s->offset);
	else
		nbd_reply_simple(&s->reply, s->handle, err, NULL, 0);
	nbd_conn_queue_reply(c, s);
}

static void nbd_tx_done(struct vbd_request *req)
{
	struct nbd_slot *s = req->owner;
	struct nbd_conn *c = s->conn;
	uint32_t err = nbd_errno_to_wire(req->err);
	const char *msg = req->err ? strerrordesc_np(-req->err) : NULL;

	c->inflight--;
	if (c->state == NBD_CONN_DEAD) {
		nbd_conn_slot_release(c, s);
		nbd_conn_check_done(c);
		return;
	}

	if (err) {
		/* The offset tells a READ's client where it failed. */
		nbd_tx_reply_error(c, s, err, msg, s->type == NBD_CMD_READ);
	} else if (s->type == NBD_CMD_READ) {
		if (c->caps.structured)
			nbd_reply_data(&s->reply, s->handle, s->offset, req->buf, s->len);
		else
			nbd_reply_simple(&s->reply, s->handle, 0, req->buf, s->len);
		nbd_conn_queue_reply(c, s);
	} else if (s->type == NBD_CMD_BLOCK_STATUS) {
		/* The vbd never succeeds with no extent, so n >= 1.  The wire
		 * descriptors go behind the extents in the request's buffer. */
		uint8_t *wire = (uint8_t *)(req->extents + req->max_extents);
		unsigned n = nbd_extents_to_wire(req->extents, req->nr_extents, wire, s->len,
						 s->flags & NBD_CMD_FLAG_REQ_ONE);

		nbd_reply_block_status(&s->reply, s->handle,
				       NBD_META_ID_BASE_ALLOCATION, wire, n);
		nbd_conn_queue_reply(c, s);
	} else {
		nbd_reply_simple(&s->reply, s->handle, 0, NULL, 0);
		nbd_conn_queue_reply(c, s);
	}
	if (c->big.head)
		nbd_big_other_done(c);	/* parsed before a big READ */
	nbd_conn_check_done(c);
}

static void nbd_tx_submit(struct nbd_conn *c, struct nbd_slot *s)
{
	vbd_request_submit(s->req);
	c->inflight++;
	c->submitted++;
}

void nbd_tx_kick(struct nbd_conn *c)
{
	if (c->submitted && c->srv) {
		vbd_kick(c->srv->vbd);
		c->submitted = 0;
	}
}

/* A WRITE's payload has all arrived. */
static void nbd_tx_write_ready(struct nbd_conn *c)
{
	struct nbd_slot *s = c->wslot;

	c->wslot = NULL;
	if (s->big_piece)
		nbd_big_write_full(c, s);
	else
		nbd_tx_submit(c, s);
}

static enum vbd_op nbd_tx_op(uint16_t type)
{
	switch (type) {
	case NBD_CMD_READ:
		return VBD_OP_READ;
	case NBD_CMD_WRITE:
		return VBD_OP_WRITE;
	case NBD_CMD_FLUSH:
		return VBD_OP_FLUSH;
	case NBD_CMD_TRIM:
		return VBD_OP_TRIM;
	case NBD_CMD_WRITE_ZEROES:
		return VBD_OP_WRITE_ZEROES;
	case NBD_CMD_CACHE:
		return VBD_OP_CACHE;
	default:
		return VBD_OP_BLOCK_STATUS;
	}
}

static unsigned nbd_tx_flags(const struct nbd_slot *s)
{
	unsigned f = 0;
	bool writes = s->type == NBD_CMD_WRITE || s->type == NBD_CMD_TRIM ||
		s->type == NBD_CMD_WRITE_ZEROES;

	/* FUA is accepted on every command but only means something where
	 * data is written. */
	if (writes && (s->flags & NBD_CMD_FLAG_FUA))
		f |= VBD_REQ_FUA;
	if (s->flags & NBD_CMD_FLAG_NO_HOLE)
		f |= VBD_REQ_NO_HOLE;
	if (s->flags & NBD_CMD_FLAG_FAST_ZERO)
		f |= VBD_REQ_FAST_ZERO;
	if (s->flags & NBD_CMD_FLAG_REQ_ONE)
		f |= VBD_REQ_ONE_EXTENT;
	return f;
}

/* One decoded request (not DISC).  Consumes a WRITE's payload from the
 * buffer, or arranges for the rest of it to be read into the request. */
static void nbd_tx_dispatch(struct nbd_conn *c, const struct nbd_request *r)
{
	const char *msg = NULL;
	uint32_t err = nbd_request_check(&c->caps, r, &msg);
	struct nbd_slot *s = nbd_tx_slot_get(c, r);
	struct vbd_request *req;
	uint64_t buflen = 0;

	if (err) {
		/* Skipping the payload keeps the stream in step. */
		if (r->type == NBD_CMD_WRITE)
			c->skip = r->len;
		if (c->srv && nbd_server_warn_ok(c->srv))
			log_msg(LOG_LVL_DEBUG, "nbd: connection %u: command %u offset %llu "
				"length %u: %s", c->id, r->type,
				(unsigned long long)r->offset, r->len, msg);
		nbd_tx_reply_error(c, s, err, msg, false);
		return;
	}

	if (nbd_big_wanted(c, r)) {
		nbd_big_start(c, s);
		return;
	}
	switch (r->type) {
	case NBD_CMD_READ:
	case NBD_CMD_WRITE:
		buflen = r->len;
		break;
	case NBD_CMD_BLOCK_STATUS:
		buflen = (sizeof(struct vbd_extent) + NBD_EXTENT_WIRE_LEN) *
			((r->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : NBD_MAX_EXTENTS);
		break;
	}

	req = vbd_request_get(c->srv->vbd, buflen);
	if (!req) {
		if (r->type == NBD_CMD_WRITE)
			c->skip = r->len;
		nbd_tx_reply_error(c, s, NBD_ENOMEM, "out of memory", false);
		return;
	}
	s->req = req;
	if (r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE) {
		s->bytes = buflen;
		c->bytes += buflen;
	}
	req->op = nbd_tx_op(r->type);
	req->offset = r->offset;
	req->len = r->len;
	req->flags = nbd_tx_flags(s);
	req->done = nbd_tx_done;
	req->owner = s;
	req->tag = r->handle;
	req->recv_ns = c->recv_ns;
	if (r->type == NBD_CMD_BLOCK_STATUS) {
		req->extents = req->buf;
		req->max_extents = (unsigned)(buflen /
					      (sizeof(struct vbd_extent) + NBD_EXTENT_WIRE_LEN));
	}

	if (r->type == NBD_CMD_WRITE) {
		/* Take what is already buffered; the rest is read straight
		 * into the request (nbd_tx_read). */
		size_t avail = c->rlen - c->rpos;
		size_t d = avail < r->len ? avail : r->len;

		memcpy(req->buf, c->rbuf + c->rpos, d);
		c->rpos += d;
		if (d < r->len) {
			c->wslot = s;
			c->wgot = (uint32_t)d;
			return;
		}
	}
	nbd_tx_submit(c, s);
}

/* The buffer a request will ask of the vbd; 0 for one that will be
 * refused before it gets one. */
static uint64_t nbd_tx_buffer_need(const struct nbd_conn *c, const struct nbd_request *r)
{
	const char *msg;

	if (nbd_request_check(&c->caps, r, &msg))
		return 0;
	switch (r->type) {
	case NBD_CMD_READ:
	case NBD_CMD_WRITE:
		return nbd_big_wanted(c, r) ? NBD_BIG_PIECE : r->len;
	case NBD_CMD_BLOCK_STATUS:
		return (sizeof(struct vbd_extent) + NBD_EXTENT_WIRE_LEN) *
		       ((r->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : NBD_MAX_EXTENTS);
	default:
		return 0;
	}
}

static void nbd_tx_parse_loop(struct nbd_conn *c);

/* The stream cannot be trusted any more: hard disconnect. */
static void nbd_tx_bad_magic(struct nbd_conn *c)
{
	if (c->srv && nbd_server_warn_ok(c->srv))
		log_msg(LOG_LVL_WARN, "nbd: connection %u (%s): bad request magic, closing",
			c->id, c->peer);
	nbd_conn_kill(c, "bad request magic");
}

void nbd_tx_parse(struct nbd_conn *c)
{
	bool nested = c->in_parse;

	c->in_parse = true;
	nbd_tx_parse_loop(c);
	c->in_parse = nested;
}

static void nbd_tx_parse_loop(struct nbd_conn *c)
{
	while (c->state == NBD_CONN_TRANSMISSION) {
		size_t avail = c->rlen - c->rpos;
		struct nbd_request r;

		if (c->skip) {
			size_t d = avail < c->skip ? avail : (size_t)c->skip;

			c->rpos += d;
			c->skip -= d;
			if (c->skip)
				break;
			if (c->big.head)
				nbd_big_skipped(c);	/* a failed big WRITE is answered */
			continue;
		}
		if (c->wslot)
			break;	/* its payload comes with the next read */
		if (c->big.head)
			break;	/* one over 32 MiB is served alone */
		/* A wrong magic is known from 4 bytes: do not wait for 28
		 * (an option sent after GO is shorter than a request). */
		if (avail >= 4 && nbd_get32(c->rbuf + c->rpos) != NBD_REQUEST_MAGIC) {
			nbd_tx_bad_magic(c);
			return;
		}
		if (avail < NBD_REQUEST_LEN)
			break;
		if (!c->free_slots || c->bytes >= NBD_CONN_MAX_BYTES) {
			/* Replies must drain before we take more. */
			c->throttled = true;
			nbd_conn_set_reading(c, false);
			break;
		}
		if (nbd_request_decode(c->rbuf + c->rpos, &r) < 0) {
			nbd_tx_bad_magic(c);
			return;
		}
		/* The header's length bounds what a request can ask for: only
		 * near the budget is the exact need worked out. */
		if (c->srv && !vbd_buffer_room(c->srv->vbd, r.len) &&
		    !vbd_buffer_room(c->srv->vbd, nbd_tx_buffer_need(c, &r))) {
			/* The daemon's budget is spent: wait, reading nothing,
			 * until buffers come back (the header stays unparsed). */
			c->throttled = true;
			nbd_conn_set_reading(c, false);
			nbd_server_budget_wait(c->srv, c);
			break;
		}
		c->rpos += NBD_REQUEST_LEN;
		if (r.type == NBD_CMD_DISC) {
			/* Finish what is in flight, answer it, then close. */
			log_msg(LOG_LVL_DEBUG, "nbd: connection %u: disconnect requested", c->id);
			nbd_conn_stop_input(c);
			break;
		}
		nbd_tx_dispatch(c, &r);
	}
}

/* Reads as long as the socket has data: request headers into rbuf, a
 * WRITE's payload straight into its request (readv with rbuf behind it,
 * so the next headers come in the same call). */
void nbd_tx_read(struct nbd_conn *c)
{
	while (c->state == NBD_CONN_TRANSMISSION && !c->throttled) {
		struct iovec iov[2];
		size_t want = 0, payload = 0;
		ssize_t n;
		int cnt = 0;

		nbd_conn_compact(c);
		if (c->wslot) {
			payload = c->wslot->len - c->wgot;
			iov[cnt].iov_base = (uint8_t *)c->wslot->req->buf + c->wgot;
			iov[cnt++].iov_len = payload;
		}
		if (c->rlen < NBD_RBUF_SIZE) {
			iov[cnt].iov_base = c->rbuf + c->rlen;
			iov[cnt++].iov_len = NBD_RBUF_SIZE - c->rlen;
		}
		for (int i = 0; i < cnt; i++)
			want += iov[i].iov_len;
		if (!cnt)
			break;	/* full buffer while throttled: not reached */

		n = nbd_conn_readv(c, iov, cnt);
		if (n <= 0)
			break;
		c->recv_ns = vd_now_ns();	/* one clock read per read call */
		if (payload) {
			size_t d = (size_t)n < payload ? (size_t)n : payload;

			c->wgot += (uint32_t)d;
			c->rlen += (size_t)n - d;
			if (c->wgot == c->wslot->len)
				nbd_tx_write_ready(c);
		} else {
			c->rlen += (size_t)n;
		}
		nbd_tx_parse(c);
		/* A short read means the socket is empty: skip the EAGAIN. */
		if ((size_t)n < want)
			break;
	}
	nbd_tx_kick(c);
}
