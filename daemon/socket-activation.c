/* Socket activation: take the listening sockets systemd passed us.
 * Written without libsystemd, after the protocol in sd_listen_fds(3). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/socket-activation.h"

/* Digits only, no sign, no blanks: these come from a unit, and a typo
 * there should not turn into a plausible number. */
static int sa_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	const char *p;

	for (p = s; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > max)
			return -ERANGE;
	}
	if (p == s || *p)
		return -EINVAL;
	*out = v;
	return 0;
}

/* "unix:PATH", "unix:@ABSTRACT", "tcp:HOST:PORT" or "fd:N" for a socket. */
static void sa_socket_label(int fd, char *buf, unsigned len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		goto fd;
	switch (ss.ss_family) {
	case AF_UNIX: {
		const struct sockaddr_un *sun = (const struct sockaddr_un *)&ss;
		size_t n = sl > offsetof(struct sockaddr_un, sun_path) ?
			   sl - offsetof(struct sockaddr_un, sun_path) : 0;
		if (n == 0)
			goto fd;
		if (sun->sun_path[0] == 0)	/* abstract: shown as "@name" */
			snprintf(buf, len, "unix:@%.*s", (int)(n - 1), sun->sun_path + 1);
		else
			snprintf(buf, len, "unix:%.*s", (int)strnlen(sun->sun_path, n),
				 sun->sun_path);
		return;
	}
	case AF_INET: {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
		if (!inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host)))
			goto fd;
		snprintf(buf, len, "tcp:%s:%u", host, ntohs(sin->sin_port));
		return;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
		if (!inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host)))
			goto fd;
		snprintf(buf, len, "tcp:[%s]:%u", host, ntohs(sin6->sin6_port));
		return;
	}
	}
fd:
	snprintf(buf, len, "fd:%d", fd);
}

/* A passed fd must be a listening stream socket: a datagram socket or an
 * Accept=yes connection would only fail later, and less clearly. */
static int sa_check_fd(int fd)
{
	int type = 0, listening = 0, flags;
	socklen_t l = sizeof(type);

	flags = fcntl(fd, F_GETFD);
	if (flags < 0) {
		log_errno(LOG_LVL_ERR, errno, "socket activation: fd %d", fd);
		return -EBADF;
	}
	/* Nothing we might start should inherit the listeners. */
	if (fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
		log_errno(LOG_LVL_ERR, errno, "socket activation: fd %d: FD_CLOEXEC", fd);
		return -errno;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0) {
		log_errno(LOG_LVL_ERR, errno, "socket activation: fd %d is not a socket",
			  fd);
		return -ENOTSOCK;
	}
	l = sizeof(listening);
	if (type != SOCK_STREAM ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l) < 0 ||
	    !listening) {
		log_msg(LOG_LVL_ERR, "socket activation: fd %d is not a listening "
			"stream socket (ListenStream= with Accept=no)", fd);
		return -EINVAL;
	}
	return 0;
}

/* Names are optional; a count that does not match the fds is a systemd
 * we do not understand, so the names are dropped rather than misapplied. */
static void sa_names(struct sa_listener *out, unsigned n, const char *names)
{
	unsigned count = 1;

	if (!names || !*names)
		return;
	for (const char *p = names; *p; p++)
		count += *p == ':';
	if (count != n) {
		log_msg(LOG_LVL_WARN, "socket activation: LISTEN_FDNAMES has %u names "
			"for %u sockets; ignored", count, n);
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		size_t len = strcspn(names, ":");
		snprintf(out[i].name, sizeof(out[i].name), "%.*s", (int)len, names);
		names += len + (names[len] == ':');
	}
}

int sa_listen_fds(struct sa_listener *out, unsigned max)
{
	const char *pid_s = getenv("LISTEN_PID");
	const char *fds_s = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	unsigned long pid, n;
	int r = 0;

	if (!pid_s)
		return 0;
	if (sa_parse_uint(pid_s, (unsigned long)INT32_MAX, &pid) < 0) {
		log_msg(LOG_LVL_WARN, "socket activation: LISTEN_PID=%s is not a "
			"process id; ignored", pid_s);
		goto out;
	}
	if (pid != (unsigned long)getpid()) {
		/* Meant for a process that started us: the fds are not ours. */
		log_msg(LOG_LVL_INFO, "socket activation: LISTEN_PID=%lu is not us; "
			"ignored", pid);
		goto out;
	}
	if (!fds_s)
		goto out;
	if (sa_parse_uint(fds_s, max < SA_MAX_FDS ? max : SA_MAX_FDS, &n) < 0) {
		log_msg(LOG_LVL_ERR, "socket activation: LISTEN_FDS=%s is not a number "
			"from 0 to %u", fds_s, max < SA_MAX_FDS ? max : SA_MAX_FDS);
		r = -EINVAL;
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		out[i].fd = SA_FIRST_FD + (int)i;
		out[i].name[0] = 0;
		r = sa_check_fd(out[i].fd);
		if (r < 0)
			goto out;
		sa_socket_label(out[i].fd, out[i].label, sizeof(out[i].label));
	}
	sa_names(out, (unsigned)n, names);
	r = (int)n;
out:
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return r;
}
