/* The control socket: a unix stream listener, one bufferevent per client,
 * newline-delimited JSON (see ctl-dispatch.c for the parsing).
 *
 * Limits keep a misbehaving client from costing the daemon more than a
 * little memory and a few fds: a request line is at most CTL_LINE_MAX
 * bytes (the bufferevent stops reading at that mark, so the input buffer
 * never grows past it), replies queue up to CTL_OUT_MAX before the server
 * stops reading requests, at most CTL_MAX_CLIENTS clients are kept (a new
 * one evicts the longest idle), and idle clients are closed.
 *
 * One request runs at a time per client: while an async command (pause,
 * flush) is running, further lines wait in the input buffer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/clock.h"
#include "control/ctl-int.h"
#include "common/log.h"

enum {
	CTL_MAX_CLIENTS = 64,
	CTL_OUT_MAX = 256 * 1024,
	CTL_IDLE_TIMEOUT_S = 120,
	CTL_WRITE_TIMEOUT_S = 30,
	CTL_ACCEPT_BATCH = 64,
};

struct ctl_client {
	struct ctl_server *srv;
	struct bufferevent *bev;
	struct ctl_request *busy;	/* the request running for it */
	uint64_t last_active_ns;
	unsigned id;
	pid_t pid;
	uid_t uid;
	bool spoke;			/* has sent a request */
	bool read_eof;			/* half-closed: finish, then close */
	bool closing;			/* free once the output is flushed */
	bool shutdown_after_write;
	struct ctl_client *next, *prev;
};

struct ctl_server {
	struct event_base *base;
	struct ctl_daemon d;
	const struct ctl_cmd_entry *const *table;
	char *path;
	int fd;
	dev_t dev;			/* of the socket file we made: unlink */
	ino_t ino;			/* only our own at exit */
	struct event *accept_ev;
	struct event *accept_retry_ev;	/* out of fds: back off */
	struct event *shutdown_ev;
	bool shutdown_called;
	uid_t uid;
	unsigned next_id;
	unsigned nr_clients;
	struct ctl_client *clients;
	struct ctl_request *running;	/* async requests */
	struct log_ratelimit refuse_rl;
};

static void ctl_client_process(struct ctl_client *c);
static bool ctl_client_check_close(struct ctl_client *c);

/* ---- requests ---- */

static struct ctl_request *ctl_request_new(struct ctl_client *c)
{
	struct ctl_request *req = calloc(1, sizeof(*req));

	if (!req)
		return NULL;
	req->srv = c->srv;
	req->client = c;
	req->d = &c->srv->d;
	req->base = c->srv->base;
	return req;
}

/* Frees a request that was never sent. */
static void ctl_request_free(struct ctl_request *req)
{
	if (!req)
		return;
	json_decref(req->args);
	json_decref(req->reply);
	free(req);
}

static void ctl_running_add(struct ctl_server *srv, struct ctl_request *req)
{
	req->prev = NULL;
	req->next = srv->running;
	if (srv->running)
		srv->running->prev = req;
	srv->running = req;
}

static void ctl_running_del(struct ctl_server *srv, struct ctl_request *req)
{
	if (req->prev)
		req->prev->next = req->next;
	else
		srv->running = req->next;
	if (req->next)
		req->next->prev = req->prev;
	req->next = req->prev = NULL;
}

static void ctl_schedule_shutdown(struct ctl_server *srv)
{
	/* From a fresh loop iteration, not from inside a client callback:
	 * the daemon's shutdown may free this server. */
	if (!srv->shutdown_called)
		event_active(srv->shutdown_ev, EV_TIMEOUT, 1);
}

static void ctl_shutdown_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_server *srv = arg;

	if (srv->shutdown_called)
		return;
	srv->shutdown_called = true;
	log_msg(LOG_LVL_NOTICE, "control: shutdown requested");
	srv->d.shutdown(srv->d.arg);
}

