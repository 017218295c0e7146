/* The rbd driver: a Ceph RBD image through librbd.
 *
 * IMAGE is POOL[/NAMESPACE]/IMAGE[@SNAP], with or without "rbd:" in front
 * (the prefix is how detection knows it without -d).  Opening connects to
 * the cluster (--ceph-conf, --ceph-id, --ceph-timeout), opens the image,
 * and for a writable image takes librbd's exclusive lock and keeps it:
 * another client holding it makes the open fail, and librbd will not hand
 * ours over on request, so a second vdiskd on the same image is refused.
 * A snapshot opens read-only.
 *
 * This file opens, describes, snapshots and closes; rbd-io.c is the data
 * path (drivers/rbd-int.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "drivers/rbd-int.h"
#include "queue/queue.h"

enum { RBD_DEFAULT_TIMEOUT_S = 30 };

/* Every open disk of this process, main thread only: a reopen of the
 * same image takes the lock over from the instance it replaces. */
static struct rbd_disk *rbd_disks;

static int rbd_part(char *dst, const char *src, size_t len, const char *what,
		    char *msg, size_t msglen)
{
	if (len == 0) {
		snprintf(msg, msglen, "empty %s name", what);
		return -EINVAL;
	}
	if (len > RBD_NAME_MAX) {
		snprintf(msg, msglen, "%s name longer than %d bytes", what, RBD_NAME_MAX);
		return -EINVAL;
	}
	memcpy(dst, src, len);
	dst[len] = 0;
	return 0;
}

int vrbd_spec_parse(const char *s, struct rbd_spec *out, char *msg, size_t msglen)
{
	const char *at, *slash1, *slash2, *end;
	int r;

	memset(out, 0, sizeof(*out));
	if (strncmp(s, "rbd:", 4) == 0)
		s += 4;
	at = strchr(s, '@');
	end = at ? at : s + strlen(s);
	slash1 = memchr(s, '/', (size_t)(end - s));
	if (!slash1) {
		snprintf(msg, msglen, "want POOL/IMAGE[@SNAP]");
		return -EINVAL;
	}
	slash2 = memchr(slash1 + 1, '/', (size_t)(end - slash1 - 1));
	if (slash2 && memchr(slash2 + 1, '/', (size_t)(end - slash2 - 1))) {
		snprintf(msg, msglen, "too many '/': want POOL[/NAMESPACE]/IMAGE[@SNAP]");
		return -EINVAL;
	}
	r = rbd_part(out->pool, s, (size_t)(slash1 - s), "pool", msg, msglen);
	if (!r && slash2)
		r = rbd_part(out->ns, slash1 + 1, (size_t)(slash2 - slash1 - 1),
			     "namespace", msg, msglen);
	if (!r) {
		const char *img = slash2 ? slash2 + 1 : slash1 + 1;
		r = rbd_part(out->image, img, (size_t)(end - img), "image", msg, msglen);
	}
	if (!r && at) {
		if (strchr(at + 1, '@')) {
			snprintf(msg, msglen, "more than one '@'");
			return -EINVAL;
		}
		r = rbd_part(out->snap, at + 1, strlen(at + 1), "snapshot", msg, msglen);
	}
	return r;
}

int vrbd_snaps_read(struct rbd_disk *d, char **out, unsigned *nr)
{
	rbd_snap_info_t *snaps = NULL;
	int max = 16, n;
	size_t len = 1;
	char *s;

	for (;;) {
		snaps = calloc((size_t)max, sizeof(*snaps));
		if (!snaps)
			return -ENOMEM;
		n = rbd_snap_list(d->image, snaps, &max);
		if (n != -ERANGE)
			break;
		free(snaps);
	}
	if (n < 0) {
		free(snaps);
		return n;
	}
	for (int i = 0; i < n; i++)
		len += strlen(snaps[i].name) + 1;
	s = calloc(1, len);
	if (!s) {
		rbd_snap_list_end(snaps);
		free(snaps);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, snaps[i].name);
	}
	rbd_snap_list_end(snaps);
	free(snaps);
	*out = s;
	*nr = (unsigned)n;
	return 0;
}

static int rbd_conf_set(struct rbd_disk *d, const char *key, const char *value)
{
	int r = rados_conf_set(d->cluster, key, value);

	if (r < 0)
		log_errno(LOG_LVL_ERR, r, "rbd: %s: setting %s = %s", d->label, key, value);
	return r;
}

