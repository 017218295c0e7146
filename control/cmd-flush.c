/* flush: answers once the completed writes are durable.  The request is
 * the callback's argument; it outlives a client that goes away. */
#include <errno.h>
#include <string.h>

#include "control/ctl-int.h"
#include "core/vbd.h"

static void cmd_flush_done(void *arg, int err)
{
	struct ctl_request *req = arg;

	if (err < 0)
		ctl_error(req, err, "flush: %s", strerror(-err));
	ctl_request_complete(req, err < 0 ? err : 0);
}

static int cmd_flush_exec(struct ctl_request *req)
{
	vbd_flush(req->d->vbd, cmd_flush_done, req);
	return CTL_ASYNC;
}

const struct ctl_cmd_entry cmd_flush_entry = {
	.name = "flush",
	.args = NULL,
	.usage = "flush",
	.exec = cmd_flush_exec,
};
