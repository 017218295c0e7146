/* The NBD server object: its listeners, accepting under the connection
 * cap, the export every connection offers, and shutdown. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/event.h>

#include "core/vbd.h"
#include "frontends/nbd-internal.h"
#include "frontends/nbd-proto.h"
#include "frontends/nbd.h"
#include "frontends/nbd-tls.h"

enum { NBD_ACCEPT_BATCH = 32, NBD_ACCEPT_PAUSE_MS = 500 };

static void nbd_server_on_shutdown_done(evutil_socket_t fd, short what, void *arg)
{
	struct nbd_server *srv = arg;
	void (*cb)(void *) = srv->shutdown_cb;

	event_del(srv->grace_ev);
	srv->shutdown_cb = NULL;
	if (cb)
		cb(srv->shutdown_arg);
}

/* Shutdown took too long: clients that do not read their replies (or
 * never finish their handshake) are cut.  Requests in flight still
 * finish before their connection is freed. */
static void nbd_server_on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct nbd_server *srv = arg;
	struct nbd_conn *c, *next;

	for (c = srv->conns; c; c = next) {
		next = c->next;
		if (c->state != NBD_CONN_DEAD) {
			log_msg(LOG_LVL_WARN, "nbd: connection %u (%s) cut at shutdown",
				c->id, c->peer);
			nbd_conn_kill(c, "shutdown grace expired");
			nbd_conn_check_done(c);
		}
	}
}

void nbd_server_budget_wait(struct nbd_server *srv, struct nbd_conn *c)
{
	if (c->budget_wait)
		return;
	c->budget_wait = true;
	c->budget_next = NULL;
	*srv->budget_tail = c;
	srv->budget_tail = &c->budget_next;
}

void nbd_server_budget_forget(struct nbd_server *srv, struct nbd_conn *c)
{
	struct nbd_conn **pp;

	for (pp = &srv->budget_head; *pp && *pp != c; pp = &(*pp)->budget_next)
		;
	if (*pp) {
		*pp = c->budget_next;
		if (srv->budget_tail == &c->budget_next)
			srv->budget_tail = pp;
	}
	c->budget_wait = false;
}

void nbd_server_budget_freed(struct nbd_server *srv)
{
	if (srv->budget_head && !event_pending(srv->budget_ev, EV_TIMEOUT, NULL))
		event_active(srv->budget_ev, EV_TIMEOUT, 0);
}

/* Buffers came back: the waiters go on in order, each parsing what it
 * has, while the budget lasts (one that cannot go queues itself again). */
static void nbd_server_on_budget(evutil_socket_t fd, short what, void *arg)
{
	struct nbd_server *srv = arg;
	struct nbd_conn *list = srv->budget_head;

	srv->budget_head = NULL;
	srv->budget_tail = &srv->budget_head;
	while (list) {
		struct nbd_conn *c = list;

		list = c->budget_next;
		c->budget_next = NULL;
		if (srv->budget_head) {
			/* The budget ran out again: the rest keep their turn. */
			c->budget_next = NULL;
			*srv->budget_tail = c;
			srv->budget_tail = &c->budget_next;
			continue;
		}
		nbd_conn_budget_resume(c);
	}
}

static void nbd_server_on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	struct nbd_server *srv = arg;

	if (!srv->shutting_down)
		nbd_listeners_enable(srv, true);
}

const char *nbd_tls_mode_name(enum nbd_tls_mode mode)
{
	switch (mode) {
	case NBD_TLS_OFF:	return "off";
	case NBD_TLS_ON:	return "on";
	case NBD_TLS_REQUIRE:	return "require";
	}
	return "?";
}

enum nbd_tls_mode nbd_server_tls_mode(const struct nbd_server *srv)
{
	return srv->tls_mode;
}

static int nbd_server_load_tls(struct nbd_server *srv, struct nbd_tls_creds **out,
			       char *err, size_t errlen)
{
	struct nbd_tls_config cfg = {
		.mode = srv->tls_mode,
		.certificates = srv->tls_certificates,
		.psk_file = srv->tls_psk_file,
		.verify_peer = srv->tls_verify_peer,
	};

	return nbd_tls_creds_load(&cfg, out, err, errlen);
}

