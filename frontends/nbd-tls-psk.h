/* Pre-shared keys for TLS-PSK: the file psktool writes, one
 * "username:hexkey" line per identity.  The parser is pure (bytes in, a
 * table out, one message on failure) so the unit tests can feed it
 * anything. */
#ifndef VD_NBD_TLS_PSK_H
#define VD_NBD_TLS_PSK_H

#include <stddef.h>
#include <stdint.h>

enum {
	NBD_PSK_MAX_FILE = 1024 * 1024,	/* bigger: not a key file */
	NBD_PSK_MAX_LINE = 1024,	/* bytes in a line, without the newline */
	NBD_PSK_MAX_IDENTITY = 255,	/* TLS allows 2^16-1; nobody needs it */
	NBD_PSK_MAX_KEY = 256,		/* bytes (psktool makes 32 by default) */
	NBD_PSK_MAX_ENTRIES = 4096,
};

struct nbd_psk_entry {
	char *identity;
	uint8_t *key;
	size_t key_len;
};

struct nbd_psk_table {
	struct nbd_psk_entry *v;
	unsigned n;
};

/* Parses len bytes; file names the source in messages ("FILE:LINE: ...").
 * Blank lines and lines starting with '#' are skipped; a carriage return
 * before the newline is allowed.  A file with no key, a malformed line, a
 * duplicate identity are errors.  Returns 0, -EINVAL or -ENOMEM. */
int nbd_psk_parse(const char *buf, size_t len, const char *file, struct nbd_psk_table *t,
		  char *err, size_t errlen);
/* Reads and parses a file (at most NBD_PSK_MAX_FILE bytes). */
int nbd_psk_load(const char *path, struct nbd_psk_table *t, char *err, size_t errlen);
const struct nbd_psk_entry *nbd_psk_find(const struct nbd_psk_table *t, const char *identity);
/* Wipes the keys and frees the table. */
void nbd_psk_free(struct nbd_psk_table *t);

#endif
