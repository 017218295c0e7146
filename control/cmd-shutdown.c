/* shutdown: the same as SIGTERM.  The daemon is told only once the reply
 * has left (the server does that), so the client hears "ok" before the
 * socket goes away. */
#include <errno.h>

#include "control/ctl-int.h"

static int cmd_shutdown_exec(struct ctl_request *req)
{
	if (!req->d->shutdown)
		return ctl_error(req, -ENOTSUP, "shutdown: not supported by this daemon");
	req->shutdown_after_reply = true;
	return 0;
}

const struct ctl_cmd_entry cmd_shutdown_entry = {
	.name = "shutdown",
	.args = NULL,
	.usage = "shutdown",
	.exec = cmd_shutdown_exec,
};