int nbd_server_reload_tls(struct nbd_server *srv, char *err, size_t errlen)
{
	struct nbd_tls_creds *cr;
	int r;

	if (srv->tls_mode == NBD_TLS_OFF) {
		snprintf(err, errlen, "TLS is off");
		return -ENOTSUP;
	}
	r = nbd_server_load_tls(srv, &cr, err, errlen);
	if (r < 0) {
		log_msg(LOG_LVL_ERR, "nbd: TLS reload failed, keeping the old credentials: %s",
			err);
		return r;
	}
	/* Sessions hold their own reference: they go on with the old. */
	nbd_tls_creds_put(srv->tls_creds);
	srv->tls_creds = cr;
	log_msg(LOG_LVL_NOTICE, "nbd: TLS credentials reloaded (%s)", nbd_tls_creds_kind(cr));
	return 0;
}

static int nbd_server_setup_tls(struct nbd_server *srv, const struct nbd_tls_config *tls)
{
	char err[512];
	int r;

	srv->tls_mode = tls->mode;
	srv->tls_verify_peer = tls->verify_peer;
	if (tls->mode == NBD_TLS_OFF)
		return 0;
	if ((tls->certificates && !(srv->tls_certificates = strdup(tls->certificates))) ||
	    (tls->psk_file && !(srv->tls_psk_file = strdup(tls->psk_file))))
		return -ENOMEM;
	r = nbd_server_load_tls(srv, &srv->tls_creds, err, sizeof(err));
	if (r < 0) {
		log_msg(LOG_LVL_ERR, "TLS: %s", err);
		return r;
	}
	log_msg(LOG_LVL_INFO, "nbd: TLS %s (%s%s)", nbd_tls_mode_name(tls->mode),
		nbd_tls_creds_kind(srv->tls_creds),
		tls->verify_peer ? ", client certificates verified" : "");
	return 0;
}

int nbd_server_create(struct event_base *base, struct vbd *vbd,
		      const struct nbd_server_opts *opts, struct nbd_server **out)
{
	struct nbd_server *srv = calloc(1, sizeof(*srv));
	int r;

	if (!srv)
		return -ENOMEM;
	srv->base = base;
	srv->vbd = vbd;
	srv->export_name = strdup(opts->export_name ? opts->export_name : vbd_name(vbd));
	srv->description = opts->description ? strdup(opts->description) : NULL;
	srv->max_connections = opts->max_connections ? opts->max_connections :
		NBD_DEFAULT_MAX_CONNECTIONS;
	srv->max_peer_connections = opts->max_peer_connections &&
				    opts->max_peer_connections < srv->max_connections ?
				    opts->max_peer_connections : srv->max_connections;
	srv->handshake_timeout_s = opts->handshake_timeout_s ? opts->handshake_timeout_s :
		NBD_DEFAULT_HANDSHAKE_TIMEOUT_S;
	srv->warn_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT;
	srv->shutdown_ev = event_new(base, -1, 0, nbd_server_on_shutdown_done, srv);
	srv->grace_ev = evtimer_new(base, nbd_server_on_grace, srv);
	srv->accept_retry_ev = evtimer_new(base, nbd_server_on_accept_retry, srv);
	srv->budget_tail = &srv->budget_head;
	srv->budget_ev = event_new(base, -1, 0, nbd_server_on_budget, srv);
	if (!srv->export_name || (opts->description && !srv->description) ||
	    !srv->shutdown_ev || !srv->grace_ev || !srv->accept_retry_ev || !srv->budget_ev) {
		nbd_server_free(srv);
		return -ENOMEM;
	}
	if (strlen(srv->export_name) > NBD_MAX_STRING) {
		log_msg(LOG_LVL_ERR, "nbd: export name longer than %d bytes", NBD_MAX_STRING);
		nbd_server_free(srv);
		return -ENAMETOOLONG;
	}
	r = nbd_server_setup_tls(srv, &opts->tls);
	if (r < 0) {
		nbd_server_free(srv);
		return r;
	}
	*out = srv;
	return 0;
}

bool nbd_server_warn_ok(struct nbd_server *srv)
{
	return log_ratelimit_ok(&srv->warn_rl);
}