static int rbd_connect(struct rbd_disk *d, const struct vd_open_opts *opts)
{
	unsigned timeout = opts->ceph_timeout ? opts->ceph_timeout : RBD_DEFAULT_TIMEOUT_S;
	const char *id = opts->ceph_id;
	char v[32];
	int r;

	if (id && strncmp(id, "client.", 7) == 0)
		id += 7;
	r = rados_create(&d->cluster, id);
	if (r < 0) {
		log_errno(LOG_LVL_ERR, r, "rbd: %s: cannot create a cluster handle", d->label);
		return r;
	}
	/* Defaults of ours, set before the configuration is read so that
	 * its [client] section and CEPH_ARGS can still change them.
	 * librbd's aio calls by default only post the request to its own
	 * io_context thread, which does the work: a second hand-off after
	 * the one to our submit thread, which is there to be blocked.  Off,
	 * the submit thread does that work itself: one thread wake less per
	 * batch (0.7 fewer context switches per 4k read at QD32).
	 * Zero-copy writes: librbd keeps our buffer instead of copying it
	 * (a 1 MiB allocation, copy and page faults per 1 MiB write) and
	 * holds the completion back until it lets the buffer go; a request's
	 * buffer is not touched before its completion.  librbd turns it off
	 * by itself while a cache acknowledges writes early. */
	if ((r = rbd_conf_set(d, "rbd_non_blocking_aio", "false")) < 0 ||
	    (r = rbd_conf_set(d, "rbd_disable_zero_copy_writes", "false")) < 0)
		return r;
	r = rados_conf_read_file(d->cluster, opts->ceph_conf);
	if (r < 0 && opts->ceph_conf) {
		log_errno(LOG_LVL_ERR, r, "rbd: %s: cannot read the Ceph configuration %s",
			  d->label, opts->ceph_conf);
		return r;
	}
	rados_conf_parse_env(d->cluster, NULL);
	/* vdiskd says what went wrong itself; librados's own messages go to
	 * its log file when the configuration names one. */
	rados_conf_set(d->cluster, "log_to_stderr", "false");
	rados_conf_set(d->cluster, "err_to_stderr", "false");
	snprintf(v, sizeof(v), "%u", timeout);
	if ((r = rbd_conf_set(d, "client_mount_timeout", v)) < 0 ||
	    (r = rbd_conf_set(d, "rados_mon_op_timeout", v)) < 0)
		return r;
	snprintf(v, sizeof(v), "%u", opts->ceph_op_timeout);
	if ((r = rbd_conf_set(d, "rados_osd_op_timeout", v)) < 0)
		return r;
	/* writeback: librbd's cache from the first write.  Its default
	 * writethrough-until-flush protects guests that never flush; an NBD
	 * client is told it can FLUSH, and what it has not flushed (or sent
	 * with FUA) is not promised durable, as with a file's page cache.
	 * The writearound policy (librbd's default, qemu's too) acknowledges
	 * a write at once and sends it on without copying it into a cache;
	 * the writeback policy (ObjectCacher) copies, coalesces and serves
	 * reads, and cost more than it saved here: 1 MiB QD8 writes 456-648
	 * against 741-763 IOPS, 4k random writes 92 against 57 us of vdiskd
	 * CPU each.  NBD clients have a page cache of their own for reads. */
	if (opts->cache == VD_CACHE_WRITEBACK)
		r = rbd_conf_set(d, "rbd_cache", "true") ?:
		    rbd_conf_set(d, "rbd_cache_policy", "writearound") ?:
		    rbd_conf_set(d, "rbd_cache_writethrough_until_flush", "false");
	else
		r = rbd_conf_set(d, "rbd_cache", "false");
	if (r < 0)
		return r;
	r = rados_connect(d->cluster);
	if (r == -ETIMEDOUT || r == -EINTR)
		log_msg(LOG_LVL_ERR, "rbd: %s: no answer from the cluster's monitors "
			"within %u s (--ceph-timeout)", d->label, timeout);
	else if (r == -EACCES || r == -EPERM)
		log_msg(LOG_LVL_ERR, "rbd: %s: the cluster refused client.%s "
			"(check --ceph-id and its keyring)", d->label, id ? id : "admin");
	else if (r == -ENOENT)
		log_msg(LOG_LVL_ERR, "rbd: %s: no monitor address or keyring found: "
			"give --ceph-conf FILE%s%s", d->label,
			opts->ceph_conf ? ", not " : "", opts->ceph_conf ? opts->ceph_conf : "");
	else if (r < 0)
		log_errno(LOG_LVL_ERR, r, "rbd: %s: cannot connect to the cluster", d->label);
	return r;
}

