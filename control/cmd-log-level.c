/* log-level: shows or sets the daemon's log level. */
#include <errno.h>

#include "control/ctl-int.h"
#include "common/log.h"

static int cmd_log_level_exec(struct ctl_request *req)
{
	const char *s = ctl_arg_string(req, "level");
	enum log_level old = log_get_level(), level = old;
	json_t *r;

	if (s && log_level_parse(s, &level) < 0)
		return ctl_error(req, -EINVAL, "log-level: unknown level \"%.32s\"; "
				 "use error, warn, info or debug", s);
	if (s && level != old) {
		/* Under the louder of the two levels, so the change shows. */
		if (level < old)
			log_msg(LOG_LVL_NOTICE, "control: log level %s (was %s)",
				log_level_name(level), log_level_name(old));
		log_set_level(level);
		if (level > old)
			log_msg(LOG_LVL_NOTICE, "control: log level %s (was %s)",
				log_level_name(level), log_level_name(old));
	}
	r = ctl_reply(req);
	json_object_set_new(r, "level", json_string(log_level_name(level)));
	json_object_set_new(r, "previous", json_string(log_level_name(old)));
	return 0;
}

static const struct ctl_arg log_level_args[] = {
	{ "level", JSON_STRING, false },
	{ NULL, 0, false },
};

const struct ctl_cmd_entry cmd_log_level_entry = {
	.name = "log-level",
	.args = log_level_args,
	.usage = "log-level [\"level\": error|warn|info|debug]",
	.exec = cmd_log_level_exec,
};
