/* The vbd: opening, closing and reopening the image, and what it is. */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "core/vbd-int.h"
#include "queue/queue.h"

/* The submit thread follows the main thread's CPU only where io_submit
 * merely queues (O_DIRECT); buffered, it copies the data itself and the
 * pair does better on two CPUs (docs/performance.md). */
static void vbd_place_submitter(struct vbd *vbd)
{
	tq_set_follow(vbd->q, vbd->submit_follow && vbd->info.direct);
}

static void vbd_info_from(struct vbd_info *out, const struct vd_info *in)
{
	*out = (struct vbd_info){
		.size = in->size, .logical_block = in->logical_block,
		.physical_block = in->physical_block, .read_only = in->read_only,
		.can_flush = in->can_flush, .can_fua = in->can_fua,
		.can_trim = in->can_trim, .can_zero = in->can_zero,
		.can_fast_zero = in->can_fast_zero,
		.can_block_status = in->can_block_status,
		.is_rotational = in->is_rotational, .direct = in->direct,
	};
}

int vbd_open(struct event_base *base, const struct vbd_config *cfg, struct vbd **out)
{
	struct tq_options qo;
	struct vbd *vbd;
	int r;

	vbd = calloc(1, sizeof(*vbd));
	if (!vbd)
		return -ENOMEM;
	vbd->base = base;
	vbd->name = strdup(cfg->name);
	vbd->image = strdup(cfg->image);
	vbd->held_tail = &vbd->held_head;
	vbd->failed_tail = &vbd->failed_head;
	vbd->on_write_error = cfg->on_write_error;
	vbd->on_read_error = cfg->on_read_error;
	vbd->submit_follow = cfg->submit_cpu == VBD_SUBMIT_FOLLOW;
	vbd->deferred_tail = &vbd->deferred_head;
	vbd->open_opts.read_only = cfg->read_only;
	vbd->open_opts.cache = cfg->cache == VBD_CACHE_WRITEBACK ? VD_CACHE_WRITEBACK
								: VD_CACHE_NONE;
	vbd->open_opts.ceph_conf = cfg->ceph_conf;
	vbd->open_opts.ceph_id = cfg->ceph_id;
	vbd->open_opts.ceph_timeout = cfg->ceph_timeout;
	vbd->open_opts.ceph_op_timeout = cfg->ceph_op_timeout;
	vbd->start_ns = vd_now_ns();
	vbd->buffer_limit = cfg->buffer_limit ? cfg->buffer_limit : VBD_DEFAULT_BUFFER_LIMIT;
	vbd->deferred_ev = event_new(base, -1, 0, vbd_deferred_cb, vbd);
	if (!vbd->name || !vbd->image || !vbd->deferred_ev) {
		r = -ENOMEM;
		log_errno(LOG_LVL_ERR, r, "%s", cfg->image);
		goto err;
	}

	tq_options_default(&qo);
	if (cfg->queue_depth)
		qo.depth = cfg->queue_depth;
	qo.poll_us = cfg->poll_us;
	r = tq_create(base, &qo, &vbd->q);
	if (r < 0) {
		log_errno(LOG_LVL_ERR, r, "cannot create the I/O queue");
		goto err;
	}
	r = vbd_limit_init(vbd, cfg);
	if (r < 0)
		goto err;
	vbd->env.base = base;
	vbd->env.q = vbd->q;
	vbd->driver_forced = cfg->driver != NULL;
	r = vd_image_open(cfg->image, cfg->driver, &vbd->open_opts, &vbd->env, &vbd->img);
	if (r < 0)
		goto err;
	vbd_info_from(&vbd->info, vd_image_info(vbd->img));
	vbd_place_submitter(vbd);
	log_msg(LOG_LVL_INFO, "%s image %s, %llu bytes%s%s",
		vbd_driver_name(vbd), vbd->image, (unsigned long long)vbd->info.size,
		vbd->info.read_only ? ", read-only" : "",
		vbd->info.direct ? ", O_DIRECT" : "");
	*out = vbd;
	return 0;
err:
	vbd_close(vbd);
	return r;
}

void vbd_close(struct vbd *vbd)
{
	if (!vbd)
		return;
	/* The driver's callbacks run until the last I/O is back: only then
	 * may it close its fds and free its state (a write still queued
	 * would otherwise go to a closed, maybe reused, fd). */
	if (vbd->q)
		tq_drain(vbd->q);
	vd_image_close(vbd->img);
	vbd_limit_free(vbd);
	if (vbd->q)
		tq_destroy(vbd->q);
	/* Requests the frontend never gave back are its leak, not ours to
	 * free; deferred ones were delivered by tq_destroy's loop or never. */
	vbd_pool_free_all(vbd);
	/* Whoever still waits (a pause cut short by shutdown) is told. */
	while (vbd->waiters) {
		struct vbd_waiter *w = vbd->waiters;
		vbd->waiters = w->next;
		w->cb(w->arg, -ECANCELED);
		free(w);
	}
	if (vbd->deferred_ev)
		event_free(vbd->deferred_ev);
	free(vbd->name);
	free(vbd->image);
	free(vbd);
}