/* The disk of this process that has the same image open and locked. */
static struct rbd_disk *rbd_find_locked(const struct rbd_spec *s)
{
	for (struct rbd_disk *o = rbd_disks; o; o = o->next) {
		if (o->locked && strcmp(o->spec.pool, s->pool) == 0 &&
		    strcmp(o->spec.ns, s->ns) == 0 && strcmp(o->spec.image, s->image) == 0)
			return o;
	}
	return NULL;
}

/* Who holds the lock, for the message. */
static void rbd_lock_owner(struct rbd_disk *d, char *out, size_t outlen)
{
	rbd_lock_mode_t mode;
	char *owners[4];
	size_t n = 4;

	snprintf(out, outlen, "another client");
	if (rbd_lock_get_owners(d->image, &mode, owners, &n) == 0 && n > 0) {
		snprintf(out, outlen, "%s", owners[0]);
		rbd_lock_get_owners_cleanup(owners, n);
	}
}

/* Writable images are ours alone: the exclusive lock, or, on an image
 * without that feature, no other watcher. */
static int rbd_take_lock(struct rbd_disk *d, struct rbd_disk **handed)
{
	char owner[128];
	int r;

	if (!(d->features & RBD_FEATURE_EXCLUSIVE_LOCK)) {
		rbd_image_watcher_t w[8];
		size_t n = 8;

		log_msg(LOG_LVL_WARN, "rbd: %s: the image has no exclusive-lock feature; "
			"only other watchers are checked (rbd feature enable %s/%s "
			"exclusive-lock)", d->label, d->spec.pool, d->spec.image);
		r = rbd_watchers_list(d->image, w, &n);
		if (r == 0) {
			rbd_watchers_list_cleanup(w, n);
			if (n > 1) {
				log_msg(LOG_LVL_ERR, "rbd: %s: in use by %zu other client(s); "
					"refusing to serve it read-write (--read-only would "
					"do)", d->label, n - 1);
				return -EBUSY;
			}
		}
		return 0;
	}
	/* A reopen: the instance being replaced gives up the lock first. */
	*handed = rbd_find_locked(&d->spec);
	if (*handed) {
		rbd_lock_release((*handed)->image);
		(*handed)->locked = false;
	}
	r = rbd_lock_acquire(d->image, RBD_LOCK_MODE_EXCLUSIVE);
	if (r == 0) {
		d->locked = true;
		*handed = NULL;
		return 0;
	}
	rbd_lock_owner(d, owner, sizeof(owner));
	if (r == -EROFS || r == -EBUSY || r == -EAGAIN)
		log_msg(LOG_LVL_ERR, "rbd: %s: the image's exclusive lock is held by %s "
			"(another vdiskd?); refusing to serve it read-write "
			"(--read-only would do)", d->label, owner);
	else
		log_errno(LOG_LVL_ERR, r, "rbd: %s: cannot take the exclusive lock", d->label);
	return r == -EROFS || r == -EAGAIN ? -EBUSY : r;
}

static int rbd_open_image(struct rbd_disk *d)
{
	const struct rbd_spec *s = &d->spec;
	const char *snap = s->snap[0] ? s->snap : NULL;
	int r;

	r = rados_ioctx_create(d->cluster, s->pool, &d->ioctx);
	if (r == -ENOENT) {
		log_msg(LOG_LVL_ERR, "rbd: %s: no pool '%s' in the cluster", d->label, s->pool);
		return r;
	}
	if (r < 0) {
		log_errno(LOG_LVL_ERR, r, "rbd: %s: pool '%s'", d->label, s->pool);
		return r;
	}
	if (s->ns[0])
		rados_ioctx_set_namespace(d->ioctx, s->ns);
	if (d->read_only)
		r = rbd_open_read_only(d->ioctx, s->image, &d->image, snap);
	else
		r = rbd_open(d->ioctx, s->image, &d->image, NULL);
	if (r == -ENOENT && snap) {
		rbd_image_t probe;

		if (rbd_open_read_only(d->ioctx, s->image, &probe, NULL) == 0) {
			rbd_close(probe);
			log_msg(LOG_LVL_ERR, "rbd: %s: image '%s' has no snapshot '%s'",
				d->label, s->image, snap);
			return r;
		}
	}
	if (r == -ENOENT)
		log_msg(LOG_LVL_ERR, "rbd: %s: no image '%s' in pool '%s'%s%s", d->label,
			s->image, s->pool, s->ns[0] ? ", namespace " : "", s->ns);
	else if (r < 0)
		log_errno(LOG_LVL_ERR, r, "rbd: %s: cannot open the image", d->label);
	if (r < 0)
		d->image = NULL;
	return r;
}

