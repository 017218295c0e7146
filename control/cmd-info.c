/* info: what the disk is (name, image, geometry, mode) and where it is
 * served.  Everything comes from the vbd as it is now, so a reopen or a
 * pause shows at once. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/ctl-int.h"
#include "core/vbd.h"

static json_t *cmd_listen_array(const struct ctl_daemon *d)
{
	json_t *a = json_array();

	for (unsigned i = 0; a && i < d->nr_listen; i++)
		json_array_append_new(a, ctl_json_string(d->listen[i]));
	return a;
}

/* The driver's facts, as an object named after the driver: a key given
 * again becomes a list (snapshots, which is a list even of one). */
static void cmd_info_describe(void *arg, const char *key, const char *value, bool number)
{
	json_t *o = arg, *prev = json_object_get(o, key);
	json_t *v = number ? json_integer((json_int_t)strtoll(value, NULL, 10)) :
			     ctl_json_string(value);

	if (strcmp(key, "snapshots") == 0 && !prev) {
		prev = json_array();
		json_object_set_new(o, key, prev);
	}
	if (json_is_array(prev))
		json_array_append_new(prev, v);
	else
		json_object_set_new(o, key, v);
}

static int cmd_info_exec(struct ctl_request *req)
{
	struct vbd *vbd = req->d->vbd;
	struct vbd_stats st;
	const struct vbd_info *vi = vbd_info(vbd);
	json_t *r = ctl_reply(req);

	if (!r)
		return -ENOMEM;
	vbd_get_stats(vbd, &st);
	json_object_set_new(r, "name", ctl_json_string(vbd_name(vbd)));
	json_object_set_new(r, "image", ctl_json_string(vbd_image(vbd)));
	json_object_set_new(r, "driver", ctl_json_string(vbd_driver_name(vbd)));
	json_object_set_new(r, "chain", cmd_chain_array(vbd));
	json_object_set_new(r, "size", json_integer((json_int_t)vi->size));
	json_object_set_new(r, "logical_block", json_integer(vi->logical_block));
	json_object_set_new(r, "physical_block", json_integer(vi->physical_block));
	json_object_set_new(r, "read_only", json_boolean(vi->read_only));
	json_object_set_new(r, "cache", json_string(vbd_cache(vbd) == VBD_CACHE_WRITEBACK ?
						    "writeback" : "none"));
	json_object_set_new(r, "state", json_string(vbd_state_name(vbd_state(vbd))));
	json_object_set_new(r, "pause_reason", ctl_json_string(vbd_pause_reason(vbd)));
	json_object_set_new(r, "listen", cmd_listen_array(req->d));
	json_object_set_new(r, "tls", json_string(req->d->tls_mode ? req->d->tls_mode : "off"));
	{
		json_t *drv = json_object();

		vbd_describe(vbd, cmd_info_describe, drv);
		if (json_object_size(drv))
			json_object_set_new(r, vbd_driver_name(vbd), drv);
		else
			json_decref(drv);
	}
	json_object_set_new(r, "connections", json_integer((json_int_t)st.connections));
	json_object_set_new(r, "pid", json_integer(getpid()));
	json_object_set_new(r, "version", json_string(VDISKD_VERSION));
	return 0;
}

const struct ctl_cmd_entry cmd_info_entry = {
	.name = "info",
	.args = NULL,
	.usage = "info",
	.exec = cmd_info_exec,
	.quiet = true,
};
