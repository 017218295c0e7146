/* Parsing listen addresses: "unix:PATH", "tcp:HOST:PORT", "tcp:[V6]:PORT",
 * "tcp::PORT" (every address).  Kept apart from the sockets so it can be
 * tested alone. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"

int vd_addr_parse(const char *addr, struct vd_addr *out)
{
	const char *hp, *colon;
	size_t hlen;

	memset(out, 0, sizeof(*out));
	if (strncmp(addr, "unix:", 5) == 0) {
		const char *path = addr + 5;

		if (!*path)
			return -EINVAL;
		if (strlen(path) >= sizeof(out->path))
			return -ENAMETOOLONG;
		out->is_unix = true;
		strcpy(out->path, path);
		return 0;
	}
	if (strncmp(addr, "tcp:", 4) != 0)
		return -EINVAL;

	hp = addr + 4;
	colon = strrchr(hp, ':');
	if (!colon)
		return -EINVAL;
	hlen = (size_t)(colon - hp);
	if (hlen && hp[0] == '[') {
		if (hlen < 2 || hp[hlen - 1] != ']')
			return -EINVAL;
		hp++;
		hlen -= 2;
	} else if (memchr(hp, ':', hlen)) {
		return -EINVAL;		/* a bare IPv6 address needs brackets */
	}
	if (hlen >= sizeof(out->host))
		return -ENAMETOOLONG;
	memcpy(out->host, hp, hlen);
	out->host[hlen] = '\0';

	/* The port: 0..65535, digits only. */
	colon++;
	if (!*colon || strlen(colon) > 5 || strspn(colon, "0123456789") != strlen(colon) ||
	    atoi(colon) > 65535)
		return -EINVAL;
	strcpy(out->port, colon);
	return 0;
}