static void rbd_free(struct rbd_disk *d)
{
	vrbd_io_stop(d);
	if (d->image) {
		if (d->locked)
			rbd_lock_release(d->image);
		rbd_close(d->image);
	}
	if (d->efd >= 0)
		close(d->efd);
	if (d->ioctx)
		rados_ioctx_destroy(d->ioctx);
	if (d->cluster)
		rados_shutdown(d->cluster);
	free(d->snaps);
	free(d->label);
	free(d);
}

static int rbd_drv_open(const char *image, const struct vd_open_opts *opts,
			const struct vd_env *env, struct vd_info *info, void **priv)
{
	struct rbd_disk *d = calloc(1, sizeof(*d)), *handed = NULL;
	rbd_image_info_t st;
	char msg[128];
	int r;

	if (!d)
		return -ENOMEM;
	d->efd = -1;
	d->q = env->q;
	r = vrbd_spec_parse(image, &d->spec, msg, sizeof(msg));
	if (r < 0) {
		log_msg(LOG_LVL_ERR, "rbd: '%.80s%s': %s", image,
			strlen(image) > 80 ? "..." : "", msg);
		free(d);
		return r;
	}
	if (asprintf(&d->label, "%s%s%s/%s%s%s", d->spec.pool, d->spec.ns[0] ? "/" : "",
		     d->spec.ns, d->spec.image, d->spec.snap[0] ? "@" : "",
		     d->spec.snap) < 0) {
		d->label = NULL;
		r = -ENOMEM;
		goto err;
	}
	d->read_only = opts->read_only || d->spec.snap[0];
	r = rbd_connect(d, opts);
	if (r < 0)
		goto err;
	r = rbd_open_image(d);
	if (r < 0)
		goto err;
	r = rbd_stat(d->image, &st, sizeof(st));
	if (r == 0)
		r = rbd_get_features(d->image, &d->features);
	if (r < 0) {
		log_errno(LOG_LVL_ERR, r, "rbd: %s: stat", d->label);
		goto err;
	}
	d->size = st.size;
	d->obj_size = st.obj_size;
	if (d->size == 0) {
		log_msg(LOG_LVL_ERR, "rbd: %s is empty (size 0); rbd resize it first",
			d->label);
		r = -EINVAL;
		goto err;
	}
	if (!d->read_only) {
		r = rbd_take_lock(d, &handed);
		if (r < 0)
			goto err;
	}
	if (vrbd_snaps_read(d, &d->snaps, &d->nr_snaps) < 0)
		d->snaps = NULL;	/* info shows none; not worth failing for */
	r = vrbd_io_start(d, env->base);
	if (r < 0) {
		log_errno(LOG_LVL_ERR, r, "rbd: %s: completion events", d->label);
		goto err;
	}
	*info = (struct vd_info){
		.size = d->size,
		.logical_block = 512,
		.physical_block = 4096,
		.read_only = d->read_only,
		.can_flush = true,
		.can_fua = true,
		.can_trim = !d->read_only,
		.can_zero = !d->read_only,
		.can_fast_zero = !d->read_only,
		.can_block_status = true,
		.direct = opts->cache == VD_CACHE_NONE,
	};
	if (d->spec.snap[0] && !opts->read_only)
		log_msg(LOG_LVL_NOTICE, "rbd: %s is a snapshot: serving it read-only",
			d->label);
	d->next = rbd_disks;
	rbd_disks = d;
	*priv = d;
	return 0;
err:
	/* A reopen that failed: the old instance takes its lock back. */
	if (handed && rbd_lock_acquire(handed->image, RBD_LOCK_MODE_EXCLUSIVE) == 0)
		handed->locked = true;
	else if (handed)
		log_msg(LOG_LVL_ERR, "rbd: %s: could not take the exclusive lock back",
			handed->label);
	rbd_free(d);
	return r;
}

