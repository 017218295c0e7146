/* The control socket's request parser and dispatcher (control/ctl-int.h)
 * on a command table of stubs, so no vbd is needed (as
 * tests/unit/test-ctl-parse.c does).  Any line: either a stub runs with
 * arguments of the declared types, or an error reply with a message; the
 * reply line is always one line of valid JSON with "ok" first. */
#include <errno.h>
#include <jansson.h>

#include "common/log.h"
#include "control/ctl-int.h"
#include "tests/fuzz/fuzz.h"

static int stub_exec(struct ctl_request *req)
{
	const char *img = ctl_arg_string(req, "image");
	double t;

	if (img)
		json_object_set_new(ctl_reply(req), "image", ctl_json_string(img));
	if (ctl_arg_number(req, "timeout", &t))
		json_object_set_new(ctl_reply(req), "timeout", json_real(t));
	return 0;
}

static int stub_fail(struct ctl_request *req)
{
	return ctl_error(req, -EBUSY, "stub says busy");
}

static const struct ctl_arg pause_args[] = {
	{ "timeout", JSON_REAL, false },
	{ "force", JSON_TRUE, false },
	{ NULL, 0, false },
};
static const struct ctl_arg reopen_args[] = {
	{ "image", JSON_STRING, true },
	{ "n", JSON_INTEGER, false },
	{ NULL, 0, false },
};
static const struct ctl_cmd_entry e_info = { .name = "info", .usage = "info",
					     .exec = stub_exec, .quiet = true };
static const struct ctl_cmd_entry e_pause = { .name = "pause", .args = pause_args,
					      .usage = "pause [timeout]", .exec = stub_exec };
static const struct ctl_cmd_entry e_reopen = { .name = "reopen", .args = reopen_args,
					       .usage = "reopen image", .exec = stub_exec };
static const struct ctl_cmd_entry e_busy = { .name = "busy", .usage = "busy",
					     .exec = stub_fail };
static const struct ctl_cmd_entry *const table[] = {
	&e_info, &e_pause, &e_reopen, &e_busy, NULL,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz-ctl", LOG_LVL_ERR, LOG_SINK_STDERR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_request req;
	const struct ctl_cmd_entry *e;
	json_t *args, *reply;
	char msg[CTL_MSG_MAX];
	char *line;
	size_t len;
	int r;

	/* The parser alone. */
	msg[0] = '\0';
	r = ctl_parse_request((const char *)data, size, table, &e, &args, msg, sizeof(msg));
	if (r == 0) {
		FUZZ_ASSERT(e != NULL && json_is_object(args));
		FUZZ_ASSERT(json_is_string(json_object_get(args, "cmd")));
		json_decref(args);
	} else {
		FUZZ_ASSERT(r < 0 && e == NULL && args == NULL && msg[0] != '\0');
	}

	/* The dispatcher and the reply line. */
	memset(&req, 0, sizeof(req));
	r = ctl_dispatch(&req, table, (const char *)data, size);
	FUZZ_ASSERT(r <= 0);
	line = ctl_reply_line(&req, r, &len);
	if (line) {
		json_error_t jerr;

		FUZZ_ASSERT(len > 0 && line[len - 1] == '\n');
		FUZZ_ASSERT(memchr(line, '\n', len) == line + len - 1);
		FUZZ_ASSERT(strncmp(line, "{\"ok\":", 6) == 0);
		reply = json_loadb(line, len - 1, JSON_REJECT_DUPLICATES, &jerr);
		FUZZ_ASSERT(reply != NULL);
		FUZZ_ASSERT(json_is_boolean(json_object_get(reply, "ok")));
		if (r < 0)
			FUZZ_ASSERT(json_is_string(json_object_get(reply, "error")) &&
				    json_is_string(json_object_get(reply, "message")));
		json_decref(reply);
		free(line);
	}
	json_decref(req.args);
	json_decref(req.reply);
	return 0;
}
