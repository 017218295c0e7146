/* Request parsing and dispatch: one line of JSON in, one command run, one
 * reply line out.  Every check of what a client sent lives here, so the
 * commands only see well-formed arguments. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/errmsg.h"
#include "control/ctl-int.h"
#include "common/log.h"

const char *ctl_errno_name(int err)
{
	const char *name;

	if (err < 0)
		err = -err;
	name = err ? strerrorname_np(err) : NULL;
	return name ? name : "EIO";
}

static const struct ctl_cmd_entry *ctl_cmd_find(const struct ctl_cmd_entry *const *table,
					 const char *name)
{
	for (; *table; table++)
		if (strcmp((*table)->name, name) == 0)
			return *table;
	return NULL;
}

static const char *ctl_type_name(json_type t)
{
	switch (t) {
	case JSON_STRING:	return "a string";
	case JSON_INTEGER:	return "an integer";
	case JSON_REAL:		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:	return "a boolean";
	case JSON_OBJECT:	return "an object";
	case JSON_ARRAY:	return "an array";
	case JSON_NULL:		return "null";
	}
	return "a value";
}

static bool ctl_type_ok(json_type want, const json_t *v)
{
	switch (want) {
	case JSON_REAL:		return json_is_number(v);
	case JSON_TRUE:
	case JSON_FALSE:	return json_is_boolean(v);
	default:		return json_typeof(v) == want;
	}
}

static const struct ctl_arg *ctl_arg_find(const struct ctl_cmd_entry *e, const char *name)
{
	for (const struct ctl_arg *a = e->args; a && a->name; a++)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

/* Unknown arguments are refused rather than ignored: a typo ("timout")
 * or a newer client talking to an older daemon should hear about it. */
static int ctl_check_args(const struct ctl_cmd_entry *e, json_t *obj, char *msg, size_t msglen)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		if (strcmp(key, "cmd") == 0)
			continue;
		const struct ctl_arg *a = ctl_arg_find(e, key);
		if (!a)
			return vd_errmsg(msg, msglen, -EINVAL,
				       "%s: unknown argument \"%.64s\"; usage: %s",
				       e->name, key, e->usage);
		if (!ctl_type_ok(a->type, v))
			return vd_errmsg(msg, msglen, -EINVAL,
				       "%s: argument \"%s\" must be %s, not %s",
				       e->name, a->name, ctl_type_name(a->type),
				       ctl_type_name(json_typeof(v)));
	}
	for (const struct ctl_arg *a = e->args; a && a->name; a++)
		if (a->required && !json_object_get(obj, a->name))
			return vd_errmsg(msg, msglen, -EINVAL,
				       "%s: missing argument \"%s\"; usage: %s",
				       e->name, a->name, e->usage);
	return 0;
}

int ctl_parse_request(const char *line, size_t len,
		      const struct ctl_cmd_entry *const *table,
		      const struct ctl_cmd_entry **entry, json_t **args,
		      char *msg, size_t msglen)
{
	json_error_t jerr;
	json_t *obj, *cmd;
	const struct ctl_cmd_entry *e;
	int err;

	*entry = NULL;
	*args = NULL;
	if (len >= CTL_LINE_MAX)
		return vd_errmsg(msg, msglen, -EMSGSIZE,
			       "request longer than %d bytes", CTL_LINE_MAX - 1);
	/* One line holds one object: JSON_DISABLE_EOF_CHECK would let
	 * "{}{}" through.  A NUL inside the line is an error too. */
	if (memchr(line, '\0', len))
		return vd_errmsg(msg, msglen, -EINVAL, "request contains a NUL byte");
	obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj)
		return vd_errmsg(msg, msglen, -EINVAL,
			       "request is not valid JSON: %s (at byte %d)",
			       jerr.text, jerr.position);
	if (!json_is_object(obj)) {
		err = vd_errmsg(msg, msglen, -EINVAL,
			      "request must be a JSON object like {\"cmd\":\"info\"}, not %s",
			      ctl_type_name(json_typeof(obj)));
		goto err;
	}
	cmd = json_object_get(obj, "cmd");
	if (!cmd) {
		err = vd_errmsg(msg, msglen, -EINVAL, "request has no \"cmd\"");
		goto err;
	}
	if (!json_is_string(cmd)) {
		err = vd_errmsg(msg, msglen, -EINVAL, "\"cmd\" must be a string, not %s",
			      ctl_type_name(json_typeof(cmd)));
		goto err;
	}
	e = ctl_cmd_find(table, json_string_value(cmd));
	if (!e) {
		/* ENOSYS, not EINVAL: a client can tell "this daemon is too
		 * old for that command" from "I sent garbage". */
		err = vd_errmsg(msg, msglen, -ENOSYS, "unknown command \"%.64s\"",
			      json_string_value(cmd));
		goto err;
	}
	err = ctl_check_args(e, obj, msg, msglen);
	if (err)
		goto err;
	*entry = e;
	*args = obj;
	return 0;
