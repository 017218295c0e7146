/* The vbd: opening, closing and reopening the image, and what it is. */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/vbd-int.h"
#include "queue/queue.h"

static int vbd_open_image(struct vbd *vbd, const char *image, const char *driver,
			  const struct vd_driver **drv, void **priv, struct vd_info *info)
{
	*drv = driver ? vd_driver_find(driver) : vd_driver_detect(image);
	if (!*drv) {
		log_msg(LOG_LVL_ERR, "unknown driver '%s' (known: %s)",
			driver ? driver : "?", vd_driver_names());
		return -EINVAL;
	}
	memset(info, 0, sizeof(*info));
	int r = (*drv)->open(image, &vbd->open_opts, vbd->q, info, priv);
	if (r < 0)
		return r;
	if (vbd->open_opts.read_only)
		info->read_only = true;
	if (info->logical_block == 0)
		info->logical_block = 512;
	if (info->physical_block < info->logical_block)
		info->physical_block = info->logical_block;
	return 0;
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
	vbd->deferred_tail = &vbd->deferred_head;
	vbd->open_opts.read_only = cfg->read_only;
	vbd->open_opts.cache = cfg->cache;
	vbd->start_ns = vd_now_ns();
	vbd->deferred_ev = event_new(base, -1, 0, vbd_deferred_cb, vbd);
	if (!vbd->name || !vbd->image || !vbd->deferred_ev) {
		r = -ENOMEM;
		goto err;
	}

	tq_options_default(&qo);
	if (cfg->queue_depth)
		qo.depth = cfg->queue_depth;
	r = tq_create(base, &qo, &vbd->q);
	if (r < 0) {
		log_errno(LOG_LVL_ERR, r, "cannot create the I/O queue");
		goto err;
	}
	vbd->driver_forced = cfg->driver != NULL;
	r = vbd_open_image(vbd, cfg->image, cfg->driver, &vbd->drv, &vbd->drv_priv,
			   &vbd->info);
	if (r < 0)
		goto err;
	log_msg(LOG_LVL_INFO, "%s image %s, %llu bytes%s%s",
		vbd->drv->name, vbd->image, (unsigned long long)vbd->info.size,
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
	if (vbd->drv && vbd->drv_priv)
		vbd->drv->close(vbd->drv_priv);
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
	const struct vd_driver *drv;
	struct vd_info info;
	void *priv;
	char *path;
	int r;

	if (vbd->state != VBD_PAUSED)
		return -EBUSY;
	path = strdup(image ? image : vbd->image);
	if (!path)
		return -ENOMEM;
	r = vbd_open_image(vbd, path, vbd->driver_forced ? vbd->drv->name : NULL,
			   &drv, &priv, &info);
	if (r < 0) {
		log_errno(LOG_LVL_ERR, r, "reopen %s failed, keeping %s", path, vbd->image);
		free(path);
		return r;
	}
	if (info.size != vbd->info.size && !allow_resize) {
		log_msg(LOG_LVL_ERR, "reopen %s: size changes from %llu to %llu "
			"with clients connected", path,
			(unsigned long long)vbd->info.size, (unsigned long long)info.size);
		drv->close(priv);
		free(path);
		return -EBUSY;
	}
	vbd->drv->close(vbd->drv_priv);
	vbd->drv = drv;
	vbd->drv_priv = priv;
	vbd->info = info;
	free(vbd->image);
	vbd->image = path;
	log_msg(LOG_LVL_NOTICE, "reopened %s (%s, %llu bytes)",
		path, drv->name, (unsigned long long)info.size);
	return 0;
}

const struct vd_info *vbd_info(const struct vbd *vbd) { return &vbd->info; }
const char *vbd_name(const struct vbd *vbd) { return vbd->name; }
const char *vbd_image(const struct vbd *vbd) { return vbd->image; }
const char *vbd_driver_name(const struct vbd *vbd) { return vbd->drv->name; }
enum vd_cache vbd_cache(const struct vbd *vbd) { return vbd->open_opts.cache; }
enum vbd_state vbd_state(const struct vbd *vbd) { return vbd->state; }

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
