/* TLS credentials: X.509 (the directory layout of qemu and nbdkit) and
 * pre-shared keys.  Every check that can fail does so here, at start-up
 * or reload, with the file and the reason; a session only borrows them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "common/log.h"
#include "frontends/nbd-tls-psk.h"
#include "frontends/nbd-tls.h"

struct nbd_tls_creds {
	unsigned refs;
	gnutls_certificate_credentials_t x509;	/* NULL: none */
	gnutls_psk_server_credentials_t psk;	/* NULL: none */
	struct nbd_psk_table psk_table;
	bool verify_peer;
};

struct nbd_tls_creds *nbd_tls_creds_get(struct nbd_tls_creds *cr)
{
	cr->refs++;
	return cr;
}

void nbd_tls_creds_put(struct nbd_tls_creds *cr)
{
	if (!cr || --cr->refs)
		return;
	if (cr->x509)
		gnutls_certificate_free_credentials(cr->x509);
	if (cr->psk)
		gnutls_psk_free_server_credentials(cr->psk);
	nbd_psk_free(&cr->psk_table);
	free(cr);
}

const char *nbd_tls_creds_kind(const struct nbd_tls_creds *cr)
{
	if (cr->x509 && cr->psk)
		return "x509+psk";
	return cr->x509 ? "x509" : "psk";
}

/* GnuTLS asks for the key of the identity a client names.  The session's
 * pointer is the credentials it was made with. */
static int nbd_tls_psk_lookup(gnutls_session_t s, const char *username, gnutls_datum_t *key)
{
	const struct nbd_tls_creds *cr = gnutls_session_get_ptr(s);
	const struct nbd_psk_entry *e = cr ? nbd_psk_find(&cr->psk_table, username) : NULL;

	if (!e)
		return -1;
	key->data = gnutls_malloc(e->key_len);
	if (!key->data)
		return -1;
	memcpy(key->data, e->key, e->key_len);
	key->size = (unsigned)e->key_len;
	return 0;
}

