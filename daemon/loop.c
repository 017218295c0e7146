/* The main loop's poll window (--poll-us).
 *
 * An idle vCPU halts, and a wake-up sent to a halted vCPU waits for the
 * host to run it again: on the machines measured (docs/performance.md)
 * that is most of a QD1 round trip.  A loop that keeps polling for a
 * little while after work sees the next request without being woken.
 * The window opens only at queue depth 1 (see DAEMON_POLL_BATCH) and
 * closes poll_us after the last request arrived or finished, so an idle
 * daemon sleeps as without it. */
#include <stdint.h>

#include "common/clock.h"
#include "daemon/loop.h"

/* A turn that saw at most this much work (one request in, one out), with
 * at most one request left at the driver, is a client waiting on each
 * reply: the case polling is for.  Batches, or many requests at the
 * device, mean the loop is not woken per request, and spinning would
 * take the CPU the client needs. */
enum { DAEMON_POLL_BATCH = 2 };

static bool daemon_loop_done(struct event_base *base)
{
	return event_base_got_break(base) || event_base_got_exit(base);
}

void daemon_loop(struct event_base *base, const struct vbd *vbd, unsigned poll_us)
{
	uint64_t window = (uint64_t)poll_us * 1000, last_ns = 0, seen;
	bool one_at_a_time = false;

	if (!window) {
		event_base_dispatch(base);
		return;
	}
	seen = vbd_work(vbd);
	for (;;) {
		uint64_t now = vd_now_ns();
		uint64_t w = vbd_work(vbd);

		if (w != seen) {
			one_at_a_time = w - seen <= DAEMON_POLL_BATCH &&
					vbd_inflight(vbd) <= 1;
			seen = w;
			last_ns = now;
		}
		if (one_at_a_time && now - last_ns < window)
			event_base_loop(base, EVLOOP_NONBLOCK);
		else
			event_base_loop(base, EVLOOP_ONCE);
		/* Flags are cleared when a loop starts: look after each one. */
		if (daemon_loop_done(base))
			return;
	}
}
