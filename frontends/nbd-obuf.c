/* The handshake's output buffer.  Handshake replies are small and few
 * (options are capped), so a plain growable array is enough. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/nbd-handshake.h"

uint8_t *nbd_obuf_append(struct nbd_obuf *b, size_t n)
{
	/* Reclaim what was sent before growing. */
	if (b->off && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *p;

		while (cap < b->len + n)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return NULL;
		b->data = p;
		b->cap = cap;
	}
	b->len += n;
	return b->data + b->len - n;
}

int nbd_obuf_put(struct nbd_obuf *b, const void *p, size_t n)
{
	uint8_t *d = nbd_obuf_append(b, n);

	if (!d)
		return -ENOMEM;
	if (n)
		memcpy(d, p, n);
	return 0;
}

void nbd_obuf_consume(struct nbd_obuf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

void nbd_obuf_free(struct nbd_obuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}