/* The export as the handshake describes it, from the driver's answers. */
void nbd_server_export(struct nbd_server *srv, struct nbd_export *exp)
{
	const struct vbd_info *info = vbd_info(srv->vbd);
	uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_CACHE;
	uint32_t pref = 4096;

	if (info->read_only)
		f |= NBD_FLAG_READ_ONLY;
	if (info->can_flush)
		f |= NBD_FLAG_SEND_FLUSH;
	if (info->can_fua)
		f |= NBD_FLAG_SEND_FUA;
	if (info->is_rotational)
		f |= NBD_FLAG_ROTATIONAL;
	if (info->can_trim && !info->read_only)
		f |= NBD_FLAG_SEND_TRIM;
	/* FAST_ZERO may be advertised by any server that zeroes: the driver
	 * answers ENOTSUP at once when it cannot be fast. */
	if (info->can_zero && !info->read_only)
		f |= NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;

	/* Preferred: a power of two, at least 4096 and the physical block. */
	while (pref < info->physical_block && pref < (1u << 24))
		pref <<= 1;

	exp->name = srv->export_name;
	exp->description = srv->description;
	exp->size = info->size;
	exp->tflags = f;
	/* Drivers take any alignment (read-modify-write where needed). */
	exp->min_block = 1;
	exp->pref_block = pref;
	exp->max_block = VBD_MAX_PAYLOAD;
}

static void nbd_server_peer_name(const struct sockaddr_storage *ss, socklen_t len, char *buf,
		      size_t size)
{
	char host[INET6_ADDRSTRLEN];

	switch (ss->ss_family) {
	case AF_INET: {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
		break;
	}
	default:
		snprintf(buf, size, "unix");
		break;
	}
}

void nbd_server_accept(struct nbd_server *srv, int lfd)
{
	for (int i = 0; i < NBD_ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		struct nbd_conn *c;
		char peer[80];
		int fd, one = 1, sockbuf = NBD_SOCKET_BUFFER;

		fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* Out of descriptors: the listener would stay readable
			 * and spin, so pause accepting for a moment. */
			if (nbd_server_warn_ok(srv))
				log_errno(LOG_LVL_WARN, errno, "nbd: accept");
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				struct timeval tv = { 0, NBD_ACCEPT_PAUSE_MS * 1000 };

				nbd_listeners_enable(srv, false);
				event_add(srv->accept_retry_ev, &tv);
			}
			return;
		}
		if (srv->shutting_down) {
			close(fd);
			continue;
		}
		/* The caps: room is made by dropping an idle handshake, or
		 * the new one is closed (no handshake, no memory). */
		char key[64];

		nbd_peer_key(fd, &ss, key, sizeof(key));
		if (!nbd_server_admit(srv, key)) {
			close(fd);
			continue;
		}
		if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* Room for several 32 MiB-class replies and payloads in the
		 * kernel: fewer partial sends and wake-ups for large I/O.
		 * Best effort; the kernel caps it at [wr]mem_max. */
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sockbuf, sizeof(sockbuf));
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sockbuf, sizeof(sockbuf));
		nbd_server_peer_name(&ss, len, peer, sizeof(peer));
		if (nbd_conn_new(srv, fd, peer, &c) < 0) {
			log_msg(LOG_LVL_WARN, "nbd: out of memory for a connection");
			close(fd);
			continue;
		}
		snprintf(c->peer_key, sizeof(c->peer_key), "%s", key);
		c->next = srv->conns;
		if (srv->conns)
			srv->conns->prev = c;
		srv->conns = c;
		srv->nr_conns++;
	}
}

void nbd_server_conn_gone(struct nbd_server *srv, struct nbd_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	srv->nr_conns--;
	if (srv->shutting_down && srv->nr_conns == 0)
		event_active(srv->shutdown_ev, EV_TIMEOUT, 0);
}

static int nbd_server_add_listener(struct nbd_server *srv, struct nbd_listener *l)
{
	struct nbd_listener **v = realloc(srv->listeners,
					  (srv->nr_listeners + 1) * sizeof(*v));

	if (!v) {
		nbd_listener_close(l);
		return -ENOMEM;
	}
	v[srv->nr_listeners++] = l;
	srv->listeners = v;
	return 0;
}

int nbd_server_listen(struct nbd_server *srv, const char *addr)
{
	struct nbd_listener *l;
	int r;

	if (srv->shutting_down)
		return -ESHUTDOWN;
	r = nbd_listener_open(srv, addr, &l);
	if (r < 0)
		return r;
	return nbd_server_add_listener(srv, l);
}

