/* The client side of the control protocol, for vdiskctl and the tests:
 * connect and check the greeting, send one request line, read one reply
 * line.  Blocking, with timeouts; no output (messages go to a buffer the
 * caller prints). */
#ifndef VD_CTL_CLIENT_H
#define VD_CTL_CLIENT_H

#include <stddef.h>

#include <jansson.h>

struct ctl_conn;

enum {
	CTL_REPLY_MAX = 1024 * 1024,	/* longest reply line we accept */
	CTL_GREETING_TIMEOUT_MS = 5000,
};

/* Connects to the control socket at path and reads the greeting.
 * Returns 0, or a negative errno with a message in msg:
 *   -ENOENT        no such file
 *   -ECONNREFUSED  a socket (or file) nobody listens on
 *   -EACCES        permission denied by the file system
 *   -EPERM         the daemon refused us (its message is in msg)
 *   -ETIMEDOUT     no greeting in time: probably not a vdiskd socket
 *   -EPROTO        something answered, but not the vdiskd greeting
 *   -ENOTSUP       a vdiskd speaking a protocol version we do not know */
int ctl_conn_open(const char *path, int timeout_ms, struct ctl_conn **out,
		  char *msg, size_t msglen);
void ctl_conn_close(struct ctl_conn *c);
/* The daemon's version from the greeting. */
const char *ctl_conn_version(const struct ctl_conn *c);

/* Sends request (one JSON object, no newline) and waits up to timeout_ms
 * (< 0: forever) for the reply.  Returns 0 with *line (the reply as sent,
 * without its newline; caller frees) and *reply (parsed object; caller
 * decrefs), either may be NULL if unwanted; or a negative errno with a
 * message in msg (-EPIPE: the daemon closed the connection, -ETIMEDOUT,
 * -EPROTO: the reply is not a JSON object). */
int ctl_conn_call(struct ctl_conn *c, const char *request, int timeout_ms,
		  char **line, json_t **reply, char *msg, size_t msglen);

#endif
