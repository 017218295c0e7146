/* Listen addresses: "unix:PATH" and "tcp:HOST:PORT" (HOST may be [v6] or
 * empty for every address), and sockets handed over by systemd.
 *
 * A unix socket file left by a dead daemon is replaced; one that answers
 * belongs to a live process and is refused, and anything that is not a
 * socket is never removed.  The file we created is unlinked when the
 * listener closes, unless someone replaced it meanwhile. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/event.h>

#include "common/addr.h"
#include "frontends/nbd-internal.h"

static void nbd_listen_on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct nbd_listener *l = arg;

	nbd_server_accept(l->srv, fd);
}

static int nbd_listener_add_fd(struct nbd_listener *l, int fd)
{
	struct event *ev;

	if (l->nfds == NBD_LISTENER_MAX_FDS)
		return -E2BIG;
	ev = event_new(l->srv->base, fd, EV_READ | EV_PERSIST, nbd_listen_on_accept, l);
	if (!ev)
		return -ENOMEM;
	if (event_add(ev, NULL) < 0) {
		event_free(ev);
		return -ENOMEM;
	}
	l->fds[l->nfds] = fd;
	l->evs[l->nfds++] = ev;
	return 0;
}

/* Is someone accepting on this unix socket path? */
static bool nbd_listen_unix_alive(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	bool alive;

	if (fd < 0)
		return true;	/* cannot tell: do not remove it */
	/* EAGAIN: a full backlog, which is a live listener too. */
	alive = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0 ||
		errno == EAGAIN || errno == EINPROGRESS;
	close(fd);
	return alive;
}

static int nbd_listen_unix(struct nbd_listener *l, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		r = -errno;
		if (r != -EADDRINUSE)
			goto err;
		if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
			log_msg(LOG_LVL_ERR, "nbd: %s exists and is not a socket", path);
			r = -EEXIST;
			goto err;
		}
		if (nbd_listen_unix_alive(&sun)) {
			log_msg(LOG_LVL_ERR, "nbd: another process is listening on %s", path);
			r = -EADDRINUSE;
			goto err;
		}
		log_msg(LOG_LVL_INFO, "nbd: replacing stale socket %s", path);
		if (unlink(path) < 0 && errno != ENOENT) {
			r = -errno;
			goto err;
		}
		if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			r = -errno;
			goto err;
		}
	}
	if (listen(fd, SOMAXCONN) < 0 || stat(path, &st) < 0) {
		r = -errno;
		unlink(path);
		goto err;
	}
	l->unix_path = strdup(path);
	l->unix_dev = st.st_dev;
	l->unix_ino = st.st_ino;
	if (!l->unix_path) {
		r = -ENOMEM;
		unlink(path);
		goto err;
	}
	r = nbd_listener_add_fd(l, fd);
	if (r < 0)
		goto err;
	return 0;
err:
	/* The caller names the address and the error. */
	close(fd);
	return r;
}

static int nbd_listen_tcp(struct nbd_listener *l, const struct vd_addr *a, char **label)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_ADDRCONFIG,
	};
	struct addrinfo *res = NULL, *ai;
	int r, one = 1;

	r = getaddrinfo(a->host[0] ? a->host : NULL, a->port, &hints, &res);
	if (r) {
		log_msg(LOG_LVL_ERR, "nbd: tcp:%s:%s: %s", a->host, a->port, gai_strerror(r));
		return r == EAI_MEMORY ? -ENOMEM : -EADDRNOTAVAIL;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
				ai->ai_protocol);

		if (fd < 0) {
			if (errno == EAFNOSUPPORT)
				continue;	/* no IPv6 here */
			r = -errno;
			goto err;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* "::" and "0.0.0.0" both come back: each binds its own. */
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
			r = -errno;
			close(fd);
			goto err;
		}
		r = nbd_listener_add_fd(l, fd);
		if (r < 0) {
			close(fd);
			goto err;
		}
	}
	if (!l->nfds) {
		r = -EADDRNOTAVAIL;
		goto err;
	}
	/* Port 0 picks one: the label says which (tests read it back). */
	if (strcmp(a->port, "0") == 0) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char host[INET6_ADDRSTRLEN], port[8];

		if (getsockname(l->fds[0], (struct sockaddr *)&ss, &sl) == 0 &&
		    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port,
				sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
			char *s;
			bool v6 = ss.ss_family == AF_INET6;

			if (asprintf(&s, "tcp:%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "",
				     port) >= 0) {
				free(*label);
				*label = s;
			}
		}
	}
	freeaddrinfo(res);
	return 0;
err:
	freeaddrinfo(res);
	return r;
}

static struct nbd_listener *nbd_listener_new(struct nbd_server *srv, const char *label)
{
	struct nbd_listener *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->srv = srv;
	l->label = strdup(label);
	if (!l->label) {
		free(l);
		return NULL;
	}
	return l;
}

int nbd_listener_open(struct nbd_server *srv, const char *addr, struct nbd_listener **out)
{
	struct vd_addr a;
	struct nbd_listener *l;
	int r = vd_addr_parse(addr, &a);

	if (r < 0) {
		log_msg(LOG_LVL_ERR, "nbd: bad listen address '%s' "
			"(unix:PATH or tcp:HOST:PORT)", addr);
		return r;
	}
	/* From here on errors are the caller's to report. */
	l = nbd_listener_new(srv, addr);
	if (!l)
		return -ENOMEM;
	r = a.is_unix ? nbd_listen_unix(l, a.path) : nbd_listen_tcp(l, &a, &l->label);
	if (r < 0) {
		nbd_listener_close(l);
		return r;
	}
	log_msg(LOG_LVL_INFO, "nbd: listening on %s", l->label);
	*out = l;
	return 0;
}

int nbd_listener_adopt(struct nbd_server *srv, int fd, const char *label,
		       struct nbd_listener **out)
{
	struct nbd_listener *l = nbd_listener_new(srv, label ? label : "fd");
	int fl, r;

	if (!l)
		return -ENOMEM;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		r = -errno;
		goto err;
	}
	r = nbd_listener_add_fd(l, fd);
	if (r < 0)
		goto err;
	*out = l;
	return 0;
err:
	nbd_listener_close(l);
	return r;
}

void nbd_listener_close(struct nbd_listener *l)
{
	struct stat st;

	if (!l)
		return;
	for (unsigned i = 0; i < l->nfds; i++) {
		event_free(l->evs[i]);
		close(l->fds[i]);
	}
	if (l->unix_path && stat(l->unix_path, &st) == 0 && st.st_dev == l->unix_dev &&
	    st.st_ino == l->unix_ino)
		unlink(l->unix_path);
	free(l->unix_path);
	free(l->label);
	free(l);
}

void nbd_listeners_enable(struct nbd_server *srv, bool on)
{
	for (unsigned i = 0; i < srv->nr_listeners; i++) {
		struct nbd_listener *l = srv->listeners[i];

		for (unsigned j = 0; j < l->nfds; j++) {
			if (on)
				event_add(l->evs[j], NULL);
			else
				event_del(l->evs[j]);
		}
	}
}
