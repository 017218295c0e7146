/* The driver registry: an explicit table of image formats and format
 * detection. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers/driver.h"

/* Order matters for detection: formats with a detect() callback are asked
 * in turn; raw takes whatever nobody claims. */
static const struct vd_driver *const drivers[] = {
	&vd_raw_driver,
	&vd_ram_driver,
	&vd_vhd_driver,
	&vd_rbd_driver,
};

#define NR_DRIVERS (sizeof(drivers) / sizeof(drivers[0]))

const struct vd_driver *vd_driver_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < NR_DRIVERS; i++) {
		if (strcmp(drivers[i]->name, name) == 0)
			return drivers[i];
	}
	return NULL;
}

const char *vd_driver_names(void)
{
	static char names[64];

	if (!names[0]) {
		size_t n = 0;

		for (size_t i = 0; i < NR_DRIVERS && n < sizeof(names); i++)
			n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s",
					      i ? ", " : "", drivers[i]->name);
	}
	return names;
}

/* Size of an open image: st_size, or the device size for block devices.
 * Returns 0 when it cannot be learned (detection then simply fails). */
static uint64_t registry_image_size(int fd)
{
	struct stat st;
	uint64_t size = 0;

	if (fstat(fd, &st) < 0)
		return 0;
	if (S_ISREG(st.st_mode))
		return (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) == 0)
		return size;
	return 0;
}

const struct vd_driver *vd_driver_detect(const char *image)
{
	const struct vd_driver *found = &vd_raw_driver;
	int fd = -1;

	/* A name such as rbd:POOL/IMAGE says its driver; no file to open. */
	for (size_t i = 0; i < NR_DRIVERS; i++) {
		const char *p = drivers[i]->prefix;

		if (p && strncmp(image, p, strlen(p)) == 0)
			return drivers[i];
	}
	for (size_t i = 0; i < NR_DRIVERS; i++) {
		if (!drivers[i]->detect)
			continue;
		/* Opened only when some format can look at it (the VHD
		 * footer check); a failure here is reported by raw's open. */
		if (fd < 0) {
			struct stat st;

			/* O_NONBLOCK: a FIFO must not wait for a writer here;
			 * only files and devices are looked at. */
			fd = open(image, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
			if (fd < 0)
				break;
			if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
				break;
		}
		if (drivers[i]->detect(fd, registry_image_size(fd))) {
			found = drivers[i];
			break;
		}
	}
	if (fd >= 0)
		close(fd);
	return found;
}
