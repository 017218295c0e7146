/* limit: show the I/O limits in force, or change them at once.
 *
 *   {"cmd":"limit"}                          the limits in force
 *   {"cmd":"limit","set":"iops=5000,bps=0"}  change, then the same answer
 *
 * "set" takes the syntax of vdiskd --limit; keys not named keep their
 * value, KEY=0 or KEY=none removes one.  A bad spec changes nothing.  In a
 * limit group the group's limits are shown and changed, for every member. */
#include <errno.h>

#include "control/ctl-int.h"
#include "core/throttle.h"
#include "core/vbd.h"

static json_t *cmd_limit_object(const struct thr_limits *l)
{
	static const struct {
		const char *key;
		size_t off;
	} keys[] = {
		{ "iops", offsetof(struct thr_limits, iops) },
		{ "read-iops", offsetof(struct thr_limits, read_iops) },
		{ "write-iops", offsetof(struct thr_limits, write_iops) },
		{ "bps", offsetof(struct thr_limits, bps) },
		{ "read-bps", offsetof(struct thr_limits, read_bps) },
		{ "write-bps", offsetof(struct thr_limits, write_bps) },
		{ "burst-iops", offsetof(struct thr_limits, burst_iops) },
		{ "burst-bps", offsetof(struct thr_limits, burst_bps) },
		{ "burst-seconds", offsetof(struct thr_limits, burst_seconds) },
		{ "iops-size", offsetof(struct thr_limits, iops_size) },
	};
	json_t *o = json_object();

	for (size_t i = 0; o && i < sizeof(keys) / sizeof(keys[0]); i++) {
		uint64_t v = *(const uint64_t *)((const char *)l + keys[i].off);
		/* JSON integers are signed: a limit past 2^63 shows as a string. */
		json_object_set_new(o, keys[i].key, v <= INT64_MAX ? json_integer((json_int_t)v)
								   : json_sprintf("%llu",
								   (unsigned long long)v));
	}
	return o;
}

static int cmd_limit_exec(struct ctl_request *req)
{
	struct vbd *vbd = req->d->vbd;
	const char *set = ctl_arg_string(req, "set");
	char spec[THR_LIMITS_FMT_MAX], msg[256];
	struct thr_limits lim;
	const char *group;
	json_t *r;
	int err;

	vbd_get_limits(vbd, &lim);
	if (set) {
		err = thr_limits_parse(set, &lim, msg, sizeof(msg));
		if (err == 0)
			err = vbd_set_limits(vbd, &lim, msg, sizeof(msg));
		if (err < 0)
			return ctl_error(req, err, "limit: %s; nothing changed", msg);
		vbd_get_limits(vbd, &lim);
	}
	r = ctl_reply(req);
	if (!r)
		return -ENOMEM;
	thr_limits_format(&lim, spec, sizeof(spec));
	json_object_set_new(r, "limits", cmd_limit_object(&lim));
	json_object_set_new(r, "spec", json_string(spec));
	group = vbd_limit_group(vbd);
	json_object_set_new(r, "group", group ? ctl_json_string(group) : json_null());
	if (group)
		json_object_set_new(r, "members", json_integer(vbd_limit_group_members(vbd)));
	return 0;
}

static const struct ctl_arg limit_args[] = {
	{ "set", JSON_STRING, false },
	{ NULL, 0, false },
};

const struct ctl_cmd_entry cmd_limit_entry = {
	.name = "limit",
	.args = limit_args,
	.usage = "limit [\"set\": \"KEY=VALUE,...\"]",
	.exec = cmd_limit_exec,
	.quiet = false,
};
