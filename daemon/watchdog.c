/* WATCHDOG=1 from the main loop.  The timer is an ordinary libevent
 * event on purpose: it runs only when the loop does, which is exactly
 * what systemd's watchdog should be measuring. */
#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/log.h"
#include "daemon/sd-notify.h"
#include "daemon/watchdog.h"

struct sd_watchdog {
	struct event *timer;
	uint64_t usec;
	unsigned failures;
};

static void sd_watchdog_ping(int fd, short what, void *arg)
{
	struct sd_watchdog *wd = arg;
	int r = sd_notify_send("WATCHDOG=1");

	/* Say it once: a lost notify socket would otherwise repeat this
	 * every few seconds until systemd kills us anyway. */
	if (r < 0 && wd->failures++ == 0)
		log_errno(LOG_LVL_WARN, r, "cannot send WATCHDOG=1 to systemd");
	if (r >= 0)
		wd->failures = 0;
}

int sd_watchdog_start(struct event_base *base, struct sd_watchdog **out)
{
	uint64_t usec = sd_watchdog_usec(), half;
	struct sd_watchdog *wd;
	struct timeval tv;

	*out = NULL;
	if (!usec || !sd_notify_enabled())
		return 0;
	wd = calloc(1, sizeof(*wd));
	if (!wd)
		return -ENOMEM;
	wd->usec = usec;
	/* Half the interval, as sd_watchdog_enabled(3) advises, so one late
	 * tick does not cost the service; never a busy loop. */
	half = usec / 2 < 1000 ? 1000 : usec / 2;
	tv.tv_sec = (time_t)(half / 1000000);
	tv.tv_usec = (suseconds_t)(half % 1000000);
	wd->timer = event_new(base, -1, EV_PERSIST, sd_watchdog_ping, wd);
	if (!wd->timer || event_add(wd->timer, &tv) < 0) {
		sd_watchdog_free(wd);
		return -ENOMEM;
	}
	log_msg(LOG_LVL_DEBUG, "watchdog: WATCHDOG=1 every %llu ms",
		(unsigned long long)half / 1000);
	*out = wd;
	return 0;
}

void sd_watchdog_free(struct sd_watchdog *wd)
{
	if (!wd)
		return;
	if (wd->timer)
		event_free(wd->timer);
	free(wd);
}
