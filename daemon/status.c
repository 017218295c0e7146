/* STATUS= lines.  The state lives in the vbd; this file only turns it
 * into words and sends them when they change.  One daemon serves one disk,
 * so the last line sent is process-wide, like the log module's state. */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "daemon/sd-notify.h"
#include "daemon/status.h"
#include "core/vbd.h"

enum { STATUS_POLL_MS = 1000 };

static struct {
	char last[256];
	bool stopping;
	struct event *timer;
} status;

static const char *status_plural(unsigned long long n)
{
	return n == 1 ? "" : "s";
}

static void status_format(struct vbd *vbd, char *buf, size_t len)
{
	struct vbd_stats s;

	vbd_get_stats(vbd, &s);
	if (status.stopping) {
		snprintf(buf, len, "stopping: draining %llu request%s, %llu "
			 "connection%s left", (unsigned long long)s.inflight,
			 status_plural(s.inflight), (unsigned long long)s.connections,
			 status_plural(s.connections));
		return;
	}
	switch (s.state) {
	case VBD_RUNNING:
		snprintf(buf, len, "serving, %llu connection%s",
			 (unsigned long long)s.connections, status_plural(s.connections));
		break;
	case VBD_PAUSING:
		snprintf(buf, len, "pausing: draining %llu request%s",
			 (unsigned long long)s.inflight, status_plural(s.inflight));
		break;
	case VBD_PAUSED:
		snprintf(buf, len, "paused (%s), %llu connection%s (%llu request%s held)",
			 s.pause_reason, (unsigned long long)s.connections,
			 status_plural(s.connections), (unsigned long long)s.held,
			 status_plural(s.held));
		break;
	}
}

void vd_status_update(struct vbd *vbd)
{
	char line[sizeof(status.last)];

	if (!vbd || !sd_notify_enabled())
		return;
	status_format(vbd, line, sizeof(line));
	if (strcmp(line, status.last) == 0)
		return;
	/* Remember it only once sent, so a lost datagram is tried again. */
	if (sd_notifyf("STATUS=%s", line) > 0)
		snprintf(status.last, sizeof(status.last), "%s", line);
}

void vd_status_set_stopping(struct vbd *vbd)
{
	status.stopping = true;
	vd_status_update(vbd);
}

static void status_poll(int fd, short what, void *arg)
{
	vd_status_update(arg);
}

int vd_status_start(struct event_base *base, struct vbd *vbd)
{
	struct timeval tv = { STATUS_POLL_MS / 1000, STATUS_POLL_MS % 1000 * 1000 };

	if (!sd_notify_enabled())
		return 0;
	status.timer = event_new(base, -1, EV_PERSIST, status_poll, vbd);
	if (!status.timer || event_add(status.timer, &tv) < 0) {
		vd_status_stop();
		return -ENOMEM;
	}
	vd_status_update(vbd);
	return 0;
}

void vd_status_stop(void)
{
	if (status.timer)
		event_free(status.timer);
	status.timer = NULL;
}
