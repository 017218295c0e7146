/* The control socket server inside the daemon. */
#ifndef VD_CTL_H
#define VD_CTL_H

struct event_base;
struct vbd;
struct ctl_server;

/* What the control server needs from the daemon beyond the vbd.  The
 * server keeps a copy; the strings must outlive it. */
struct ctl_daemon {
	struct vbd *vbd;
	const char *const *listen;	/* the frontends' addresses, for info */
	unsigned nr_listen;
	void (*shutdown)(void *arg);	/* same as SIGTERM */
	void *arg;
};

/* Creates the socket at path (mode 0600, atomically; a stale socket is
 * replaced, a live one is -EADDRINUSE) and serves it. */
int ctl_server_create(struct event_base *base, const char *path,
		      const struct ctl_daemon *d, struct ctl_server **out);
void ctl_server_free(struct ctl_server *srv);	/* unlinks the socket */

#endif