/* Queues the reply line; a client without memory for it is closed. */
static void ctl_client_reply(struct ctl_client *c, struct ctl_request *req, int err)
{
	size_t len = 0;
	char *line = ctl_reply_line(req, err, &len);

	if (!line || bufferevent_write(c->bev, line, len) < 0) {
		log_msg(LOG_LVL_WARN, "control: client %u: cannot queue a reply", c->id);
		c->closing = true;
		bufferevent_disable(c->bev, EV_READ);
	}
	free(line);
	if (req->shutdown_after_reply && err == 0)
		c->shutdown_after_write = true;
}

void ctl_request_complete(struct ctl_request *req, int err)
{
	struct ctl_client *c = req->client;

	if (err > 0)
		err = -err;
	if (req->in_exec) {
		req->done_early = true;
		req->early_err = err;
		return;
	}
	if (req->srv)
		ctl_running_del(req->srv, req);
	if (c) {
		c->busy = NULL;
		ctl_client_reply(c, req, err);
	}
	ctl_request_free(req);
	if (c) {
		ctl_client_process(c);
		ctl_client_check_close(c);
	}
}

/* ---- clients ---- */

static void ctl_client_free(struct ctl_client *c)
{
	struct ctl_server *srv = c->srv;

	if (c->busy)
		c->busy->client = NULL;	/* the command finds it gone */
	if (c->shutdown_after_write)
		ctl_schedule_shutdown(srv);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nr_clients--;
	bufferevent_free(c->bev);
	log_msg(LOG_LVL_DEBUG, "control: client %u gone", c->id);
	free(c);
}

static bool ctl_client_check_close(struct ctl_client *c)
{
	if (!c->closing || evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
		return false;
	ctl_client_free(c);
	return true;
}

/* Ends a client that broke the protocol: tell it why, then close once the
 * message is out. */
static void ctl_client_fail(struct ctl_client *c, int err, const char *why)
{
	size_t len;
	char *line = ctl_error_line(err, why, &len);

	log_msg(LOG_LVL_INFO, "control: client %u (pid %ld): %s; closing",
		c->id, (long)c->pid, why);
	if (line)
		bufferevent_write(c->bev, line, len);
	free(line);
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
}

static void ctl_client_run_line(struct ctl_client *c, const char *line, size_t len)
{
	struct ctl_server *srv = c->srv;
	struct ctl_request *req;
	int r;

	req = ctl_request_new(c);
	if (!req) {
		ctl_client_fail(c, -ENOMEM, "out of memory");
		return;
	}
	/* Busy before the command runs: an async command whose callback
	 * fires early still finds a consistent client. */
	c->busy = req;
	ctl_running_add(srv, req);
	req->in_exec = true;
	req->log_pid = c->pid;
	r = ctl_dispatch(req, srv->table, line, len);
	req->in_exec = false;
	if (r == CTL_ASYNC && req->done_early)
		r = req->early_err;
	if (!req->entry)
		log_msg(LOG_LVL_DEBUG, "control: pid %ld: bad request: %s", (long)c->pid,
			req->msg);
	else if (r < 0)
		log_msg(req->entry->quiet ? LOG_LVL_DEBUG : LOG_LVL_INFO,
			"control: pid %ld: %s", (long)c->pid, req->msg);
	if (r == CTL_ASYNC)
		return;
	ctl_running_del(srv, req);
	c->busy = NULL;
	ctl_client_reply(c, req, r);
	ctl_request_free(req);
}

/* Runs the complete lines waiting in the input buffer, one at a time. */
static void ctl_client_process(struct ctl_client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer *out = bufferevent_get_output(c->bev);

	while (!c->busy && !c->closing) {
		struct evbuffer_ptr eol;
		size_t eol_len, len;
		char *line;

		/* A client that does not read its replies stops being read. */
		if (evbuffer_get_length(out) > CTL_OUT_MAX)
			return;
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (eol.pos < 0) {
			if (evbuffer_get_length(in) >= CTL_LINE_MAX) {
				ctl_client_fail(c, -EMSGSIZE, "request line longer than 65535 bytes");
				return;
			}
			if (c->read_eof) {
				/* A last line without newline is still a request. */
				len = evbuffer_get_length(in);
				if (len == 0) {
					c->closing = true;
					return;
				}
				eol.pos = (ev_ssize_t)len;
				eol_len = 0;
			} else {
				return;
			}
		}
		len = (size_t)eol.pos;
		if (len + eol_len > CTL_LINE_MAX) {
			ctl_client_fail(c, -EMSGSIZE, "request line longer than 65535 bytes");
			return;
		}
		line = (char *)evbuffer_pullup(in, (ev_ssize_t)(len + eol_len));
		if (!line && len + eol_len > 0) {
			ctl_client_fail(c, -ENOMEM, "out of memory");
			return;
		}
		c->last_active_ns = vd_now_ns();
		if (len > 0 && line[len - 1] == '\r')
			len--;			/* telnet, socat CRLF */
		if (len > 0) {
			c->spoke = true;
			ctl_client_run_line(c, line, len);
		}
		/* The command never touches the input buffer: the line is
		 * still where pullup left it. */
		evbuffer_drain(in, (size_t)eol.pos + eol_len);
	}
}

static void ctl_client_read_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_client *c = arg;

	ctl_client_process(c);
	ctl_client_check_close(c);
}

