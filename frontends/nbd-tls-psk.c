/* The PSK file: "username:hexkey" lines, as psktool writes them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "frontends/nbd-tls-psk.h"

static int nbd_psk_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One line without its newline (and without a trailing CR). */
static int nbd_psk_line(struct nbd_psk_table *t, const char *p, size_t n, char *msg,
			size_t msglen)
{
	const char *colon = memchr(p, ':', n);
	size_t idlen, hexlen;
	struct nbd_psk_entry *v, *e;

	if (!colon) {
		snprintf(msg, msglen, "no ':' (lines are username:hexkey)");
		return -EINVAL;
	}
	idlen = (size_t)(colon - p);
	hexlen = n - idlen - 1;
	if (idlen == 0) {
		snprintf(msg, msglen, "empty username");
		return -EINVAL;
	}
	if (idlen > NBD_PSK_MAX_IDENTITY) {
		snprintf(msg, msglen, "username longer than %d bytes", NBD_PSK_MAX_IDENTITY);
		return -EINVAL;
	}
	for (size_t i = 0; i < idlen; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c < 0x20 || c == 0x7f) {
			snprintf(msg, msglen, "control character in the username");
			return -EINVAL;
		}
	}
	if (hexlen == 0) {
		snprintf(msg, msglen, "empty key");
		return -EINVAL;
	}
	if (hexlen % 2) {
		snprintf(msg, msglen, "key has an odd number of hex digits");
		return -EINVAL;
	}
	if (hexlen / 2 > NBD_PSK_MAX_KEY) {
		snprintf(msg, msglen, "key longer than %d bytes", NBD_PSK_MAX_KEY);
		return -EINVAL;
	}
	for (size_t i = 0; i < hexlen; i++) {
		if (nbd_psk_hex(colon[1 + i]) < 0) {
			snprintf(msg, msglen, "key is not hexadecimal (at column %zu)",
				 idlen + 2 + i);
			return -EINVAL;
		}
	}
	for (unsigned i = 0; i < t->n; i++) {
		if (strlen(t->v[i].identity) == idlen && memcmp(t->v[i].identity, p, idlen) == 0) {
			snprintf(msg, msglen, "username '%.*s' given twice", (int)idlen, p);
			return -EINVAL;
		}
	}
	if (t->n == NBD_PSK_MAX_ENTRIES) {
		snprintf(msg, msglen, "more than %d keys", NBD_PSK_MAX_ENTRIES);
		return -EINVAL;
	}
	v = realloc(t->v, (t->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	t->v = v;
	e = &v[t->n];
	e->identity = strndup(p, idlen);
	e->key = malloc(hexlen / 2);
	e->key_len = hexlen / 2;
	if (!e->identity || !e->key) {
		free(e->identity);
		free(e->key);
		return -ENOMEM;
	}
	for (size_t i = 0; i < e->key_len; i++)
		e->key[i] = (uint8_t)(nbd_psk_hex(colon[1 + 2 * i]) << 4 |
				      nbd_psk_hex(colon[2 + 2 * i]));
	t->n++;
	return 0;
}

int nbd_psk_parse(const char *buf, size_t len, const char *file, struct nbd_psk_table *t,
		  char *err, size_t errlen)
{
	const char *p = buf, *end = buf + len;
	unsigned lineno = 0;
	char msg[256];
	int r;

	memset(t, 0, sizeof(*t));
	if (len > NBD_PSK_MAX_FILE) {
		snprintf(err, errlen, "%s: larger than %d bytes: not a PSK file", file,
			 NBD_PSK_MAX_FILE);
		return -EINVAL;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);

		lineno++;
		if (n > NBD_PSK_MAX_LINE) {
			snprintf(err, errlen, "%s:%u: line longer than %d bytes", file, lineno,
				 NBD_PSK_MAX_LINE);
			r = -EINVAL;
			goto err;
		}
		if (n && p[n - 1] == '\r')
			n--;
		if (memchr(p, '\0', n)) {
			snprintf(err, errlen, "%s:%u: NUL byte (binary file?)", file, lineno);
			r = -EINVAL;
			goto err;
		}
		if (n && p[0] != '#') {
			r = nbd_psk_line(t, p, n, msg, sizeof(msg));
			if (r == -ENOMEM) {
				snprintf(err, errlen, "%s: out of memory", file);
				goto err;
			}
			if (r < 0) {
				snprintf(err, errlen, "%s:%u: %s", file, lineno, msg);
				goto err;
			}
		}
		p = nl ? nl + 1 : end;
	}
	if (t->n == 0) {
		snprintf(err, errlen, "%s: no username:hexkey line (make one with psktool)", file);
		return -EINVAL;
	}
	return 0;
err:
	nbd_psk_free(t);
	return r;
}

int nbd_psk_load(const char *path, struct nbd_psk_table *t, char *err, size_t errlen)
{
	size_t len = 0, cap = NBD_PSK_MAX_FILE + 1;
	char *buf;
	int fd, r;

	memset(t, 0, sizeof(*t));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-r));
		return r;
	}
	buf = malloc(cap);
	if (!buf) {
		close(fd);
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	r = vd_read_upto(fd, buf, cap, &len);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-r));
		goto out;
	}
	r = nbd_psk_parse(buf, len, path, t, err, errlen);
out:
	explicit_bzero(buf, len);
	free(buf);
	close(fd);
	return r;
}

const struct nbd_psk_entry *nbd_psk_find(const struct nbd_psk_table *t, const char *identity)
{
	for (unsigned i = 0; i < t->n; i++)
		if (strcmp(t->v[i].identity, identity) == 0)
			return &t->v[i];
	return NULL;
}

void nbd_psk_free(struct nbd_psk_table *t)
{
	for (unsigned i = 0; i < t->n; i++) {
		explicit_bzero(t->v[i].key, t->v[i].key_len);
		free(t->v[i].key);
		free(t->v[i].identity);
	}
	free(t->v);
	memset(t, 0, sizeof(*t));
}
