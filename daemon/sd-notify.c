/* sd_notify, written directly (nbdkit and OpenBSD-style daemons do too). */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/sd-notify.h"

int sd_notify_send(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len;
	int fd, r;

	if (!path || !*path)
		return 0;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sun.sun_path))
		return -EINVAL;
	memcpy(sun.sun_path, path, len);
	if (path[0] == '@')
		sun.sun_path[0] = 0;	/* abstract namespace */

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = (int)sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun,
			(socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	r = r < 0 ? -errno : 1;
	close(fd);
	return r;
}

int sd_notifyf(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	if (!sd_notify_enabled())
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	return sd_notify_send(msg);	/* a long STATUS= is cut, not lost */
}

bool sd_notify_enabled(void)
{
	const char *path = getenv("NOTIFY_SOCKET");

	return path && *path;
}

/* Digits only: sd_watchdog_enabled(3) rejects anything else as well. */
static bool sd_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	const char *p;

	if (!s)
		return false;
	for (p = s; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (p == s || *p)
		return false;
	*out = v;
	return true;
}

uint64_t sd_watchdog_usec(void)
{
	uint64_t usec, pid;
	const char *pid_s = getenv("WATCHDOG_PID");

	if (!sd_parse_u64(getenv("WATCHDOG_USEC"), &usec) || usec == 0)
		return 0;
	/* Set for another process (we were started by a helper that kept
	 * the environment): the watchdog is not ours to feed. */
	if (pid_s && *pid_s &&
	    (!sd_parse_u64(pid_s, &pid) || pid != (uint64_t)getpid()))
		return 0;
	return usec;
}
