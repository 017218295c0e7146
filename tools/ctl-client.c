/* The control protocol's client side (see ctl-client.h).  Linked into
 * the library, but only vdiskctl and the tests call it. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/errmsg.h"
#include "tools/ctl-client.h"

struct ctl_conn {
	int fd;
	char *buf;		/* bytes read but not yet returned */
	size_t len, cap;
	char version[64];
};

static long long ctl_client_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads until a newline; returns the line's length (the newline is
 * replaced by NUL and stays in buf until ctl_client_consume_line) or -errno. */
static ssize_t ctl_client_read_line(struct ctl_conn *c, int timeout_ms)
{
	long long deadline = timeout_ms < 0 ? -1 : ctl_client_now_ms() + timeout_ms;
	size_t scanned = 0;

	for (;;) {
		char *nl = c->len > scanned ?
			   memchr(c->buf + scanned, '\n', c->len - scanned) : NULL;
		if (nl) {
			*nl = '\0';
			return nl - c->buf;
		}
		scanned = c->len;
		if (c->len >= CTL_REPLY_MAX)
			return -EMSGSIZE;
		if (c->cap - c->len < 4096) {
			size_t cap = c->cap ? c->cap * 2 : 8192;
			char *b;
			if (cap > CTL_REPLY_MAX + 1)
				cap = CTL_REPLY_MAX + 1;
			b = realloc(c->buf, cap);
			if (!b)
				return -ENOMEM;
			c->buf = b;
			c->cap = cap;
		}
		int wait = -1;
		if (deadline >= 0) {
			long long left = deadline - ctl_client_now_ms();
			if (left <= 0)
				return -ETIMEDOUT;
			wait = left > 1000000 ? 1000000 : (int)left;
		}
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int r = poll(&p, 1, wait);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			continue;	/* the deadline check above decides */
		ssize_t n = read(c->fd, c->buf + c->len, c->cap - 1 - c->len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return errno == ECONNRESET ? -EPIPE : -errno;
		}
		if (n == 0)
			return -EPIPE;
		c->len += (size_t)n;
	}
}

static void ctl_client_consume_line(struct ctl_conn *c, size_t linelen)
{
	size_t used = linelen + 1;

	memmove(c->buf, c->buf + used, c->len - used);
	c->len -= used;
}

/* The greeting's version, or the daemon's refusal message. */
static int ctl_client_check_greeting(struct ctl_conn *c, const char *line, const char *path,
			  char *msg, size_t msglen)
{
	json_t *g = json_loads(line, 0, NULL);
	json_t *v, *ver, *proto;
	int err;

	if (!json_is_object(g)) {
		err = vd_errmsg(msg, msglen, -EPROTO, "%s: not a vdiskd control socket "
			      "(it greeted with \"%.40s\")", path, line);
		goto out;
	}
	if (json_is_false(json_object_get(g, "ok"))) {
		const char *m = json_string_value(json_object_get(g, "message"));
		err = vd_errmsg(msg, msglen, -EPERM, "%s: the daemon refused the "
			      "connection: %s", path, m ? m : "no reason given");
		goto out;
	}
	v = json_object_get(g, "vdiskd");
	ver = json_object_get(v, "version");
	proto = json_object_get(v, "protocol");
	if (!json_is_object(v) || !json_is_string(ver) || !json_is_integer(proto)) {
		err = vd_errmsg(msg, msglen, -EPROTO, "%s: not a vdiskd control socket "
			      "(unexpected greeting)", path);
		goto out;
	}
	if (json_integer_value(proto) != 1) {
		err = vd_errmsg(msg, msglen, -ENOTSUP, "%s: vdiskd %s speaks control "
			      "protocol %lld; this vdiskctl knows protocol 1", path,
			      json_string_value(ver), (long long)json_integer_value(proto));
		goto out;
	}
	snprintf(c->version, sizeof(c->version), "%s", json_string_value(ver));
	err = 0;
out:
	json_decref(g);
	return err;
}

