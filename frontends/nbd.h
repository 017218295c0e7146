/* The NBD frontend: listeners, handshake and transmission for one vbd. */
#ifndef VD_NBD_H
#define VD_NBD_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct vbd;
struct nbd_server;

/* NBD_OPT_STARTTLS: off (refused), on (clear text or TLS), require. */
enum nbd_tls_mode {
	NBD_TLS_OFF,
	NBD_TLS_ON,
	NBD_TLS_REQUIRE,
};

/* Where the credentials are.  Loaded at nbd_server_create and again at
 * nbd_server_reload_tls; the strings are copied. */
struct nbd_tls_config {
	enum nbd_tls_mode mode;
	const char *certificates;	/* DIR with ca-cert.pem, server-cert.pem,
					 * server-key.pem[, ca-crl.pem]; or NULL */
	const char *psk_file;		/* username:hexkey lines; or NULL */
	bool verify_peer;		/* client certificates checked against the CA */
};

struct nbd_server_opts {
	const char *export_name;	/* the disk name */
	const char *description;	/* NBD_INFO_DESCRIPTION; may be NULL */
	unsigned max_connections;	/* 0: default 128 */
	unsigned max_peer_connections;	/* 0: max_connections */
	unsigned handshake_timeout_s;	/* 0: default 10; covers the TLS handshake */
	struct nbd_tls_config tls;
};

/* One connection, for the control socket's "connections". */
struct nbd_conn_info {
	unsigned id;
	char peer[80];			/* address, or "unix" */
	const char *state;		/* handshake, tls-handshake, transmission, closing */
	bool tls;			/* TLS established */
	bool ktls;			/* the kernel does the record layer */
	char tls_peer[256];		/* certificate DN or PSK identity; "" */
	char tls_cipher[64];		/* "TLS1.3/AES-256-GCM", or "" */
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
/* Fills up to max entries (handshaking ones too); returns how many. */
unsigned nbd_server_connections(const struct nbd_server *srv, struct nbd_conn_info *out,
				unsigned max);

/* "off", "on" or "require". */
const char *nbd_tls_mode_name(enum nbd_tls_mode mode);
enum nbd_tls_mode nbd_server_tls_mode(const struct nbd_server *srv);
/* Loads the credentials again from the same files: new connections get
 * them, established ones keep theirs.  On failure the old ones stay and
 * err says why.  Returns 0 or a negative errno (-ENOTSUP: TLS is off). */
int nbd_server_reload_tls(struct nbd_server *srv, char *err, size_t errlen);

/* Shutdown: stop accepting; let connections finish what is in flight and
 * close them; cb(arg) from the loop when none is left. */
void nbd_server_shutdown(struct nbd_server *srv, void (*cb)(void *arg), void *arg);
/* Frees everything (connections are closed at once). */
void nbd_server_free(struct nbd_server *srv);

#endif
