/* Socket activation without libsystemd: the listening sockets systemd
 * passes as fds 3.. with $LISTEN_PID, $LISTEN_FDS and $LISTEN_FDNAMES
 * (sd_listen_fds(3) describes the protocol). */
#ifndef VD_SOCKET_ACTIVATION_H
#define VD_SOCKET_ACTIVATION_H

enum {
	SA_FIRST_FD = 3,	/* SD_LISTEN_FDS_START */
	SA_MAX_FDS = 16,	/* more is a broken unit, not a busy disk */
	SA_LABEL_LEN = 160,
	SA_NAME_LEN = 256,	/* systemd caps FileDescriptorName= at 255 */
};

struct sa_listener {
	int fd;
	char label[SA_LABEL_LEN];	/* "unix:/run/vdiskd/d.nbd", "tcp:[::1]:10809" */
	char name[SA_NAME_LEN];		/* from $LISTEN_FDNAMES; "" without */
};

/* Takes the sockets passed to this process: checks that each one is a
 * listening stream socket, sets FD_CLOEXEC and unsets the three variables
 * so nothing we start inherits them.  Returns how many (0 when none were
 * passed or $LISTEN_PID names another process), or a negative errno after
 * logging why (the daemon then exits: a unit that passes bad sockets
 * should fail loudly). */
int sa_listen_fds(struct sa_listener *out, unsigned max);

#endif