int vbd_reopen(struct vbd *vbd, const char *image, bool allow_resize)
{
	return vbd_reopen_driver(vbd, image, NULL, allow_resize);
}

/* After a failed reopen: the old image is kept, and locked again unless
 * someone took it meanwhile (it is served anyway: it was ours). */
static void vbd_relock(struct vbd *vbd)
{
	if (vd_image_lock(vbd->img, true) < 0)
		log_msg(LOG_LVL_WARN, "%s: serving %s without its file locks", vbd->name,
			vbd->image);
}

int vbd_reopen_driver(struct vbd *vbd, const char *image, const char *driver,
		      bool allow_resize)
{
	struct vd_image *img;
	uint64_t size;
	char *path;
	int r;

	if (vbd->state != VBD_PAUSED)
		return -EBUSY;
	path = strdup(image ? image : vbd->image);
	if (!path)
		return -ENOMEM;
	if (!driver && vbd->driver_forced)
		driver = vbd_driver_name(vbd);
	/* The new image may be the old one's file (or, after a snapshot, have
	 * it as its parent): our own locks would refuse it. */
	vd_image_lock(vbd->img, false);
	r = vd_image_open(path, driver,
			  &vbd->open_opts, &vbd->env, &img);
	if (r < 0) {
		log_errno(LOG_LVL_ERR, r, "reopen %s failed, keeping %s", path, vbd->image);
		vbd_relock(vbd);
		free(path);
		return r;
	}
	size = vd_image_info(img)->size;
	if (size != vbd->info.size && !allow_resize) {
		log_msg(LOG_LVL_ERR, "reopen %s: size changes from %llu to %llu "
			"with clients connected", path,
			(unsigned long long)vbd->info.size, (unsigned long long)size);
		vd_image_close(img);
		vbd_relock(vbd);
		free(path);
		return -EBUSY;
	}
	vd_image_close(vbd->img);
	vbd->img = img;
	vbd_info_from(&vbd->info, vd_image_info(img));
	vbd_place_submitter(vbd);
	free(vbd->image);
	vbd->image = path;
	log_msg(LOG_LVL_NOTICE, "reopened %s (%s, %llu bytes)",
		path, vbd_driver_name(vbd), (unsigned long long)size);
	return 0;
}

const struct vbd_info *vbd_info(const struct vbd *vbd) { return &vbd->info; }
const char *vbd_name(const struct vbd *vbd) { return vbd->name; }
const char *vbd_image(const struct vbd *vbd) { return vbd->image; }
const char *vbd_driver_name(const struct vbd *vbd) { return vd_image_driver(vbd->img)->name; }
enum vbd_cache vbd_cache(const struct vbd *vbd)
{
	return vbd->open_opts.cache == VD_CACHE_WRITEBACK ? VBD_CACHE_WRITEBACK : VBD_CACHE_NONE;
}

enum vbd_state vbd_state(const struct vbd *vbd) { return vbd->state; }

uint64_t vbd_work(const struct vbd *vbd) { return vbd->work; }
unsigned vbd_inflight(const struct vbd *vbd) { return vbd->inflight; }

const char *vbd_pause_reason(const struct vbd *vbd)
{
	return vbd->state == VBD_RUNNING ? "" : vbd->pause_reason;
}

void vbd_errors_report_all(struct vbd *vbd)
{
	vbd->on_write_error = vbd->on_read_error = VBD_ERR_REPORT;
}

const char *vbd_error_policy_name(enum vbd_error_policy p)
{
	switch (p) {
	case VBD_ERR_REPORT: return "report";
	case VBD_ERR_ENOSPC: return "enospc";
	case VBD_ERR_PAUSE: return "pause";
	}
	return "?";
}

const char *vbd_state_name(enum vbd_state s)
{
	switch (s) {
	case VBD_RUNNING: return "running";
	case VBD_PAUSING: return "pausing";
	case VBD_PAUSED: return "paused";
	}
	return "unknown";
}

void vbd_connection_add(struct vbd *vbd, int delta)
{
	vbd->connections += (uint64_t)(int64_t)delta;
}

void vbd_describe(struct vbd *vbd, vbd_describe_fn *fn, void *arg)
{
	vd_image_describe(vbd->img, fn, arg);
}
