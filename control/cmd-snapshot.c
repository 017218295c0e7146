/* snapshot: a named snapshot in the image's own format (rbd), taken live:
 * the vbd pauses, drains, flushes, has the driver snapshot and resumes.
 * The request is the callback's argument; it outlives a client that goes
 * away. */
#include <errno.h>
#include <string.h>

#include "control/ctl-int.h"
#include "core/vbd.h"

static void cmd_snapshot_done(void *arg, int err, const char *msg)
{
	struct ctl_request *req = arg;
	const char *name = ctl_arg_string(req, "name");

	if (err < 0) {
		ctl_error(req, err, "snapshot %s: %s", name, msg);
	} else {
		json_t *r = ctl_reply(req);

		if (r)
			json_object_set_new(r, "snapshot", ctl_json_string(name));
	}
	ctl_request_complete(req, err < 0 ? err : 0);
}

static int cmd_snapshot_exec(struct ctl_request *req)
{
	struct vbd *vbd = req->d->vbd;
	const char *name = ctl_arg_string(req, "name");
	int r;

	if (!name || !*name)
		return ctl_error(req, -EINVAL, "snapshot: \"name\" is empty");
	r = vbd_snapshot_named(vbd, name, cmd_snapshot_done, req);
	if (r == -EOPNOTSUPP)
		return ctl_error(req, r, "snapshot: the %s driver does not take named "
				 "snapshots", vbd_driver_name(vbd));
	if (r < 0)
		return ctl_error(req, r, "snapshot: %s", strerror(-r));
	return CTL_ASYNC;
}

static const struct ctl_arg snapshot_args[] = {
	{ "name", JSON_STRING, true },
	{ NULL, 0, false },
};

const struct ctl_cmd_entry cmd_snapshot_entry = {
	.name = "snapshot",
	.args = snapshot_args,
	.usage = "snapshot \"name\": SNAPNAME  (rbd: pause, flush, snapshot, resume)",
	.exec = cmd_snapshot_exec,
};
