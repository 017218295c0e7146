/* pause and resume.
 *
 * pause answers once the vbd has drained (vbd_pause's callback), or with
 * ETIMEDOUT after the timeout, in which case the disk is resumed: a pause
 * that cannot finish must not leave the guest's I/O held forever.  The
 * vbd's callback may come after the reply, after the client has gone or
 * after the server is freed; struct pause_op lives until then, and
 * op->req says whether anyone still waits for the answer. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "control/ctl-int.h"
#include "common/log.h"
#include "core/vbd.h"

enum { PAUSE_TIMEOUT_DEFAULT_S = 30, PAUSE_TIMEOUT_MAX_S = 24 * 3600 };

struct pause_op {
	struct ctl_request *req;	/* NULL: nobody waits any more */
	struct vbd *vbd;
	struct event *timer;
	double timeout_s;
};

static void cmd_pause_op_detach(struct pause_op *op)
{
	if (op->timer) {
		event_free(op->timer);
		op->timer = NULL;
	}
	if (op->req) {
		op->req->cancel = NULL;
		op->req->cmd_data = NULL;
		op->req = NULL;
	}
}

static void cmd_pause_done(void *arg, int err)
{
	struct pause_op *op = arg;
	struct ctl_request *req = op->req;

	cmd_pause_op_detach(op);
	free(op);
	if (!req)
		return;		/* timed out already, or the server is gone */
	if (err == -ECANCELED) {
		ctl_error(req, err, "pause: cancelled: the disk was resumed before "
			  "it had drained");
	} else if (err < 0) {
		ctl_error(req, err, "pause: %s", strerror(-err));
	} else {
		json_object_set_new(ctl_reply(req), "state", json_string("paused"));
	}
	ctl_request_complete(req, err < 0 ? err : 0);
}

static void cmd_pause_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pause_op *op = arg;
	struct ctl_request *req = op->req;
	struct vbd *vbd = op->vbd;
	double t = op->timeout_s;

	/* Detach first: vbd_resume may run cmd_pause_done, which frees op. */
	cmd_pause_op_detach(op);
	log_msg(LOG_LVL_WARN, "control: pause did not drain within %g s; resuming", t);
	vbd_resume(vbd);
	if (req) {
		ctl_error(req, -ETIMEDOUT, "pause: in-flight I/O did not drain within "
			  "%g s; the disk was resumed and keeps running", t);
		ctl_request_complete(req, -ETIMEDOUT);
	}
}

/* The server is going away: nobody waits for the answer.  op stays until
 * the vbd calls back. */
static void cmd_pause_cancel(struct ctl_request *req)
{
	cmd_pause_op_detach(req->cmd_data);
	ctl_request_complete(req, -ECANCELED);
}

static int cmd_pause_exec(struct ctl_request *req)
{
	struct pause_op *op;
	struct timeval tv;
	double t = PAUSE_TIMEOUT_DEFAULT_S;

	if (ctl_arg_number(req, "timeout", &t) &&
	    (!isfinite(t) || t <= 0 || t > PAUSE_TIMEOUT_MAX_S))
		return ctl_error(req, -EINVAL, "pause: timeout must be a number of "
				 "seconds in (0, %d]", PAUSE_TIMEOUT_MAX_S);
	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->req = req;
	op->vbd = req->d->vbd;
	op->timeout_s = t;
	op->timer = evtimer_new(req->base, cmd_pause_timeout, op);
	if (!op->timer) {
		free(op);
		return -ENOMEM;
	}
	tv.tv_sec = (time_t)t;
	tv.tv_usec = (suseconds_t)((t - (double)tv.tv_sec) * 1e6);
	evtimer_add(op->timer, &tv);
	req->cmd_data = op;
	req->cancel = cmd_pause_cancel;
	/* May call cmd_pause_done before returning (already paused): the server
	 * holds that reply until we return CTL_ASYNC.  op may be gone after
	 * this line. */
	vbd_pause(op->vbd, cmd_pause_done, op);
	return CTL_ASYNC;
}

static const struct ctl_arg pause_args[] = {
	{ "timeout", JSON_REAL, false },
	{ NULL, 0, false },
};

const struct ctl_cmd_entry cmd_pause_entry = {
	.name = "pause",
	.args = pause_args,
	.usage = "pause [\"timeout\": seconds, default 30]",
	.exec = cmd_pause_exec,
};

static int cmd_resume_exec(struct ctl_request *req)
{
	struct vbd *vbd = req->d->vbd;

	vbd_resume(vbd);
	json_object_set_new(ctl_reply(req), "state",
			    json_string(vbd_state_name(vbd_state(vbd))));
	return 0;
}

const struct ctl_cmd_entry cmd_resume_entry = {
	.name = "resume",
	.args = NULL,
	.usage = "resume",
	.exec = cmd_resume_exec,
};
