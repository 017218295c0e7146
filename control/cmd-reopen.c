/* reopen: close the image and open it (or another path) again while the
 * disk is paused, e.g. after a snapshot.  The vbd keeps the old image when
 * the new one cannot be opened, and refuses a size change while clients
 * are connected (they would go on with the old size).
 *
 * A paused disk can still have I/O in flight: an operator's flush runs
 * while paused.  So the reopen waits for a drain first; the image is
 * swapped from the drain's callback, when nothing is in flight. */
#include <errno.h>
#include <string.h>

#include "control/ctl-int.h"
#include "core/vbd.h"

static int cmd_reopen_now(struct ctl_request *req)
{
	struct vbd *vbd = req->d->vbd;
	const char *image = ctl_arg_string(req, "image");
	uint64_t old_size = vbd_info(vbd)->size;
	struct vbd_stats st;
	unsigned conns;
	json_t *r;
	int err;

	if (vbd_state(vbd) != VBD_PAUSED)
		return ctl_error(req, -EBUSY, "reopen: the disk is %s; pause it first",
				 vbd_state_name(vbd_state(vbd)));
	vbd_get_stats(vbd, &st);
	conns = (unsigned)st.connections;
	err = vbd_reopen(vbd, image, conns == 0);
	if (err == -EBUSY && conns > 0)
		return ctl_error(req, err, "reopen %s: its size differs from %llu bytes "
				 "and %u client(s) are connected; the old image "
				 "stays open", image ? image : vbd_image(vbd),
				 (unsigned long long)old_size, conns);
	if (err < 0)
		return ctl_error(req, err, "reopen %s: %s; the old image stays open",
				 image ? image : vbd_image(vbd), strerror(-err));
	r = ctl_reply(req);
	if (!r)
		return -ENOMEM;
	json_object_set_new(r, "image", ctl_json_string(vbd_image(vbd)));
	json_object_set_new(r, "driver", ctl_json_string(vbd_driver_name(vbd)));
	json_object_set_new(r, "size", json_integer((json_int_t)vbd_info(vbd)->size));
	json_object_set_new(r, "resized", json_boolean(vbd_info(vbd)->size != old_size));
	return 0;
}

static void cmd_reopen_drained(void *arg, int err)
{
	struct ctl_request *req = arg;

	/* The server or the disk went away meanwhile: nothing to reopen. */
	if (err == 0 && !req->d)
		err = -ECANCELED;
	if (err < 0) {
		ctl_error(req, err, "reopen: %s", strerror(-err));
		ctl_request_complete(req, err);
		return;
	}
	ctl_request_complete(req, cmd_reopen_now(req));
}

static int cmd_reopen_exec(struct ctl_request *req)
{
	struct vbd *vbd = req->d->vbd;
	const char *image = ctl_arg_string(req, "image");

	if (vbd_state(vbd) != VBD_PAUSED)
		return ctl_error(req, -EBUSY, "reopen: the disk is %s; pause it first",
				 vbd_state_name(vbd_state(vbd)));
	if (image && !*image)
		return ctl_error(req, -EINVAL, "reopen: \"image\" is empty");
	vbd_drain(vbd, cmd_reopen_drained, req);
	return CTL_ASYNC;
}

static const struct ctl_arg reopen_args[] = {
	{ "image", JSON_STRING, false },
	{ NULL, 0, false },
};

const struct ctl_cmd_entry cmd_reopen_entry = {
	.name = "reopen",
	.args = reopen_args,
	.usage = "reopen [\"image\": path]  (only while paused)",
	.exec = cmd_reopen_exec,
};
