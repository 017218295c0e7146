/* READ and WRITE larger than the 32 MiB payload limit, for clients that
 * never asked for block sizes (NBD_OPT_EXPORT_NAME, or GO without
 * NBD_INFO_BLOCK_SIZE: the NBD project's own test client sends 40-48 MiB).
 * A client that did ask keeps getting EINVAL past the advertised maximum.
 *
 * Such a request (up to NBD_MAX_BIG) is served in pieces of
 * NBD_BIG_PIECE, at most NBD_BIG_PIECES in the vbd at once, each with a
 * slot and a vbd request of its own: memory stays bounded by the pieces
 * (and the daemon's buffer budget), never one buffer of the client's
 * length.  A WRITE's payload is read piece by piece straight into the
 * pieces (nbd_tx_read fills them as it fills any WRITE); a READ's pieces
 * go out as they complete: OFFSET_DATA chunks ended by a NONE chunk with
 * structured replies, or the simple reply's header and then the data in
 * order.  The connection parses nothing else until the request is done.
 * A simple reply's header waits until every request parsed before it has
 * been answered: once it is queued, no other reply may come between it
 * and the end of its data (nothing marks where the data ends).
 *
 * The first error wins: a WRITE skips the rest of its payload and answers
 * it; a structured READ ends with an ERROR_OFFSET chunk; a simple READ
 * whose data has started cannot say it, so the connection is closed
 * (the protocol's only way). */
#include <errno.h>
#include <string.h>

#include "core/vbd.h"
#include "frontends/nbd-internal.h"
#include "frontends/nbd-proto.h"

bool nbd_big_wanted(const struct nbd_conn *c, const struct nbd_request *r)
{
	return (r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE) &&
	       r->len > c->caps.max_payload;
}

static void nbd_big_read_done(struct vbd_request *req);
static void nbd_big_write_done(struct vbd_request *req);

/* A piece [off, off+len) with its slot and vbd request, or NULL when
 * there is no slot, no memory or no room in the budget right now. */
static struct nbd_slot *nbd_big_piece(struct nbd_conn *c, uint64_t off, uint64_t len)
{
	struct nbd_big *b = &c->big;
	struct nbd_slot *s = c->free_slots;
	struct vbd_request *req;

	if (!s || (b->inflight && !vbd_buffer_room(c->srv->vbd, len)))
		return NULL;
	req = vbd_request_get(c->srv->vbd, len);
	if (!req)
		return NULL;
	c->free_slots = s->next;
	c->used_slots++;
	s->next = NULL;
	s->req = req;
	s->handle = b->head->handle;
	s->offset = off;
	s->len = (uint32_t)len;
	s->type = b->head->type;
	s->flags = b->head->flags;
	s->big_piece = true;
	s->bytes = len;
	c->bytes += len;
	req->op = s->type == NBD_CMD_READ ? VBD_OP_READ : VBD_OP_WRITE;
	req->offset = off;
	req->len = len;
	req->flags = s->type == NBD_CMD_WRITE && (s->flags & NBD_CMD_FLAG_FUA) ? VBD_REQ_FUA : 0;
	req->done = s->type == NBD_CMD_READ ? nbd_big_read_done : nbd_big_write_done;
	req->owner = s;
	req->tag = s->handle;
	return s;
}

static void nbd_big_submit(struct nbd_conn *c, struct nbd_slot *s)
{
	c->big.inflight++;
	c->inflight++;
	c->submitted++;
	vbd_request_submit(s->req);
}

static uint64_t nbd_big_piece_len(const struct nbd_big *b)
{
	uint64_t left = b->end - b->next;

	return left < NBD_BIG_PIECE ? left : NBD_BIG_PIECE;
}

/* The request is done: parsing goes on with what the client sent after it. */
static void nbd_big_end(struct nbd_conn *c)
{
	struct nbd_big *b = &c->big;

	for (unsigned i = 0; i < NBD_BIG_PIECES; i++) {
		if (b->ready[i]) {
			nbd_conn_slot_release(c, b->ready[i]);
			b->ready[i] = NULL;
		}
	}
	b->head = NULL;
	/* Inside the parse loop, the loop itself goes on. */
	if (c->state != NBD_CONN_TRANSMISSION || c->in_parse)
		return;
	nbd_tx_parse(c);
	nbd_tx_kick(c);
	if (c->state == NBD_CONN_TRANSMISSION && !c->throttled && !c->big.head)
		nbd_conn_set_reading(c, true);
}

/* ---- READ ---------------------------------------------------------------- */

/* Completed pieces of a simple READ not sent yet. */
static unsigned nbd_big_held(const struct nbd_big *b)
{
	unsigned n = 0;

	for (unsigned i = 0; i < NBD_BIG_PIECES; i++)
		n += b->ready[i] != NULL;
	return n;
}

