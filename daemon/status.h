/* STATUS= for systemd: one line saying what the disk is doing, as
 * `systemctl status vdiskd@NAME` shows it ("serving, 2 connections",
 * "pausing: draining 3 requests", "paused", "stopping: ..."). */
#ifndef VD_STATUS_H
#define VD_STATUS_H

#include <stdbool.h>

struct event_base;
struct vbd;

/* Sends STATUS= when the line for vbd's state differs from the last one
 * sent.  Cheap, and a no-op without $NOTIFY_SOCKET: anything that changes
 * the state (the control commands pause and resume) may call it so the
 * line changes at once rather than at the next poll. */
void vd_status_update(struct vbd *vbd);
/* From now on the line says "stopping" (SIGTERM, vdiskctl shutdown). */
void vd_status_set_stopping(struct vbd *vbd);

/* Polls vbd once a second from base so every state change shows up
 * without hooks in the code that makes it.  Nothing without systemd.
 * Returns 0 or -ENOMEM. */
int vd_status_start(struct event_base *base, struct vbd *vbd);
void vd_status_stop(void);

#endif