static void ctl_client_write_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_client *c = arg;

	/* The output is empty: the reply to shutdown is out. */
	if (c->shutdown_after_write) {
		c->shutdown_after_write = false;
		ctl_schedule_shutdown(c->srv);
	}
	ctl_client_process(c);	/* it may have stopped on CTL_OUT_MAX */
	ctl_client_check_close(c);
}

static void ctl_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_client *c = arg;

	if (what & BEV_EVENT_EOF) {
		c->read_eof = true;
		ctl_client_process(c);
		if (!c->busy)
			c->closing = true;
		ctl_client_check_close(c);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
	    (c->busy || c->read_eof)) {
		/* Waiting for a slow command is not idleness. */
		bufferevent_enable(bev, EV_READ);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		log_msg(LOG_LVL_DEBUG, "control: client %u: %s timeout", c->id,
			what & BEV_EVENT_READING ? "idle" : "write");
	ctl_client_free(c);
}

/* ---- accepting ---- */

/* Best effort for a client we are about to drop: a fresh socket's buffer
 * always has room for one short line. */
static void ctl_send_error_now(int fd, int err, const char *msg)
{
	size_t len;
	char *line = ctl_error_line(err, msg, &len);

	if (line) {
		ssize_t r = send(fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		(void)r;
	}
	free(line);
}

/* The victim when the table is full: the longest idle client that is not
 * running a command, preferring those that never sent a request (the
 * idle-connection flood) over real ones (a stats --watch). */
static struct ctl_client *ctl_pick_victim(struct ctl_server *srv)
{
	struct ctl_client *best = NULL;

	for (struct ctl_client *c = srv->clients; c; c = c->next) {
		if (c->busy || c->closing)
			continue;
		if (!best || (!c->spoke && best->spoke) ||
		    (c->spoke == best->spoke && c->last_active_ns < best->last_active_ns))
			best = c;
	}
	return best;
}

static bool ctl_peer_allowed(struct ctl_server *srv, int fd, struct ucred *cred)
{
	socklen_t len = sizeof(*cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) < 0) {
		log_errno(LOG_LVL_WARN, errno, "control: SO_PEERCRED");
		return false;
	}
	return cred->uid == 0 || cred->uid == srv->uid;
}

