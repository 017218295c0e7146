/* See common/errmsg.h. */
#include <stdarg.h>
#include <stdio.h>

#include "common/errmsg.h"

int vd_errmsg(char *msg, size_t msglen, int err, const char *fmt, ...)
{
	va_list ap;

	if (msg && msglen) {
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return err;
}