static void nbd_big_read_more(struct nbd_conn *c)
{
	struct nbd_big *b = &c->big;

	/* Pieces held for sending count: ready[] has room for them all. */
	while (!b->err && b->next < b->end && b->inflight + nbd_big_held(b) < NBD_BIG_PIECES) {
		uint64_t len = nbd_big_piece_len(b);
		struct nbd_slot *s = nbd_big_piece(c, b->next, len);

		if (!s) {
			/* Slots of other requests (in flight, or replies
			 * being sent) come back: nbd_big_other_done retries. */
			if (!b->inflight && c->used_slots <= 1 + nbd_big_held(b)) {
				/* Nothing of ours to wait for: out of memory. */
				b->err = -ENOMEM;
				b->err_off = b->next;
			}
			break;
		}
		b->next += len;
		nbd_big_submit(c, s);
	}
	nbd_tx_kick(c);
}

/* Simple replies: the header, then the data, in order. */
static void nbd_big_read_queue_ready(struct nbd_conn *c)
{
	struct nbd_big *b = &c->big;
	bool progress = true;

	while (progress) {
		progress = false;
		for (unsigned i = 0; i < NBD_BIG_PIECES; i++) {
			struct nbd_slot *s = b->ready[i];

			if (!s || s->offset != b->sent)
				continue;
			/* Replies to requests parsed earlier must not land
			 * inside this one's data. */
			if (!b->header_sent && c->inflight > b->inflight)
				return;
			b->ready[i] = NULL;
			if (!b->header_sent) {
				nbd_reply_simple(&s->reply, s->handle, 0, s->req->buf, s->len);
				b->header_sent = true;
			} else {
				nbd_reply_raw(&s->reply, s->req->buf, s->len);
			}
			b->sent += s->len;
			nbd_conn_queue_reply(c, s);
			progress = true;
		}
	}
}

static void nbd_big_read_finish(struct nbd_conn *c)
{
	struct nbd_big *b = &c->big;
	struct nbd_slot *h = b->head;

	if (c->caps.structured) {
		if (b->err)
			nbd_reply_error(&h->reply, h->handle, nbd_errno_to_wire(b->err),
					strerrordesc_np(-b->err), true, b->err_off);
		else
			nbd_reply_none(&h->reply, h->handle);
		nbd_conn_queue_reply(c, h);
	} else if (b->err && !b->header_sent) {
		nbd_reply_simple(&h->reply, h->handle, nbd_errno_to_wire(b->err), NULL, 0);
		nbd_conn_queue_reply(c, h);
	} else {
		nbd_conn_slot_release(c, h);
		if (b->err) {
			log_msg(LOG_LVL_WARN, "nbd: connection %u: a %llu-byte read failed after "
				"its data started (simple replies cannot say so): closing",
				c->id, (unsigned long long)(b->end - h->offset));
			b->head = NULL;
			nbd_big_end(c);
			nbd_conn_kill(c, "error in a streamed read");
			return;
		}
	}
	nbd_big_end(c);
}

static void nbd_big_read_done(struct vbd_request *req)
{
	struct nbd_slot *s = req->owner;
	struct nbd_conn *c = s->conn;
	struct nbd_big *b = &c->big;

	c->inflight--;
	b->inflight--;
	if (c->state == NBD_CONN_DEAD) {
		nbd_conn_slot_release(c, s);
		if (!b->inflight)
			nbd_big_drop(c);
		nbd_conn_check_done(c);
		return;
	}
	if (req->err) {
		if (!b->err) {
			b->err = req->err;
			b->err_off = s->offset;
		}
		nbd_conn_slot_release(c, s);
	} else if (c->caps.structured) {
		nbd_reply_data_part(&s->reply, s->handle, s->offset, req->buf, s->len);
		nbd_conn_queue_reply(c, s);
	} else {
		for (unsigned i = 0; i < NBD_BIG_PIECES; i++) {
			if (!b->ready[i]) {
				b->ready[i] = s;
				break;
			}
		}
		nbd_big_read_queue_ready(c);
	}
	nbd_big_read_more(c);
	if (!b->inflight && (b->err || (b->next >= b->end && !nbd_big_held(b))))
		nbd_big_read_finish(c);
	nbd_conn_check_done(c);
}

static void nbd_big_write_unstall(struct nbd_conn *c);
static void nbd_big_write_finish(struct nbd_conn *c);

/* A request parsed before a big READ was answered (nbd_tx_done), or
 * replies left and gave their slots back (nbd-conn.c): the READ's simple
 * header may go now, or more pieces may start (a stalled big WRITE's
 * too). */

void nbd_big_other_done(struct nbd_conn *c)
{
	struct nbd_big *b = &c->big;

	if (!b->head || c->state == NBD_CONN_DEAD)
		return;
	if (b->head->type == NBD_CMD_WRITE) {
		if (b->stalled && !b->inflight) {
			nbd_big_write_unstall(c);
			if (!b->inflight && b->next >= b->end && !c->wslot && !c->skip)
				nbd_big_write_finish(c);
		}
		return;
	}
	if (!c->caps.structured)
		nbd_big_read_queue_ready(c);
	nbd_big_read_more(c);
	if (!b->inflight && (b->err || (b->next >= b->end && !nbd_big_held(b))))
		nbd_big_read_finish(c);
}

/* ---- WRITE --------------------------------------------------------------- */

