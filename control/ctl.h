/* The control socket server inside the daemon. */
#ifndef VD_CTL_H
#define VD_CTL_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct vbd;
struct ctl_server;

/* One frontend connection, as "connections" reports it. */
struct ctl_conn_info {
	unsigned id;
	char peer[80];
	const char *state;		/* a static string */
	bool tls;
	bool ktls;
	char tls_peer[256];		/* certificate DN or PSK identity */
	char tls_cipher[64];
};

/* What the control server needs from the daemon beyond the vbd.  The
 * server keeps a copy; the strings must outlive it. */
struct ctl_daemon {
	struct vbd *vbd;
	const char *const *listen;	/* the frontends' addresses, for info */
	unsigned nr_listen;
	void (*shutdown)(void *arg);	/* same as SIGTERM */
	void *arg;
	/* The frontend's TLS and connections (NULL: not offered). */
	const char *tls_mode;		/* "off", "on", "require" */
	/* Loads the TLS credentials again: 0, or a negative errno with a
	 * message in msg. */
	int (*reload_tls)(void *arg, char *msg, size_t msglen);
	/* Every connection in *out (malloc'd, the caller frees it); returns
	 * how many, or -ENOMEM. */
	int (*connections)(void *arg, struct ctl_conn_info **out);
};

/* Creates the socket at path (mode 0600, atomically; a stale socket is
 * replaced, a live one is -EADDRINUSE) and serves it. */
int ctl_server_create(struct event_base *base, const char *path,
		      const struct ctl_daemon *d, struct ctl_server **out);
void ctl_server_free(struct ctl_server *srv);	/* unlinks the socket */

#endif
