/* systemd's notification protocol without libsystemd: one datagram to
 * $NOTIFY_SOCKET ("@name" is an abstract address). */
#ifndef VD_SD_NOTIFY_H
#define VD_SD_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Returns 1 when sent, 0 when not under systemd, or a negative errno. */
int sd_notify_send(const char *msg);
/* The same with a printf format ("STATUS=%s"). */
int sd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* True when $NOTIFY_SOCKET is set: there is someone to tell. */
bool sd_notify_enabled(void);

/* The watchdog interval systemd asks for: $WATCHDOG_USEC, when
 * $WATCHDOG_PID is unset or names this process.  0: no watchdog. */
uint64_t sd_watchdog_usec(void);

#endif
