/* Drain, pause, resume and flush.
 *
 * Drain waits until nothing is in flight.  Pause stops handing requests
 * to the driver (they are held, not failed) and then drains.  Flush makes
 * completed writes durable and does nothing for requests in flight. */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/clock.h"
#include "common/log.h"
#include "core/vbd-int.h"
#include "queue/queue.h"

/* Fires the drain waiters once nothing is in flight.  A waiter of a pause
 * that was cancelled by a resume meanwhile gets -ECANCELED. */
void vbd_check_drained(struct vbd *vbd)
{
	if (vbd->inflight)
		return;
	struct vbd_waiter *w = vbd->waiters;
	vbd->waiters = NULL;
	while (w) {
		struct vbd_waiter *next = w->next;
		int err = 0;
		if (w->for_pause) {
			if (vbd->state == VBD_PAUSING) {
				vbd->state = VBD_PAUSED;
				log_msg(LOG_LVL_INFO, "paused");
			} else if (vbd->state == VBD_RUNNING) {
				err = -ECANCELED;
			}
		}
		w->cb(w->arg, err);
		free(w);
		w = next;
	}
}

static int vbd_add_waiter(struct vbd *vbd, vbd_cb *cb, void *arg, bool for_pause)
{
	struct vbd_waiter *w = calloc(1, sizeof(*w)), **p;

	if (!w)
		return -ENOMEM;
	w->cb = cb;
	w->arg = arg;
	w->for_pause = for_pause;
	for (p = &vbd->waiters; *p; p = &(*p)->next)
		;
	*p = w;		/* in order: first asked, first told */
	if (vbd->inflight == 0)
		event_active(vbd->deferred_ev, 0, 0);	/* fires from the loop */
	return 0;
}

void vbd_drain(struct vbd *vbd, vbd_cb *cb, void *arg)
{
	int r = vbd_add_waiter(vbd, cb, arg, false);
	if (r < 0)
		cb(arg, r);
}

void vbd_pause(struct vbd *vbd, vbd_cb *cb, void *arg)
{
	if (vbd->state == VBD_RUNNING) {
		if (!vbd->pause_reason[0])
			snprintf(vbd->pause_reason, sizeof(vbd->pause_reason), "operator");
		vbd->state = VBD_PAUSING;
		log_msg(LOG_LVL_INFO, "pausing (%u in flight)",
			vbd->inflight);
	}
	int r = vbd_add_waiter(vbd, cb, arg, true);
	if (r < 0)
		cb(arg, r);
}

void vbd_resume(struct vbd *vbd)
{
	struct vbd_req *req;

	if (vbd->state == VBD_RUNNING)
		return;
	log_msg(LOG_LVL_INFO, "resuming (%u held)", vbd->held);
	vbd->state = VBD_RUNNING;
	vbd->pause_reason[0] = '\0';
	/* Requests that failed and paused the disk are retried first. */
	*vbd->failed_tail = vbd->held_head;
	req = vbd->failed_head;
	vbd->failed_head = NULL;
	vbd->failed_tail = &vbd->failed_head;
	vbd->held_head = NULL;
	vbd->held_tail = &vbd->held_head;
	vbd->held = 0;
	while (req) {
		struct vbd_req *next = req->vbd_next;
		vbd_admit(vbd, req);
		req = next;
	}
	tq_kick(vbd->q);
}

struct vbd_flush_ctx {
	vbd_cb *cb;
	void *arg;
};

static void vbd_flush_done(struct vbd_request *req)
{
	struct vbd_flush_ctx *ctx = req->owner;
	int err = req->err;

	vbd_request_put(req);
	ctx->cb(ctx->arg, err);
	free(ctx);
}

void vbd_flush(struct vbd *vbd, vbd_cb *cb, void *arg)
{
	struct vbd_flush_ctx *ctx = malloc(sizeof(*ctx));
	struct vbd_request *req = vbd_request_get(vbd, 0);

	if (!ctx || !req) {
		free(ctx);
		if (req)
			vbd_request_put(req);
		cb(arg, -ENOMEM);
		return;
	}
	ctx->cb = cb;
	ctx->arg = arg;
	req->op = VBD_OP_FLUSH;
	req->done = vbd_flush_done;
	req->owner = ctx;
	vbd_req_of(req)->start_ns = vd_now_ns();
	/* An operator's flush goes through even while paused: nothing is in
	 * flight then, and a flush before a snapshot is the point. */
	vbd_dispatch(vbd, vbd_req_of(req));
	tq_kick(vbd->q);
}

void vbd_get_stats(struct vbd *vbd, struct vbd_stats *s)
{
	const struct vbd_counters *c = &vbd->c;
	struct tq_stats qs;

	tq_get_stats(vbd->q, &qs);
	*s = (struct vbd_stats){
		.reads = c->reads, .writes = c->writes, .flushes = c->flushes,
		.trims = c->trims, .zeroes = c->zeroes, .caches = c->caches,
		.block_status = c->block_status,
		.bytes_read = c->bytes_read, .bytes_written = c->bytes_written,
		.errors = c->errors,
		.inflight = vbd->inflight, .held = vbd->held,
		.waiting = qs.waiting, .pending = qs.pending,
		.iocbs_submitted = qs.iocbs_submitted,
		.io_submit_calls = qs.io_submit_calls, .merged = qs.merged,
		.connections = vbd->connections,
		.state = vbd->state,
		.uptime_s = (vd_now_ns() - vbd->start_ns) / 1000000000u,
		.read_lat_p50_us = lat_percentile(&c->read_lat, 50),
		.read_lat_p99_us = lat_percentile(&c->read_lat, 99),
		.write_lat_p50_us = lat_percentile(&c->write_lat, 50),
		.write_lat_p99_us = lat_percentile(&c->write_lat, 99),
		.throttled = vbd->limit.throttled,
		.throttled_now = vbd->limit.now,
		.throttle_wait_us = vbd->limit.wait_ns / 1000,
		.buffer_bytes = vbd->buffer_bytes,
		.buffer_limit = vbd->buffer_limit,
		.pause_reason = vbd_pause_reason(vbd),
		.submit_wakeups = qs.wakeups,
		.submit_polled = qs.polled,
		.submit_moves = qs.moves,
	};
	const struct lat_hist *h[VBD_STAGES] = {
		[VBD_STAGE_RECV] = &c->recv_lat, [VBD_STAGE_QUEUE] = &qs.lat_queue,
		[VBD_STAGE_SUBMIT] = &qs.lat_submit, [VBD_STAGE_DEVICE] = &qs.lat_device,
		[VBD_STAGE_VBD] = &c->vbd_lat, [VBD_STAGE_REPLY] = &c->reply_lat,
		[VBD_STAGE_TOTAL] = &c->total_lat,
	};
	for (unsigned i = 0; i < VBD_STAGES; i++)
		s->stage[i] = (struct vbd_stage_lat){
			.count = h[i]->count,
			.p50_us = lat_percentile(h[i], 50),
			.p99_us = lat_percentile(h[i], 99),
		};
}

const char *vbd_stage_name(enum vbd_stage st)
{
	static const char *const names[VBD_STAGES] = {
		[VBD_STAGE_RECV] = "recv", [VBD_STAGE_QUEUE] = "queue",
		[VBD_STAGE_SUBMIT] = "submit", [VBD_STAGE_DEVICE] = "device",
		[VBD_STAGE_VBD] = "vbd", [VBD_STAGE_REPLY] = "reply",
		[VBD_STAGE_TOTAL] = "total",
	};
	return (unsigned)st < VBD_STAGES ? names[st] : "?";
}
