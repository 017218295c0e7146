/* reload-tls: read the TLS certificates and keys again (as SIGHUP does).
 * New connections use the new ones; established ones keep theirs.  When
 * the new files are bad, the old credentials stay and the reply says why. */
#include <errno.h>

#include "control/ctl-int.h"

static int cmd_reload_tls_exec(struct ctl_request *req)
{
	const struct ctl_daemon *d = req->d;
	char msg[CTL_MSG_MAX] = "";
	json_t *r = ctl_reply(req);
	int err;

	if (!r)
		return -ENOMEM;
	if (!d->reload_tls)
		return ctl_error(req, -ENOTSUP, "this daemon has no TLS");
	err = d->reload_tls(d->arg, msg, sizeof(msg));
	if (err < 0)
		return ctl_error(req, err, "%s", msg[0] ? msg : "reload failed");
	json_object_set_new(r, "tls", json_string(d->tls_mode ? d->tls_mode : "off"));
	return 0;
}

const struct ctl_cmd_entry cmd_reload_tls_entry = {
	.name = "reload-tls",
	.args = NULL,
	.usage = "reload-tls",
	.exec = cmd_reload_tls_exec,
};
