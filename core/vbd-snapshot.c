/* Live snapshots and the image chain.
 *
 * vbd_snapshot: pause (drain), flush, create NEWFILE as a differencing VHD
 * whose parent is the current leaf (a VHD, or a raw image: a differencing
 * VHD over raw), reopen the disk on it with the vhd driver, resume.  The
 * old leaf is then read-only under the new one.  Any failure leaves the
 * disk on the old leaf (NEWFILE removed if it was made) and running again
 * if it was running; the callback gets the error and a message. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "core/vbd-int.h"
#include "drivers/vhd-create.h"
#include "queue/queue.h"

struct vbd_snap {
	struct vbd *vbd;
	char *newfile;
	char *parent;		/* the leaf, as it was when the create began */
	struct tiocb call;	/* vhd_create on the queue's worker */
	vbd_snapshot_cb *cb;
	void *arg;
	bool was_running;
	char msg[512];
};

static void snap_finish(struct vbd_snap *s, int err)
{
	if (s->was_running)
		vbd_resume(s->vbd);
	if (err)
		log_msg(LOG_LVL_ERR, "snapshot %s: %s", s->newfile, s->msg);
	else
		log_msg(LOG_LVL_NOTICE, "snapshot: %s now writes to %s", vbd_name(s->vbd),
			s->newfile);
	s->cb(s->arg, err, err ? s->msg : NULL);
	free(s->newfile);
	free(s->parent);
	free(s);
}

/* Worker thread: writing the new image and fsyncing it and its directory
 * may take long; the main loop goes on serving the control socket. */
static long snap_create_call(struct tiocb *t)
{
	struct vbd_snap *s = t->data;

	return vhd_create(s->newfile, 0, VHD_TYPE_DIFF, 0, s->parent, s->msg, sizeof(s->msg));
}

static void snap_created(struct tiocb *t, long res)
{
	struct vbd_snap *s = t->data;
	struct vbd *vbd = s->vbd;
	int err = (int)res;

	if (err) {
		snap_finish(s, err);
		return;
	}
	err = vbd_reopen_driver(vbd, s->newfile, "vhd", false);
	if (err) {
		snprintf(s->msg, sizeof(s->msg), "cannot open the new image: %s; "
			 "staying on %s", strerror(-err), vbd->image);
		if (unlink(s->newfile) < 0)
			log_errno(LOG_LVL_WARN, errno, "snapshot: remove %s", s->newfile);
		snap_finish(s, err);
		return;
	}
	snap_finish(s, 0);
}

static void snap_flushed(void *arg, int err)
{
	struct vbd_snap *s = arg;
	struct vbd *vbd = s->vbd;

	if (err) {
		snprintf(s->msg, sizeof(s->msg), "flush before the snapshot: %s", strerror(-err));
		snap_finish(s, err);
		return;
	}
	s->parent = strdup(vbd->image);
	if (!s->parent) {
		snprintf(s->msg, sizeof(s->msg), "out of memory");
		snap_finish(s, -ENOMEM);
		return;
	}
	tiocb_prep_call(&s->call, snap_create_call, snap_created, s);
	tq_submit(vbd->q, &s->call);
}

static void snap_paused(void *arg, int err)
{
	struct vbd_snap *s = arg;

	if (err) {
		snprintf(s->msg, sizeof(s->msg), "pause: %s", strerror(-err));
		snap_finish(s, err);
		return;
	}
	/* Completed writes must be in the old leaf, durable, before it
	 * becomes a read-only parent. */
	vbd_flush(s->vbd, snap_flushed, s);
}

void vbd_snapshot(struct vbd *vbd, const char *newfile, vbd_snapshot_cb *cb, void *arg)
{
	struct vbd_snap *s = calloc(1, sizeof(*s));

	if (!s || !(s->newfile = strdup(newfile))) {
		free(s);
		cb(arg, -ENOMEM, "out of memory");
		return;
	}
	s->vbd = vbd;
	s->cb = cb;
	s->arg = arg;
	if (vbd->info.read_only) {
		snprintf(s->msg, sizeof(s->msg), "the disk is read-only");
		snap_finish(s, -EROFS);
		return;
	}
	if (access(newfile, F_OK) == 0) {
		snprintf(s->msg, sizeof(s->msg), "%s exists", newfile);
		snap_finish(s, -EEXIST);
		return;
	}
	s->was_running = vbd->state == VBD_RUNNING;
	vbd_pause(vbd, snap_paused, s);
}

unsigned vbd_chain(const struct vbd *vbd, const char **paths, const char **drivers,
		   unsigned max)
{
	unsigned n = 0;

	for (const struct vd_image *img = vbd->img; img && n < max;
	     img = vd_image_backing(img), n++) {
		paths[n] = vd_image_path(img);
		drivers[n] = vd_image_driver(img)->name;
	}
	return n;
}
