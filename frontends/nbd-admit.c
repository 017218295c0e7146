/* Admission under the connection caps.
 *
 * A flood of clients that connect and send nothing must not lock the
 * others out.  When the server's cap (or one peer's cap) is reached, the
 * oldest connection still in its handshake -- of that peer, for the
 * per-peer cap, and one that has sent nothing yet if there is one -- is
 * dropped to make room: a client that makes progress finishes its
 * handshake in milliseconds, an idle one never does.  An
 * established connection is never dropped for this; when every
 * connection in the way is established, the new one is refused.
 *
 * A peer is the uid on a unix socket (SO_PEERCRED) and the address on TCP. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "frontends/nbd-internal.h"

void nbd_peer_key(int fd, const struct sockaddr_storage *ss, char *key, size_t len)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		char b[INET_ADDRSTRLEN];

		snprintf(key, len, "ip:%s", inet_ntop(AF_INET, &a->sin_addr, b, sizeof(b)));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		char b[INET6_ADDRSTRLEN];

		snprintf(key, len, "ip:%s", inet_ntop(AF_INET6, &a->sin6_addr, b, sizeof(b)));
	} else {
		struct ucred cr;
		socklen_t cl = sizeof(cr);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
			snprintf(key, len, "uid:%u", (unsigned)cr.uid);
		else
			snprintf(key, len, "unix:?");
	}
}

/* The oldest connection in its handshake (of peer key, when given),
 * preferring one that has not sent a byte: a client at work answers the
 * greeting at once, so a fast flood does not evict it mid-handshake. */
static struct nbd_conn *nbd_admit_victim(struct nbd_server *srv, const char *key,
					 unsigned *peer_conns)
{
	struct nbd_conn *victim = NULL, *silent = NULL;

	*peer_conns = 0;
	/* New connections go to the head: the last match is the oldest. */
	for (struct nbd_conn *c = srv->conns; c; c = c->next) {
		bool mine = key && strcmp(c->peer_key, key) == 0;

		if (key && !mine)
			continue;
		if (c->state == NBD_CONN_DEAD)
			continue;
		if (mine)
			(*peer_conns)++;
		if (c->state == NBD_CONN_HANDSHAKE) {
			victim = c;
			if (!c->heard)
				silent = c;
		}
	}
	return silent ? silent : victim;
}

static void nbd_admit_evict(struct nbd_server *srv, struct nbd_conn *c, const char *why)
{
	if (nbd_server_warn_ok(srv))
		log_msg(LOG_LVL_WARN, "nbd: %s: dropping connection %u (%s), the oldest "
			"still in its handshake", why, c->id, c->peer);
	nbd_conn_kill(c, why);
	nbd_conn_check_done(c);	/* no I/O in a handshake: freed now */
}

bool nbd_server_admit(struct nbd_server *srv, const char *key)
{
	unsigned n;
	struct nbd_conn *v;

	if (srv->max_peer_connections < srv->max_connections) {
		v = nbd_admit_victim(srv, key, &n);
		if (n >= srv->max_peer_connections) {
			if (!v)
				goto refuse;
			nbd_admit_evict(srv, v, "per-peer connection limit");
		}
	}
	if (srv->nr_conns >= srv->max_connections) {
		v = nbd_admit_victim(srv, NULL, &n);
		if (!v)
			goto refuse;
		nbd_admit_evict(srv, v, "connection limit");
	}
	return true;
refuse:
	if (nbd_server_warn_ok(srv))
		log_msg(LOG_LVL_WARN, "nbd: connection limit reached (%u, %u per peer) with "
			"every connection established: refusing one from %s",
			srv->max_connections, srv->max_peer_connections, key);
	return false;
}
