/* snapshot, taken live, in one of two forms:
 *   {"cmd":"snapshot","file":PATH}  file images (VHD or raw): pause, make
 *       PATH a differencing VHD child of the current image, reopen on it,
 *       resume (core/vbd-snapshot.c); on failure the disk stays on the old
 *       image;
 *   {"cmd":"snapshot","name":SNAP}  images with named snapshots (rbd):
 *       pause, drain, flush, have the driver snapshot, resume.
 * The request is the callback's argument; it outlives a client that goes
 * away. */
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

static void cmd_snapshot_named_done(void *arg, int err, const char *msg)
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
	const char *file = ctl_arg_string(req, "file");
	const char *name = ctl_arg_string(req, "name");
	int r;

	if (!file == !name)
		return ctl_error(req, -EINVAL, "snapshot: give \"file\" (a new VHD child) or "
				 "\"name\" (a named snapshot), one of them");
	if (name) {
		if (!*name)
			return ctl_error(req, -EINVAL, "snapshot: \"name\" is empty");
		r = vbd_snapshot_named(vbd, name, cmd_snapshot_named_done, req);
		if (r == -EOPNOTSUPP)
			return ctl_error(req, r, "snapshot: the %s driver does not take named "
					 "snapshots; give \"file\"", vbd_driver_name(vbd));
		if (r < 0)
			return ctl_error(req, r, "snapshot: %s", strerror(-r));
		return CTL_ASYNC;
	}
	if (!*file)
		return ctl_error(req, -EINVAL, "snapshot: \"file\" is empty");
	vbd_snapshot(vbd, file, cmd_snapshot_done, req);
	return CTL_ASYNC;
}

static const struct ctl_arg snapshot_args[] = {
	{ "file", JSON_STRING, false },
	{ "name", JSON_STRING, false },
	{ NULL, 0, false },
};

const struct ctl_cmd_entry cmd_snapshot_entry = {
	.name = "snapshot",
	.args = snapshot_args,
	.usage = "snapshot \"file\": path | \"name\": SNAPNAME",
	.exec = cmd_snapshot_exec,
};
