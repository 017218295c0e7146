/* An open driver instance, and the one wrapper every data-path call goes
 * through (nbdkit's backend_* functions): the vbd's disk and a driver's
 * backing images alike. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "drivers/driver.h"

struct vd_image {
	const struct vd_driver *drv;
	void *priv;
	struct vd_info info;
	char *path;
};

int vd_image_open(const char *image, const char *driver, const struct vd_open_opts *opts,
		  const struct vd_env *env, struct vd_image **out)
{
	const struct vd_driver *drv = driver ? vd_driver_find(driver) : vd_driver_detect(image);
	struct vd_image *img;
	int r;

	if (!drv) {
		log_msg(LOG_LVL_ERR, "unknown driver '%s' (known: %s)",
			driver ? driver : "?", vd_driver_names());
		return -EINVAL;
	}
	img = calloc(1, sizeof(*img));
	if (!img) {
		log_errno(LOG_LVL_ERR, ENOMEM, "%s", image);
		return -ENOMEM;
	}
	img->drv = drv;
	img->path = strdup(image);
	if (!img->path) {
		free(img);
		log_errno(LOG_LVL_ERR, ENOMEM, "%s", image);
		return -ENOMEM;
	}
	/* The driver says what went wrong, once; running out of memory is
	 * ours to report. */
	r = drv->open(image, opts, env, &img->info, &img->priv);
	if (r == -ENOMEM)
		log_errno(LOG_LVL_ERR, r, "%s: %s", drv->name, image);
	if (r < 0) {
		free(img->path);
		free(img);
		return r;
	}
	if (opts->read_only)
		img->info.read_only = true;
	if (img->info.logical_block == 0)
		img->info.logical_block = 512;
	if (img->info.physical_block < img->info.logical_block)
		img->info.physical_block = img->info.logical_block;
	*out = img;
	return 0;
}

void vd_image_close(struct vd_image *img)
{
	if (!img)
		return;
	img->drv->close(img->priv);
	free(img->path);
	free(img);
}

const struct vd_info *vd_image_info(const struct vd_image *img)
{
	return &img->info;
}

const struct vd_driver *vd_image_driver(const struct vd_image *img)
{
	return img->drv;
}

const char *vd_image_path(const struct vd_image *img)
{
	return img->path;
}

struct vd_image *vd_image_backing(const struct vd_image *img)
{
	return img->drv->backing ? img->drv->backing(img->priv) : NULL;
}

int vd_image_lock(struct vd_image *img, bool on)
{
	return img && img->drv->lock ? img->drv->lock(img->priv, on) : 0;
}

int vd_image_submit(struct vd_image *img, struct vd_io *io)
{
	const struct vd_driver *d = img->drv;

	switch (io->op) {
	case VD_OP_READ:
		return d->read(img->priv, io);
	case VD_OP_WRITE:
		return d->write(img->priv, io);
	case VD_OP_FLUSH:
		return d->flush ? d->flush(img->priv, io) : 1;
	case VD_OP_TRIM:
		return d->trim ? d->trim(img->priv, io) : -EOPNOTSUPP;
	case VD_OP_WRITE_ZEROES:
		return d->write_zeroes ? d->write_zeroes(img->priv, io) : -EOPNOTSUPP;
	case VD_OP_BLOCK_STATUS:
		return d->block_status ? d->block_status(img->priv, io) : 1;
	}
	return -EINVAL;
}

void vd_image_describe(struct vd_image *img, vd_describe_fn *fn, void *arg)
{
	if (img->drv->describe)
		img->drv->describe(img->priv, fn, arg);
}

int vd_image_snapshot(struct vd_image *img, const char *name, vd_snapshot_cb *cb,
		      void *arg)
{
	if (!img->drv->snapshot)
		return -EOPNOTSUPP;
	return img->drv->snapshot(img->priv, name, cb, arg);
}
