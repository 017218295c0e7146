/* The service watchdog: WATCHDOG=1 to systemd from a timer on the main
 * loop, so a wedged loop stops the pings and systemd restarts us. */
#ifndef VD_WATCHDOG_H
#define VD_WATCHDOG_H

struct event_base;
struct sd_watchdog;

/* Starts the pings at half of $WATCHDOG_USEC (sd_watchdog_usec()).
 * *out is NULL when systemd asked for no watchdog.  Returns 0 or -ENOMEM. */
int sd_watchdog_start(struct event_base *base, struct sd_watchdog **out);
void sd_watchdog_free(struct sd_watchdog *wd);	/* NULL is fine */

#endif