static void ctl_accept_one(struct ctl_server *srv, int fd)
{
	struct ucred cred = { 0 };
	struct ctl_client *c;
	struct timeval rtv = { CTL_IDLE_TIMEOUT_S, 0 };
	struct timeval wtv = { CTL_WRITE_TIMEOUT_S, 0 };

	if (!ctl_peer_allowed(srv, fd, &cred)) {
		char msg[160];

		if (log_ratelimit_ok(&srv->refuse_rl))
			log_msg(LOG_LVL_WARN, "control: refused pid %ld uid %ld: not root or uid %ld",
				(long)cred.pid, (long)cred.uid, (long)srv->uid);
		snprintf(msg, sizeof(msg), "permission denied: only root or uid %ld "
			 "may use this control socket", (long)srv->uid);
		ctl_send_error_now(fd, -EPERM, msg);
		close(fd);
		return;
	}
	if (srv->nr_clients >= CTL_MAX_CLIENTS) {
		struct ctl_client *victim = ctl_pick_victim(srv);

		if (!victim) {
			if (log_ratelimit_ok(&srv->refuse_rl))
				log_msg(LOG_LVL_WARN, "control: %d clients busy; refusing pid %ld",
					CTL_MAX_CLIENTS, (long)cred.pid);
			ctl_send_error_now(fd, -EAGAIN, "too many control clients; try again later");
			close(fd);
			return;
		}
		if (log_ratelimit_ok(&srv->refuse_rl))
			log_msg(LOG_LVL_NOTICE, "control: %d clients; closing the longest "
				"idle (pid %ld)", CTL_MAX_CLIENTS, (long)victim->pid);
		ctl_send_error_now(bufferevent_getfd(victim->bev), -ETIMEDOUT,
			       "closed: too many control clients, this one was the longest idle");
		ctl_client_free(victim);
	}

	c = calloc(1, sizeof(*c));
	if (!c)
		goto err;
	c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev)
		goto err;
	c->srv = srv;
	c->id = ++srv->next_id;
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->last_active_ns = vd_now_ns();
	c->next = srv->clients;
	if (srv->clients)
		srv->clients->prev = c;
	srv->clients = c;
	srv->nr_clients++;

	bufferevent_setcb(c->bev, ctl_client_read_cb, ctl_client_write_cb, ctl_client_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CTL_LINE_MAX);
	bufferevent_set_timeouts(c->bev, &rtv, &wtv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (bufferevent_write(c->bev, "{\"vdiskd\":{\"version\":\"" VDISKD_VERSION
			      "\",\"protocol\":1}}\n",
			      strlen("{\"vdiskd\":{\"version\":\"" VDISKD_VERSION
				     "\",\"protocol\":1}}\n")) < 0) {
		ctl_client_free(c);
		return;
	}
	log_msg(LOG_LVL_DEBUG, "control: client %u: pid %ld uid %ld", c->id,
		(long)cred.pid, (long)cred.uid);
	return;
err:
	log_msg(LOG_LVL_WARN, "control: out of memory for a client");
	free(c);
	close(fd);
}

static void ctl_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct ctl_server *srv = arg;

	for (int i = 0; i < CTL_ACCEPT_BATCH; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			ctl_accept_one(srv, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* The pending connection keeps the listener readable:
			 * without a pause this would spin. */
			struct timeval tv = { 0, 200 * 1000 };

			if (log_ratelimit_ok(&srv->refuse_rl))
				log_errno(LOG_LVL_WARN, errno, "control: accept");
			event_del(srv->accept_ev);
			evtimer_add(srv->accept_retry_ev, &tv);
		} else if (errno != EAGAIN) {
			log_errno(LOG_LVL_WARN, errno, "control: accept");
		}
		return;
	}
}

static void ctl_accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_server *srv = arg;

	event_add(srv->accept_ev, NULL);
}

/* ---- the socket file ---- */

/* 1: a daemon answers at path; 0: nothing there (or a dead socket);
 * -errno: something else is at path. */
static int ctl_probe_existing(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;		/* not ours to replace */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	r = r == 0 ? 1 : (errno == ECONNREFUSED || errno == ENOENT) ? 0 : -errno;
	close(fd);
	return r;
}

/* Puts the bound socket at tmp under path without ever clobbering a live
 * daemon's socket: link() fails if path exists, so two daemons starting at
 * once cannot both win.  A stale socket is removed and the link retried. */
