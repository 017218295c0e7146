/* The NBD frontend: listeners, handshake and transmission for one vbd. */
#ifndef VD_NBD_H
#define VD_NBD_H

#include <stdbool.h>

struct event_base;
struct vbd;
struct nbd_server;

struct nbd_server_opts {
	const char *export_name;	/* the disk name */
	const char *description;	/* NBD_INFO_DESCRIPTION; may be NULL */
	unsigned max_connections;	/* 0: default 128 */
	unsigned max_peer_connections;	/* 0: max_connections */
	unsigned handshake_timeout_s;	/* 0: default 10 */
};

int nbd_server_create(struct event_base *base, struct vbd *vbd,
		      const struct nbd_server_opts *opts, struct nbd_server **out);

/* addr: "unix:PATH" or "tcp:HOST:PORT" (HOST may be [v6]).  Binds and
 * listens; a unix path left by a dead process is replaced. */
int nbd_server_listen(struct nbd_server *srv, const char *addr);
/* Serves an already listening socket (socket activation). */
int nbd_server_listen_fd(struct nbd_server *srv, int fd, const char *label);

/* Listen addresses, for info: count and the i-th one. */
unsigned nbd_server_nr_listeners(const struct nbd_server *srv);
const char *nbd_server_listener(const struct nbd_server *srv, unsigned i);
unsigned nbd_server_nr_connections(const struct nbd_server *srv);

/* Shutdown: stop accepting; let connections finish what is in flight and
 * close them; cb(arg) from the loop when none is left. */
void nbd_server_shutdown(struct nbd_server *srv, void (*cb)(void *arg), void *arg);
/* Frees everything (connections are closed at once). */
void nbd_server_free(struct nbd_server *srv);

#endif