/* path = dir/name; 1 when it is there, 0 when not, < 0 on other errors. */
static int nbd_tls_file(const char *dir, const char *name, char *path, size_t size,
			char *err, size_t errlen)
{
	if (snprintf(path, size, "%s/%s", dir, name) >= (int)size) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	if (access(path, R_OK) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
	return -errno;
}

static int nbd_tls_need(const char *dir, const char *name, char *path, size_t size,
			char *err, size_t errlen)
{
	int r = nbd_tls_file(dir, name, path, size, err, errlen);

	if (r == 0) {
		snprintf(err, errlen, "%s: no such file (the directory needs ca-cert.pem, "
			 "server-cert.pem and server-key.pem)", path);
		return -ENOENT;
	}
	return r < 0 ? r : 0;
}

static int nbd_tls_load_x509(struct nbd_tls_creds *cr, const char *dir, char *err,
			     size_t errlen)
{
	char cert[4096], key[4096], ca[4096], crl[4096];
	struct stat st;
	int r;

	if (stat(dir, &st) < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", dir);
		return -ENOTDIR;
	}
	if ((r = nbd_tls_need(dir, "server-cert.pem", cert, sizeof(cert), err, errlen)) < 0 ||
	    (r = nbd_tls_need(dir, "server-key.pem", key, sizeof(key), err, errlen)) < 0)
		return r;
	if (gnutls_certificate_allocate_credentials(&cr->x509) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = nbd_tls_file(dir, "ca-cert.pem", ca, sizeof(ca), err, errlen);
	if (r < 0)
		return r;
	if (r == 0 && cr->verify_peer) {
		snprintf(err, errlen, "%s: no such file (--tls-verify-peer checks client "
			 "certificates against it)", ca);
		return -ENOENT;
	}
	if (r == 1) {
		r = gnutls_certificate_set_x509_trust_file(cr->x509, ca, GNUTLS_X509_FMT_PEM);
		if (r <= 0) {
			snprintf(err, errlen, "%s: %s", ca, r == 0 ? "no certificate in it" :
				 gnutls_strerror(r));
			return -EINVAL;
		}
	}
	r = nbd_tls_file(dir, "ca-crl.pem", crl, sizeof(crl), err, errlen);
	if (r < 0)
		return r;
	if (r == 1) {
		r = gnutls_certificate_set_x509_crl_file(cr->x509, crl, GNUTLS_X509_FMT_PEM);
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", crl, gnutls_strerror(r));
			return -EINVAL;
		}
	}
	/* GnuTLS checks that the key belongs to the certificate. */
	r = gnutls_certificate_set_x509_key_file(cr->x509, cert, key, GNUTLS_X509_FMT_PEM);
	if (r < 0) {
		snprintf(err, errlen, "%s, %s: %s", cert, key, gnutls_strerror(r));
		return -EINVAL;
	}
	gnutls_certificate_set_known_dh_params(cr->x509, GNUTLS_SEC_PARAM_MEDIUM);
	return 0;
}

static int nbd_tls_load_psk(struct nbd_tls_creds *cr, const char *file, char *err,
			    size_t errlen)
{
	int r = nbd_psk_load(file, &cr->psk_table, err, errlen);

	if (r < 0)
		return r;
	if (gnutls_psk_allocate_server_credentials(&cr->psk) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	gnutls_psk_set_server_credentials_function(cr->psk, nbd_tls_psk_lookup);
	gnutls_psk_set_server_known_dh_params(cr->psk, GNUTLS_SEC_PARAM_MEDIUM);
	return 0;
}

int nbd_tls_creds_load(const struct nbd_tls_config *cfg, struct nbd_tls_creds **out,
		       char *err, size_t errlen)
{
	struct nbd_tls_creds *cr;
	int r = 0;

	*out = NULL;
	if (!cfg->certificates && !cfg->psk_file) {
		snprintf(err, errlen, "TLS needs --tls-certificates DIR or --tls-psk FILE");
		return -EINVAL;
	}
	cr = calloc(1, sizeof(*cr));
	if (!cr) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	cr->refs = 1;
	cr->verify_peer = cfg->verify_peer;
	if (cfg->certificates)
		r = nbd_tls_load_x509(cr, cfg->certificates, err, errlen);
	if (r == 0 && cfg->psk_file)
		r = nbd_tls_load_psk(cr, cfg->psk_file, err, errlen);
	if (r < 0) {
		nbd_tls_creds_put(cr);
		return r;
	}
	*out = cr;
	return 0;
}

/* The system's default priorities, with the server's cipher order
 * preferred and AES-128-GCM first: the same ciphers as GnuTLS's NORMAL,
 * only reordered.  AES-128-GCM is TLS 1.3's mandatory suite (128-bit
 * security, first in Mozilla's and NIST SP 800-52r2's lists) and costs
 * 10 AES rounds a block where AES-256 costs 14: on a 2-core machine
 * where client and server both en- and decrypt, that is bandwidth (see
 * docs/architecture.md, TLS).  A client that offers only AES-256-GCM
 * or ChaCha20 still gets it. */
#define NBD_TLS_ORDER "%SERVER_PRECEDENCE:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:" \
	"+CHACHA20-POLY1305:+AES-128-CCM:+AES-256-CCM:+AES-128-CBC:+AES-256-CBC"

int nbd_tls_creds_apply(struct nbd_tls_creds *cr, gnutls_session_t s)
{
	int r;

	gnutls_session_set_ptr(s, cr);
	if (cr->psk)
		r = gnutls_set_default_priority_append(s, NBD_TLS_ORDER
						       ":+ECDHE-PSK:+DHE-PSK:+PSK", NULL, 0);
	else
		r = gnutls_set_default_priority_append(s, NBD_TLS_ORDER, NULL, 0);
	if (r < 0)
		return r;
	if (cr->x509) {
		r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cr->x509);
		if (r < 0)
			return r;
		if (cr->verify_peer) {
			gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
			/* Checked inside the handshake: the client hears why. */
			gnutls_session_set_verify_cert(s, NULL, 0);
		} else {
			gnutls_certificate_server_set_request(s, GNUTLS_CERT_IGNORE);
		}
	}
	if (cr->psk) {
		r = gnutls_credentials_set(s, GNUTLS_CRD_PSK, cr->psk);
		if (r < 0)
			return r;
	}
	return 0;
}

bool nbd_tls_creds_verify_peer(const struct nbd_tls_creds *cr)
{
	return cr->verify_peer;
}