err:
	json_decref(obj);
	return err;
}

int ctl_dispatch(struct ctl_request *req, const struct ctl_cmd_entry *const *table,
		 const char *line, size_t len)
{
	int r;

	r = ctl_parse_request(line, len, table, &req->entry, &req->args,
			      req->msg, sizeof(req->msg));
	if (r < 0)
		return r;
	req->msg[0] = '\0';
	/* Commands that change something leave a trace of who asked, before
	 * what they log themselves. */
	log_msg(req->entry->quiet ? LOG_LVL_DEBUG : LOG_LVL_INFO, "control: pid %ld: %s",
		(long)req->log_pid, req->entry->name);
	r = req->entry->exec(req);
	if (r > 0 && r != CTL_ASYNC)
		r = -EIO;	/* a command bug; never an odd reply */
	return r;
}

json_t *ctl_reply(struct ctl_request *req)
{
	if (!req->reply)
		req->reply = json_object();
	return req->reply;
}

int ctl_error(struct ctl_request *req, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(req->msg, sizeof(req->msg), fmt, ap);
	va_end(ap);
	return err < 0 ? err : -err;
}

const char *ctl_arg_string(const struct ctl_request *req, const char *name)
{
	return json_string_value(json_object_get(req->args, name));
}

bool ctl_arg_number(const struct ctl_request *req, const char *name, double *out)
{
	json_t *v = json_object_get(req->args, name);

	if (!json_is_number(v))
		return false;
	*out = json_number_value(v);
	return true;
}

static char *ctl_dump_line(json_t *obj, size_t *len)
{
	char *s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	size_t n;
	char *line;

	if (!s)
		return NULL;
	n = strlen(s);
	line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	*len = n + 1;
	return line;
}

json_t *ctl_json_string(const char *s)
{
	json_t *v = json_string(s);
	char *copy;

	if (v || !s)
		return v;
	/* Not UTF-8 (a path, a message cut inside a character): keep the
	 * ASCII so the reply still says something. */
	copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	v = json_string(copy);
	free(copy);
	return v;
}

char *ctl_error_line(int err, const char *message, size_t *len)
{
	json_t *obj;
	char *line;

	obj = json_pack("{s:b, s:s, s:o?}", "ok", 0, "error", ctl_errno_name(err),
			"message", ctl_json_string(message && *message ? message :
						  strerror(err < 0 ? -err : err)));
	if (!obj)
		return NULL;
	line = ctl_dump_line(obj, len);
	json_decref(obj);
	return line;
}

char *ctl_reply_line(struct ctl_request *req, int err, size_t *len)
{
	json_t *obj;
	const char *key;
	json_t *v;
	char *line;

	if (err < 0)
		return ctl_error_line(err, req->msg, len);
	/* "ok" first, so a person reading the socket sees it at once. */
	obj = json_pack("{s:b}", "ok", 1);
	if (!obj)
		return NULL;
	if (req->reply)
		json_object_foreach(req->reply, key, v)
			if (strcmp(key, "ok") != 0)
				json_object_set(obj, key, v);
	line = ctl_dump_line(obj, len);
	json_decref(obj);
	return line;
}
