/* Inside the control server: requests, the command table and the
 * dispatcher.  Nothing here is for the vdiskctl client. */
#ifndef VD_CTL_INT_H
#define VD_CTL_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "control/ctl.h"

struct event_base;
struct ctl_client;
struct ctl_request;

enum {
	CTL_LINE_MAX = 64 * 1024,	/* longest request line, newline included */
	CTL_MSG_MAX = 512,		/* longest error message */
};

/* An exec function returns 0 (reply now: ok plus whatever it put in
 * ctl_reply(req)), a negative errno (reply now: an error, with the message
 * set by ctl_error() or strerror) or CTL_ASYNC: the command keeps req and
 * calls ctl_request_complete() exactly once, later, from the loop. */
enum { CTL_ASYNC = 1 };

/* One argument a command takes, besides "cmd". */
struct ctl_arg {
	const char *name;
	json_type type;		/* JSON_STRING, JSON_INTEGER, JSON_REAL (any
				 * number), JSON_TRUE (any boolean) */
	bool required;
};

struct ctl_cmd_entry {
	const char *name;
	const struct ctl_arg *args;	/* ends with { NULL }; NULL for none */
	const char *usage;		/* "pause [timeout: seconds]" */
	int (*exec)(struct ctl_request *req);
	bool quiet;			/* only asks: log at debug, not info */
};

/* One request, from its line to its reply.  It outlives its client: a
 * client that goes away while a command is still running leaves the
 * request with client == NULL, and ctl_request_complete() just frees it.
 * It also outlives the server (srv == NULL after ctl_server_free). */
struct ctl_request {
	struct ctl_server *srv;		/* NULL once the server is freed */
	struct ctl_client *client;	/* NULL once the client is gone */
	const struct ctl_daemon *d;	/* NULL once the server is freed */
	struct event_base *base;
	const struct ctl_cmd_entry *entry;
	json_t *args;			/* the request object */
	json_t *reply;			/* built by the command; ok is added */
	char msg[CTL_MSG_MAX];		/* error message */
	bool shutdown_after_reply;	/* shutdown: stop once the reply is out */
	long log_pid;			/* the client's, for the log */

	/* A callback that fires inside exec (vbd_pause on a paused disk may
	 * call back at once) must not reply before exec has returned. */
	bool in_exec;
	bool done_early;
	int early_err;

	/* Async commands: called by ctl_server_free for a request still
	 * running (client, srv and d are NULL by then), so the command can
	 * drop its timers and complete the request at once.  A request
	 * without cancel is completed by its callback later. */
	void (*cancel)(struct ctl_request *req);
	void *cmd_data;

	struct ctl_request *next, *prev;	/* the server's running list */
};

/* The commands (control/cmd-*.c), and the table that lists them. */
extern const struct ctl_cmd_entry cmd_info_entry;
extern const struct ctl_cmd_entry cmd_stats_entry;
extern const struct ctl_cmd_entry cmd_pause_entry;
extern const struct ctl_cmd_entry cmd_resume_entry;
extern const struct ctl_cmd_entry cmd_flush_entry;
extern const struct ctl_cmd_entry cmd_reopen_entry;
extern const struct ctl_cmd_entry cmd_shutdown_entry;
extern const struct ctl_cmd_entry cmd_log_level_entry;
extern const struct ctl_cmd_entry cmd_limit_entry;
extern const struct ctl_cmd_entry cmd_snapshot_entry;
extern const struct ctl_cmd_entry *const ctl_cmd_table[];	/* NULL-ended */

/* ctl-dispatch.c */

/* Parses one request line (without its newline): a JSON object with a
 * string "cmd" naming an entry of table, and only the arguments the entry
 * declares, of the declared types.  Returns 0 with *entry and *args (a new
 * reference) or a negative errno with a message in msg. */
int ctl_parse_request(const char *line, size_t len,
		      const struct ctl_cmd_entry *const *table,
		      const struct ctl_cmd_entry **entry, json_t **args,
		      char *msg, size_t msglen);

/* Parses the line into req and runs the command.  Returns 0 (the reply is
 * ready in req), a negative errno (an error reply is ready) or CTL_ASYNC. */
int ctl_dispatch(struct ctl_request *req, const struct ctl_cmd_entry *const *table,
		 const char *line, size_t len);

/* The reply as one line with its newline: {"ok":true,...} from req->reply
 * when err == 0, else {"ok":false,"error":"EBUSY","message":...}.  The
 * caller frees it. */
char *ctl_reply_line(struct ctl_request *req, int err, size_t *len);
/* The error reply for a request that never got a request record (refused
 * connection, line too long). */
char *ctl_error_line(int err, const char *message, size_t *len);
/* "EBUSY" for -EBUSY or EBUSY; "EIO" for anything unknown. */
const char *ctl_errno_name(int err);

/* A JSON string from any C string: bytes that are not UTF-8 become '?'. */
json_t *ctl_json_string(const char *s);

/* For commands. */
json_t *ctl_reply(struct ctl_request *req);	/* the reply object to fill */
int ctl_error(struct ctl_request *req, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));	/* returns err (< 0) */
/* Argument accessors: the dispatcher checked the types already. */
const char *ctl_arg_string(const struct ctl_request *req, const char *name);
bool ctl_arg_number(const struct ctl_request *req, const char *name, double *out);

/* ctl-server.c: ends an async request (sends its reply when its client is
 * still there) and frees it. */
void ctl_request_complete(struct ctl_request *req, int err);

#endif