int nbd_server_listen_fd(struct nbd_server *srv, int fd, const char *label)
{
	struct nbd_listener *l;
	int r;

	if (srv->shutting_down)
		return -ESHUTDOWN;
	r = nbd_listener_adopt(srv, fd, label, &l);
	if (r < 0)
		return r;
	return nbd_server_add_listener(srv, l);
}

unsigned nbd_server_nr_listeners(const struct nbd_server *srv)
{
	return srv->nr_listeners;
}

const char *nbd_server_listener(const struct nbd_server *srv, unsigned i)
{
	return i < srv->nr_listeners ? srv->listeners[i]->label : NULL;
}

/* Every open connection, in the handshake or not. */
unsigned nbd_server_nr_connections(const struct nbd_server *srv)
{
	return srv->nr_conns;
}

static const char *nbd_server_conn_state(const struct nbd_conn *c)
{
	if (nbd_tls_handshaking(c))
		return "tls-handshake";
	switch (c->state) {
	case NBD_CONN_HANDSHAKE:	return "handshake";
	case NBD_CONN_TRANSMISSION:	return "transmission";
	case NBD_CONN_CLOSING:		return "closing";
	case NBD_CONN_DEAD:		return "closed";
	}
	return "?";
}

unsigned nbd_server_connections(const struct nbd_server *srv, struct nbd_conn_info *out,
				unsigned max)
{
	unsigned n = 0;

	for (const struct nbd_conn *c = srv->conns; c && n < max; c = c->next, n++) {
		struct nbd_conn_info *i = &out[n];

		memset(i, 0, sizeof(*i));
		i->id = c->id;
		snprintf(i->peer, sizeof(i->peer), "%s", c->peer);
		i->state = nbd_server_conn_state(c);
		nbd_tls_conn_info(c, i);
	}
	return n;
}

static void nbd_server_close_listeners(struct nbd_server *srv)
{
	for (unsigned i = 0; i < srv->nr_listeners; i++)
		nbd_listener_close(srv->listeners[i]);
	free(srv->listeners);
	srv->listeners = NULL;
	srv->nr_listeners = 0;
}

void nbd_server_shutdown(struct nbd_server *srv, void (*cb)(void *arg), void *arg)
{
	struct timeval tv = { .tv_sec = NBD_SHUTDOWN_GRACE_S };
	struct nbd_conn *c, *next;

	srv->shutdown_cb = cb;
	srv->shutdown_arg = arg;
	if (srv->shutting_down) {
		if (srv->nr_conns == 0)
			event_active(srv->shutdown_ev, EV_TIMEOUT, 0);
		return;
	}
	srv->shutting_down = true;
	log_msg(LOG_LVL_INFO, "nbd: shutting down (%u connections)", srv->nr_conns);
	event_del(srv->accept_retry_ev);
	nbd_server_close_listeners(srv);
	/* nbd_conn_shutdown may free c (and unlink it): walk with next. */
	for (c = srv->conns; c; c = next) {
		next = c->next;
		nbd_conn_shutdown(c);
	}
	if (srv->nr_conns == 0)
		event_active(srv->shutdown_ev, EV_TIMEOUT, 0);
	else
		event_add(srv->grace_ev, &tv);
}

void nbd_server_free(struct nbd_server *srv)
{
	if (!srv)
		return;
	nbd_server_close_listeners(srv);
	while (srv->conns) {
		struct nbd_conn *c = srv->conns;

		/* Unlinked here: a connection with requests in flight
		 * lives on without the server until they return. */
		srv->conns = c->next;
		if (srv->conns)
			srv->conns->prev = NULL;
		c->prev = c->next = NULL;
		srv->nr_conns--;
		nbd_conn_detach(c);
	}
	if (srv->shutdown_ev)
		event_free(srv->shutdown_ev);
	if (srv->grace_ev)
		event_free(srv->grace_ev);
	if (srv->accept_retry_ev)
		event_free(srv->accept_retry_ev);
	if (srv->budget_ev)
		event_free(srv->budget_ev);
	nbd_tls_creds_put(srv->tls_creds);
	free(srv->tls_certificates);
	free(srv->tls_psk_file);
	free(srv->export_name);
	free(srv->description);
	free(srv);
}
