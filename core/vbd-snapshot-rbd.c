/* Named snapshots taken by the driver (rbd): pause, drain, flush, let the
 * driver snapshot, resume.  Crash-consistent: every request the clients
 * were answered before the pause is in the snapshot, nothing after it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/vbd-int.h"

struct vbd_snap {
	struct vbd *vbd;
	vbd_snapshot_cb *cb;
	void *arg;
	bool resume;		/* the disk was running: resume it after */
	char msg[256];
	char name[];
};

static void vbd_snap_finish(struct vbd_snap *s, int err, const char *msg)
{
	if (s->resume && s->vbd->state != VBD_RUNNING)
		vbd_resume(s->vbd);
	s->cb(s->arg, err, msg && *msg ? msg : err ? strerror(-err) : "");
	free(s);
}

static void vbd_snap_taken(void *arg, int err, const char *msg)
{
	vbd_snap_finish(arg, err, msg);
}

static void vbd_snap_flushed(void *arg, int err)
{
	struct vbd_snap *s = arg;
	int r;

	if (err < 0) {
		snprintf(s->msg, sizeof(s->msg), "flush before the snapshot: %s",
			 strerror(-err));
		vbd_snap_finish(s, err, s->msg);
		return;
	}
	r = vd_image_snapshot(s->vbd->img, s->name, vbd_snap_taken, s);
	if (r < 0)
		vbd_snap_finish(s, r, r == -EINVAL ? "not a valid snapshot name" :
				r == -EROFS ? "the image is read-only" : NULL);
}

static void vbd_snap_paused(void *arg, int err)
{
	struct vbd_snap *s = arg;

	if (err < 0) {
		snprintf(s->msg, sizeof(s->msg), "pause before the snapshot: %s",
			 strerror(-err));
		vbd_snap_finish(s, err, s->msg);
		return;
	}
	vbd_flush(s->vbd, vbd_snap_flushed, s);
}

int vbd_snapshot_named(struct vbd *vbd, const char *name, vbd_snapshot_cb *cb, void *arg)
{
	size_t len = strlen(name);
	struct vbd_snap *s;

	if (!vd_image_driver(vbd->img)->snapshot)
		return -EOPNOTSUPP;
	s = calloc(1, sizeof(*s) + len + 1);
	if (!s)
		return -ENOMEM;
	s->vbd = vbd;
	s->cb = cb;
	s->arg = arg;
	s->resume = vbd->state == VBD_RUNNING;
	memcpy(s->name, name, len + 1);
	log_msg(LOG_LVL_INFO, "snapshot '%s': pausing", name);
	vbd_pause(vbd, vbd_snap_paused, s);
	return 0;
}
