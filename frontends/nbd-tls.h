/* TLS for the NBD frontend (GnuTLS).  Internal to frontends/.
 *
 *   nbd-tls-creds.c  credentials: X.509 from a directory, PSK from a file;
 *                    reference counted, so a reload leaves established
 *                    connections with the ones they started with
 *   nbd-tls.c        one connection's session: the handshake on the event
 *                    loop, and the TLS transport (recv/send) that replaces
 *                    the socket's after STARTTLS */
#ifndef VD_NBD_TLS_H
#define VD_NBD_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <gnutls/gnutls.h>

#include "frontends/nbd.h"

struct nbd_conn;
struct nbd_conn_info;
struct nbd_tls_creds;

/* Loads what cfg names; err says what is wrong (file and reason). */
int nbd_tls_creds_load(const struct nbd_tls_config *cfg, struct nbd_tls_creds **out,
		       char *err, size_t errlen);
struct nbd_tls_creds *nbd_tls_creds_get(struct nbd_tls_creds *cr);
void nbd_tls_creds_put(struct nbd_tls_creds *cr);
/* "x509", "psk" or "x509+psk", for the log. */
const char *nbd_tls_creds_kind(const struct nbd_tls_creds *cr);
/* Sets a new session up with these credentials (priorities, what to ask
 * of the client).  Returns 0 or a GnuTLS error. */
int nbd_tls_creds_apply(struct nbd_tls_creds *cr, gnutls_session_t s);
bool nbd_tls_creds_verify_peer(const struct nbd_tls_creds *cr);

/* The STARTTLS reply has gone out in clear text: make a session with
 * the server's current credentials, switch the connection to the TLS
 * transport and start the handshake.  Kills the connection on failure. */
void nbd_tls_start(struct nbd_conn *c);
/* Drives the handshake on a read or write event. */
void nbd_tls_handshake_step(struct nbd_conn *c);
bool nbd_tls_handshaking(const struct nbd_conn *c);
/* Ends the session: close_notify when graceful, then frees it. */
void nbd_tls_end(struct nbd_conn *c, bool graceful);
void nbd_tls_conn_info(const struct nbd_conn *c, struct nbd_conn_info *out);

#endif