static void rbd_drv_close(void *priv)
{
	struct rbd_disk *d = priv;

	for (struct rbd_disk **p = &rbd_disks; *p; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			break;
		}
	}
	if (d->inflight)
		log_msg(LOG_LVL_ERR, "rbd: %s: closed with %u requests in flight",
			d->label, d->inflight);
	rbd_free(d);
}

static void rbd_drv_describe(void *priv, vd_describe_fn *fn, void *arg)
{
	struct rbd_disk *d = priv;
	char b[512];
	size_t n = sizeof(b);

	fn(arg, "pool", d->spec.pool, false);
	if (d->spec.ns[0])
		fn(arg, "namespace", d->spec.ns, false);
	fn(arg, "image", d->spec.image, false);
	if (d->spec.snap[0])
		fn(arg, "snapshot", d->spec.snap, false);
	snprintf(b, sizeof(b), "%llu", (unsigned long long)d->obj_size);
	fn(arg, "object_size", b, true);
	if (rbd_features_to_string(d->features, b, &n) == 0)
		fn(arg, "features", b, false);
	fn(arg, "exclusive_lock", d->locked ? "held" : "not held", false);
	snprintf(b, sizeof(b), "%u", d->nr_snaps);
	fn(arg, "snapshot_count", b, true);
	if (d->snaps) {
		char *s = strdup(d->snaps), *save = NULL;

		for (char *t = s ? strtok_r(s, ",", &save) : NULL; t;
		     t = strtok_r(NULL, ",", &save))
			fn(arg, "snapshots", t, false);
		free(s);
	}
}

/* A snapshot, made on the queue's worker: rbd_snap_create waits for
 * the cluster. */
struct rbd_snap_op {
	struct tiocb t;
	struct rbd_disk *d;
	vd_snapshot_cb *cb;
	void *arg;
	char *snaps;
	unsigned nr_snaps;
	char msg[1400];
	char name[RBD_NAME_MAX + 1];
};

static long rbd_snap_call(struct tiocb *t)
{
	struct rbd_snap_op *op = t->data;
	struct rbd_disk *d = op->d;
	int r = rbd_snap_create(d->image, op->name);

	if (r == -EEXIST)
		snprintf(op->msg, sizeof(op->msg), "%s already has a snapshot '%s'",
			 d->label, op->name);
	else if (r < 0)
		snprintf(op->msg, sizeof(op->msg), "%s: rbd_snap_create '%s': %s",
			 d->label, op->name, strerror(-r));
	if (r == 0 && vrbd_snaps_read(d, &op->snaps, &op->nr_snaps) < 0)
		op->snaps = NULL;
	return r;
}

static void rbd_snap_done(struct tiocb *t, long res)
{
	struct rbd_snap_op *op = t->data;
	struct rbd_disk *d = op->d;

	if (op->snaps) {
		free(d->snaps);
		d->snaps = op->snaps;
		d->nr_snaps = op->nr_snaps;
	}
	if (res == 0)
		log_msg(LOG_LVL_NOTICE, "rbd: %s: snapshot '%s' created", d->label, op->name);
	else
		log_msg(LOG_LVL_ERR, "rbd: %s", op->msg);
	op->cb(op->arg, (int)res, op->msg);
	free(op);
}

static int rbd_drv_snapshot(void *priv, const char *name, vd_snapshot_cb *cb, void *arg)
{
	struct rbd_disk *d = priv;
	struct rbd_snap_op *op;
	size_t len = strlen(name);

	if (d->read_only)
		return -EROFS;
	if (len == 0 || len > RBD_NAME_MAX || strpbrk(name, "/@"))
		return -EINVAL;
	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->d = d;
	op->cb = cb;
	op->arg = arg;
	memcpy(op->name, name, len + 1);
	tiocb_prep_call(&op->t, rbd_snap_call, rbd_snap_done, op);
	tq_submit(d->q, &op->t);
	return 0;
}

const struct vd_driver vd_rbd_driver = {
	.name = "rbd",
	.prefix = "rbd:",
	.open = rbd_drv_open,
	.close = rbd_drv_close,
	.read = vrbd_read,
	.write = vrbd_write,
	.flush = vrbd_flush,
	.trim = vrbd_trim,
	.write_zeroes = vrbd_write_zeroes,
	.block_status = vrbd_block_status,
	.describe = rbd_drv_describe,
	.snapshot = rbd_drv_snapshot,
};
