/* The daemon's main loop, with the optional poll window of --poll-us. */
#ifndef VD_DAEMON_LOOP_H
#define VD_DAEMON_LOOP_H

#include <event2/event.h>

#include "core/vbd.h"

/* Runs base until a loopbreak or loopexit.  poll_us 0: libevent's own
 * loop.  Otherwise, after a turn with one request at a time, the loop
 * polls without sleeping for up to poll_us before it blocks again. */
void daemon_loop(struct event_base *base, const struct vbd *vbd, unsigned poll_us);

#endif
