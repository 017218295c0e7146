/* Listen addresses as operators write them: "unix:PATH", "tcp:HOST:PORT",
 * "tcp:[V6]:PORT", "tcp::PORT" (every address). */
#ifndef VD_ADDR_H
#define VD_ADDR_H

#include <stdbool.h>

struct vd_addr {
	bool is_unix;
	char path[108];			/* sizeof(sun_path) */
	char host[256];			/* empty: every address */
	char port[16];
};

/* 0, -EINVAL for a malformed address, -ENAMETOOLONG for one too long. */
int vd_addr_parse(const char *addr, struct vd_addr *out);

#endif