static int ctl_install_socket(const char *tmp, const char *path)
{
	for (int tries = 0; tries < 3; tries++) {
		int r;

		if (link(tmp, path) == 0)
			return 0;
		if (errno != EEXIST) {
			/* A filesystem without hard links: rename is still
			 * atomic, only the race above is lost. */
			if (errno == EPERM || errno == ENOTSUP || errno == EOPNOTSUPP) {
				r = ctl_probe_existing(path);
				if (r == 1)
					return -EADDRINUSE;
				if (r < 0)
					return r;
				return rename(tmp, path) < 0 ? -errno : 0;
			}
			return -errno;
		}
		r = ctl_probe_existing(path);
		if (r == 1)
			return -EADDRINUSE;
		if (r < 0)
			return r;
		log_msg(LOG_LVL_INFO, "control: replacing stale socket %s", path);
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	}
	return -EADDRINUSE;
}

static int ctl_listen_at(const char *path, int *fdp, dev_t *dev, ino_t *ino)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char tmp[sizeof(sa.sun_path) + 32];
	struct stat st;
	int fd, r;

	r = snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	if (strlen(path) >= sizeof(sa.sun_path) || r >= (int)sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, tmp, strlen(tmp) + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(tmp);		/* ours from a crashed run with the same pid */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto err;
	/* 0600 before anyone can see the name: only the temp name exists
	 * while the mode is the umask's. */
	if (chmod(tmp, 0600) < 0 || listen(fd, 128) < 0)
		goto err_unlink;
	r = ctl_install_socket(tmp, path);
	unlink(tmp);
	if (r < 0)
		goto err_r;
	if (stat(path, &st) < 0)
		goto err;
	*dev = st.st_dev;
	*ino = st.st_ino;
	*fdp = fd;
	return 0;
err_unlink:
	r = -errno;
	unlink(tmp);
	goto err_r;
err:
	r = -errno;
err_r:
	close(fd);
	return r;
}

/* ---- the server ---- */

int ctl_server_create(struct event_base *base, const char *path,
		      const struct ctl_daemon *d, struct ctl_server **out)
{
	struct ctl_server *srv;
	int r;

	*out = NULL;
	if (!path || !*path || !d || !d->vbd)
		return -EINVAL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->fd = -1;
	srv->base = base;
	srv->d = *d;
	srv->table = ctl_cmd_table;
	srv->uid = geteuid();
	srv->refuse_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT;
	srv->path = strdup(path);
	if (!srv->path) {
		r = -ENOMEM;
		goto err;
	}
	srv->accept_retry_ev = evtimer_new(base, ctl_accept_retry_cb, srv);
	srv->shutdown_ev = evtimer_new(base, ctl_shutdown_cb, srv);
	if (!srv->accept_retry_ev || !srv->shutdown_ev) {
		r = -ENOMEM;
		goto err;
	}
	r = ctl_listen_at(path, &srv->fd, &srv->dev, &srv->ino);
	if (r < 0)
		goto err;	/* the caller says why: -EADDRINUSE is "in use" */
	srv->accept_ev = event_new(base, srv->fd, EV_READ | EV_PERSIST, ctl_accept_cb, srv);
	if (!srv->accept_ev || event_add(srv->accept_ev, NULL) < 0) {
		r = -ENOMEM;
		goto err;
	}
	log_msg(LOG_LVL_DEBUG, "control: listening on %s", path);
	*out = srv;
	return 0;
err:
	ctl_server_free(srv);
	return r;
}

void ctl_server_free(struct ctl_server *srv)
{
	struct ctl_request *req;
	struct stat st;

	if (!srv)
		return;
	while (srv->clients)
		ctl_client_free(srv->clients);
	/* Commands still running keep their request; they find it with
	 * no client and no server and just free it. */
	while ((req = srv->running)) {
		ctl_running_del(srv, req);
		req->srv = NULL;
		req->d = NULL;
		if (req->cancel)
			req->cancel(req);
	}
	if (srv->accept_ev)
		event_free(srv->accept_ev);
	if (srv->accept_retry_ev)
		event_free(srv->accept_retry_ev);
	if (srv->shutdown_ev)
		event_free(srv->shutdown_ev);
	if (srv->fd >= 0) {
		/* Only our own socket: a newer daemon may have replaced it. */
		if (stat(srv->path, &st) == 0 && st.st_dev == srv->dev &&
		    st.st_ino == srv->ino)
			unlink(srv->path);
		close(srv->fd);
	}
	free(srv->path);
	free(srv);
}
