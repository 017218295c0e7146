/* systemd's notification protocol without libsystemd: one datagram to
 * $NOTIFY_SOCKET ("@name" is an abstract address). */
#ifndef VD_SD_NOTIFY_H
#define VD_SD_NOTIFY_H

/* Returns 1 when sent, 0 when not under systemd, or a negative errno. */
int sd_notify_send(const char *msg);

#endif
