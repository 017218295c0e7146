/* Error messages for a caller's buffer: parsers and clients that do not
 * log (they run in tools, tests and the daemon alike) say what went wrong
 * in msg and return the error. */
#ifndef VD_ERRMSG_H
#define VD_ERRMSG_H

#include <stddef.h>

/* Formats into msg (when msg and msglen are set) and returns err. */
int vd_errmsg(char *msg, size_t msglen, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