/* The next piece takes the payload: what is buffered now, the rest read
 * into it by nbd_tx_read.  False when it has to wait for a piece to come
 * back (reading stops meanwhile). */
static bool nbd_big_write_next(struct nbd_conn *c)
{
	struct nbd_big *b = &c->big;

	while (b->next < b->end) {
		uint64_t len = nbd_big_piece_len(b);
		struct nbd_slot *s;
		size_t avail, d;

		if (b->err) {
			/* Failed already: the rest of the payload is dropped. */
			c->skip = b->end - b->next;
			b->next = b->end;
			break;
		}
		if (b->inflight >= NBD_BIG_PIECES || !(s = nbd_big_piece(c, b->next, len))) {
			/* Other requests' slots (in flight, or replies being
			 * sent) come back too: nbd_big_other_done retries. */
			if (!b->inflight && c->used_slots <= 1) {
				b->err = -ENOMEM;
				continue;
			}
			b->stalled = true;
			c->throttled = true;
			nbd_conn_set_reading(c, false);
			return false;
		}
		b->next += len;
		avail = c->rlen - c->rpos;
		d = avail < len ? avail : (size_t)len;
		memcpy(s->req->buf, c->rbuf + c->rpos, d);
		c->rpos += d;
		if (d < len) {
			c->wslot = s;
			c->wgot = (uint32_t)d;
			return true;
		}
		nbd_big_submit(c, s);
	}
	return true;
}

/* A big WRITE that ran out of pieces takes the next ones (and reads its
 * payload again) now that some came back. */
static void nbd_big_write_unstall(struct nbd_conn *c)
{
	c->big.stalled = false;
	c->throttled = false;
	if (nbd_big_write_next(c)) {
		nbd_tx_kick(c);
		if (c->state == NBD_CONN_TRANSMISSION)
			nbd_conn_set_reading(c, true);
	}
}

static void nbd_big_write_finish(struct nbd_conn *c)
{
	struct nbd_big *b = &c->big;
	struct nbd_slot *h = b->head;
	uint32_t err = nbd_errno_to_wire(b->err);

	if (err && c->caps.structured)
		nbd_reply_error(&h->reply, h->handle, err, strerrordesc_np(-b->err), false, 0);
	else
		nbd_reply_simple(&h->reply, h->handle, err, NULL, 0);
	nbd_conn_queue_reply(c, h);
	nbd_big_end(c);
}

/* A piece's payload is all in (called by nbd_tx_read through
 * nbd_tx_write_ready). */
void nbd_big_write_full(struct nbd_conn *c, struct nbd_slot *s)
{
	nbd_big_submit(c, s);
	nbd_big_write_next(c);
	nbd_tx_kick(c);
}

static void nbd_big_write_done(struct vbd_request *req)
{
	struct nbd_slot *s = req->owner;
	struct nbd_conn *c = s->conn;
	struct nbd_big *b = &c->big;

	c->inflight--;
	b->inflight--;
	if (req->err && !b->err)
		b->err = req->err;
	nbd_conn_slot_release(c, s);
	if (c->state == NBD_CONN_DEAD) {
		if (!b->inflight)
			nbd_big_drop(c);
		nbd_conn_check_done(c);
		return;
	}
	if (b->stalled)
		nbd_big_write_unstall(c);
	if (!b->inflight && b->next >= b->end && !c->wslot && !c->skip)
		nbd_big_write_finish(c);
	nbd_conn_check_done(c);
}

/* ---- both ---------------------------------------------------------------- */

void nbd_big_start(struct nbd_conn *c, struct nbd_slot *head)
{
	struct nbd_big *b = &c->big;

	memset(b, 0, sizeof(*b));
	b->head = head;
	b->next = b->sent = head->offset;
	b->end = head->offset + head->len;
	if (head->type == NBD_CMD_READ) {
		nbd_big_read_more(c);
		/* Nothing started: failed, or waiting for slots that requests
		 * in flight give back (nbd_big_other_done). */
		if (!b->inflight && b->err)
			nbd_big_read_finish(c);
		return;
	}
	nbd_big_write_next(c);
	nbd_tx_kick(c);
	if (!b->inflight && b->next >= b->end && !c->wslot)
		nbd_big_write_finish(c);
}

/* The payload skipped after a failed WRITE piece is gone: answer. */
void nbd_big_skipped(struct nbd_conn *c)
{
	struct nbd_big *b = &c->big;

	if (b->head && b->head->type == NBD_CMD_WRITE && !b->inflight && b->next >= b->end &&
	    !c->wslot && !c->skip)
		nbd_big_write_finish(c);
}

/* The connection died: give back what is not in the vbd (pieces in it
 * come back through their callbacks, which call this again). */
void nbd_big_drop(struct nbd_conn *c)
{
	struct nbd_big *b = &c->big;

	for (unsigned i = 0; i < NBD_BIG_PIECES; i++) {
		if (b->ready[i]) {
			nbd_conn_slot_release(c, b->ready[i]);
			b->ready[i] = NULL;
		}
	}
	if (b->head && !b->inflight) {
		nbd_conn_slot_release(c, b->head);
		b->head = NULL;
	}
}