int ctl_conn_open(const char *path, int timeout_ms, struct ctl_conn **out,
		  char *msg, size_t msglen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ctl_conn *c;
	ssize_t n;
	int err;

	*out = NULL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return vd_errmsg(msg, msglen, -ENAMETOOLONG, "%s: path too long for "
			       "a unix socket (max %zu bytes)", path, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c = calloc(1, sizeof(*c));
	if (!c)
		return vd_errmsg(msg, msglen, -ENOMEM, "out of memory");
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		err = vd_errmsg(msg, msglen, -errno, "socket: %s", strerror(errno));
		goto err;
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		switch (errno) {
		case ENOENT:
			vd_errmsg(msg, msglen, err, "%s: no such socket; is vdiskd running "
				"for this disk? (check the name or the -s path)", path);
			break;
		case ECONNREFUSED: {
			struct stat st;
			if (stat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
				vd_errmsg(msg, msglen, err, "%s: not a socket; give the "
					"control socket (NAME.ctl)", path);
			else
				vd_errmsg(msg, msglen, err, "%s: nothing is listening; the "
					"daemon is not running (a stale socket?)", path);
			break;
		}
		case EACCES:
		case EPERM:
			err = -EACCES;
			vd_errmsg(msg, msglen, err, "%s: permission denied; run as root or "
				"as the daemon's user", path);
			break;
		case ENOTDIR:
			vd_errmsg(msg, msglen, err, "%s: a directory in the path is not "
				"a directory", path);
			break;
		default:
			vd_errmsg(msg, msglen, err, "%s: connect: %s", path, strerror(errno));
		}
		goto err;
	}
	n = ctl_client_read_line(c, timeout_ms);
	if (n < 0) {
		err = (int)n;
		if (err == -ETIMEDOUT)
			vd_errmsg(msg, msglen, err, "%s: no greeting within %d ms; is it a "
				"vdiskd control socket?", path, timeout_ms);
		else if (err == -EMSGSIZE)
			vd_errmsg(msg, msglen, err = -EPROTO, "%s: not a vdiskd control "
				"socket (endless greeting)", path);
		else if (err == -EPIPE && c->len == 0)
			vd_errmsg(msg, msglen, err = -EPROTO, "%s: closed without a greeting; "
				"is it a vdiskd control socket?", path);
		else
			vd_errmsg(msg, msglen, err, "%s: reading the greeting: %s", path,
				strerror(-err));
		goto err;
	}
	err = ctl_client_check_greeting(c, c->buf, path, msg, msglen);
	if (err < 0)
		goto err;
	ctl_client_consume_line(c, (size_t)n);
	*out = c;
	return 0;
err:
	ctl_conn_close(c);
	return err;
}

void ctl_conn_close(struct ctl_conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c);
}

const char *ctl_conn_version(const struct ctl_conn *c)
{
	return c->version;
}

static int ctl_client_write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int ctl_conn_call(struct ctl_conn *c, const char *request, int timeout_ms,
		  char **line, json_t **reply, char *msg, size_t msglen)
{
	size_t rlen = strlen(request);
	json_error_t jerr;
	json_t *obj;
	ssize_t n;
	int err;

	if (line)
		*line = NULL;
	if (reply)
		*reply = NULL;
	if (memchr(request, '\n', rlen))
		return vd_errmsg(msg, msglen, -EINVAL, "request contains a newline");
	err = ctl_client_write_all(c->fd, request, rlen);
	if (!err)
		err = ctl_client_write_all(c->fd, "\n", 1);
	if (err)
		return vd_errmsg(msg, msglen, err == -ECONNRESET ? -EPIPE : err,
			       "sending the request: %s; the daemon closed the connection",
			       strerror(-err));
	n = ctl_client_read_line(c, timeout_ms);
	if (n < 0) {
		if (n == -ETIMEDOUT)
			return vd_errmsg(msg, msglen, -ETIMEDOUT, "no reply within %d s",
				       timeout_ms / 1000);
		if (n == -EPIPE)
			return vd_errmsg(msg, msglen, -EPIPE, "the daemon closed the "
				       "connection without a reply");
		return vd_errmsg(msg, msglen, (int)n, "reading the reply: %s",
			       strerror((int)-n));
	}
	obj = json_loadb(c->buf, (size_t)n, 0, &jerr);
	if (!json_is_object(obj) || !json_is_boolean(json_object_get(obj, "ok"))) {
		json_decref(obj);
		ctl_client_consume_line(c, (size_t)n);
		return vd_errmsg(msg, msglen, -EPROTO, "the reply is not a vdiskd reply "
			       "object");
	}
	if (line) {
		*line = strndup(c->buf, (size_t)n);
		if (!*line) {
			json_decref(obj);
			ctl_client_consume_line(c, (size_t)n);
			return vd_errmsg(msg, msglen, -ENOMEM, "out of memory");
		}
	}
	ctl_client_consume_line(c, (size_t)n);
	if (reply)
		*reply = obj;
	else
		json_decref(obj);
	return 0;
}
