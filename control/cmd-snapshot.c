/* snapshot: pause, make "file" a differencing VHD child of the current
 * image, reopen on it, resume (core/vbd-snapshot.c).  Answers once the
 * disk runs on the new leaf, or with the error (the disk then stays on
 * the old one). */
#include <errno.h>
#include <string.h>

#include "control/ctl-int.h"
#include "core/vbd.h"

json_t *cmd_chain_array(struct vbd *vbd)
{
	const char *paths[64], *drivers[64];
	unsigned n = vbd_chain(vbd, paths, drivers, 64);
	json_t *a = json_array();

	for (unsigned i = 0; a && i < n; i++) {
		json_t *o = json_object();

		json_object_set_new(o, "image", ctl_json_string(paths[i]));
		json_object_set_new(o, "driver", ctl_json_string(drivers[i]));
		json_array_append_new(a, o);
	}
	return a;
}

static void cmd_snapshot_done(void *arg, int err, const char *msg)
{
	struct ctl_request *req = arg;
	json_t *r;

	if (err) {
		ctl_error(req, err, "snapshot: %s", msg ? msg : strerror(-err));
		ctl_request_complete(req, err);
		return;
	}
	if (!req->d) {		/* the server went away meanwhile */
		ctl_request_complete(req, -ECANCELED);
		return;
	}
	r = ctl_reply(req);
	if (!r) {
		ctl_request_complete(req, -ENOMEM);
		return;
	}
	json_object_set_new(r, "image", ctl_json_string(vbd_image(req->d->vbd)));
	json_object_set_new(r, "chain", cmd_chain_array(req->d->vbd));
	ctl_request_complete(req, 0);
}

static int cmd_snapshot_exec(struct ctl_request *req)
{
	const char *file = ctl_arg_string(req, "file");

	if (!file || !*file)
		return ctl_error(req, -EINVAL, "snapshot: \"file\" is empty");
	vbd_snapshot(req->d->vbd, file, cmd_snapshot_done, req);
	return CTL_ASYNC;
}

static const struct ctl_arg snapshot_args[] = {
	{ "file", JSON_STRING, true },
	{ NULL, 0, false },
};

const struct ctl_cmd_entry cmd_snapshot_entry = {
	.name = "snapshot",
	.args = snapshot_args,
	.usage = "snapshot \"file\": path  (a new differencing VHD on top of the image)",
	.exec = cmd_snapshot_exec,
};
