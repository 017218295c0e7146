/* I/O limits in the request path.
 *
 * Between accepting a request (checked, not paused) and handing it to the
 * driver, vbd_admit asks the token buckets (core/throttle.c, or the
 * group's shared ones) whether it may go.  A request over the limit is
 * held, never failed: it is counted in flight (so a drain or pause waits
 * for it) and waits in its direction's queue, in order; one timer on the
 * main loop, armed for the earliest time a queue head may go, releases
 * them.  Reads and writes have separate queues, so a held read never
 * holds up a write when only a read limit applies.  FLUSH, CACHE and
 * BLOCK_STATUS move no data and pass straight through.
 *
 * With no limits and no group the request path pays one branch
 * (vbd->limit.on). */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "core/throttle-group.h"
#include "core/vbd-int.h"

/* The bucket question for one request: THR op and bytes; false when the
 * op is not limited at all. */
static bool vbd_limit_cost(const struct vbd_req *req, enum thr_op *op, uint64_t *bytes,
			   int *dir)
{
	*bytes = 0;
	switch (req->pub.op) {
	case VBD_OP_READ:
		*op = THR_OP_READ;
		*bytes = req->pub.len;
		*dir = VBD_LIMIT_READ;
		return true;
	case VBD_OP_WRITE:
		*op = THR_OP_WRITE;
		*bytes = req->pub.len;
		*dir = VBD_LIMIT_WRITE;
		return true;
	case VBD_OP_TRIM:
		*op = THR_OP_TRIM;
		*dir = VBD_LIMIT_WRITE;
		return true;
	case VBD_OP_WRITE_ZEROES:
		*op = THR_OP_ZERO;
		*dir = VBD_LIMIT_WRITE;
		return true;
	default:
		return false;
	}
}

static uint64_t vbd_limit_ask(struct vbd_limit *l, enum thr_op op, uint64_t bytes,
			      uint64_t now)
{
	if (l->group)
		return thr_group_admit(l->group, op, bytes, now);
	return thr_admit(&l->st, &l->lim, op, bytes, now);
}

static void vbd_limit_arm(struct vbd_limit *l, uint64_t wait_ns)
{
	/* A wait beyond a day is a limit of one request per day: check back
	 * daily rather than overflow the timeval. */
	if (wait_ns > 86400ull * 1000000000u)
		wait_ns = 86400ull * 1000000000u;
	struct timeval tv = {
		.tv_sec = (time_t)(wait_ns / 1000000000u),
		.tv_usec = (suseconds_t)((wait_ns % 1000000000u + 999) / 1000),
	};

	event_add(l->timer, &tv);
	l->timer_armed = true;
}

/* Lets every queue head go that may, in order; arms the timer for the
 * earliest of the rest.  Returns how many went. */
static unsigned vbd_limit_release(struct vbd *vbd)
{
	struct vbd_limit *l = &vbd->limit;
	uint64_t now = vd_now_ns(), next = 0;
	unsigned went = 0;

	for (int d = 0; d < VBD_LIMIT_DIRS; d++) {
		while (l->head[d]) {
			struct vbd_req *req = l->head[d];
			enum thr_op op = THR_OP_READ;
			uint64_t bytes = 0, wait = 0;
			int dir;

			if (l->on) {
				vbd_limit_cost(req, &op, &bytes, &dir);
				wait = vbd_limit_ask(l, op, bytes, now);
			}
			if (wait) {
				if (!next || wait < next)
					next = wait;
				break;
			}
			l->head[d] = req->vbd_next;
			if (!l->head[d])
				l->tail[d] = &l->head[d];
			l->now--;
			l->wait_ns += now - req->start_ns;
			vbd_start(vbd, req);
			went++;
		}
	}
	if (next)
		vbd_limit_arm(l, next);
	return went;
}

static void vbd_limit_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vbd *vbd = arg;

	vbd->limit.timer_armed = false;
	if (vbd_limit_release(vbd))
		vbd_kick(vbd);
}

bool vbd_limit_hold(struct vbd *vbd, struct vbd_req *req)
{
	struct vbd_limit *l = &vbd->limit;
	enum thr_op op = THR_OP_READ;
	uint64_t bytes = 0;
	int d = 0;

	if (!vbd_limit_cost(req, &op, &bytes, &d))
		return false;
	/* Behind others of its direction, it waits its turn. */
	if (!l->head[d] && vbd_limit_ask(l, op, bytes, req->start_ns) == 0)
		return false;
	req->vbd_next = NULL;
	*l->tail[d] = req;
	l->tail[d] = &req->vbd_next;
	l->now++;
	l->throttled++;
	vbd->inflight++;
	if (!l->timer_armed)
		vbd_limit_release(vbd);		/* computes the wait, arms */
	return true;
}

int vbd_limit_init(struct vbd *vbd, const struct vbd_config *cfg)
{
	struct vbd_limit *l = &vbd->limit;
	char msg[256];
	int r;

	for (int d = 0; d < VBD_LIMIT_DIRS; d++)
		l->tail[d] = &l->head[d];
	thr_init(&l->st);
	if (cfg->limits)
		l->lim = *cfg->limits;
	l->timer = evtimer_new(vbd->base, vbd_limit_timer_cb, vbd);
	if (!l->timer)
		return -ENOMEM;
	if (cfg->limit_group) {
		r = thr_group_open(cfg->rundir ? cfg->rundir : ".", cfg->limit_group,
				   cfg->limits, &l->group, msg, sizeof(msg));
		if (r < 0) {
			log_msg(LOG_LVL_ERR, "limit group %s: %s", cfg->limit_group, msg);
			return r;
		}
		l->group_name = strdup(cfg->limit_group);
		if (!l->group_name)
			return -ENOMEM;
		memset(&l->lim, 0, sizeof(l->lim));
	}
	l->on = l->group || thr_active(&l->lim);
	return 0;
}

void vbd_limit_free(struct vbd *vbd)
{
	struct vbd_limit *l = &vbd->limit;

	if (l->now)
		log_msg(LOG_LVL_WARN, "closed with %u requests held by a limit", l->now);
	if (l->timer)
		event_free(l->timer);
	thr_group_close(l->group);
	free(l->group_name);
}

void vbd_get_limits(struct vbd *vbd, struct thr_limits *out)
{
	if (vbd->limit.group)
		thr_group_get_limits(vbd->limit.group, out);
	else
		*out = vbd->limit.lim;
}

int vbd_set_limits(struct vbd *vbd, const struct thr_limits *lim, char *msg, size_t msglen)
{
	struct vbd_limit *l = &vbd->limit;
	uint64_t now = vd_now_ns();
	int r = thr_limits_check(lim, msg, msglen);

	if (r < 0)
		return r;
	if (l->group) {
		r = thr_group_set_limits(l->group, lim, now, msg, msglen);
		if (r < 0)
			return r;
	} else {
		thr_set_limits(&l->st, &l->lim, lim, now);
		l->lim = *lim;
		l->on = thr_active(&l->lim);
	}
	/* At once: held requests are judged again under the new limits. */
	if (l->timer_armed) {
		event_del(l->timer);
		l->timer_armed = false;
	}
	if (vbd_limit_release(vbd))
		vbd_kick(vbd);
	return 0;
}

const char *vbd_limit_group(const struct vbd *vbd)
{
	return vbd->limit.group_name;
}

int vbd_limit_group_members(struct vbd *vbd)
{
	return vbd->limit.group ? thr_group_members(vbd->limit.group) : 0;
}
