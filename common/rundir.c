/* $RUNDIR and creating it. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/rundir.h"

int vd_rundir(char *buf, size_t len)
{
	const char *rt = getenv("RUNTIME_DIRECTORY");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (rt && *rt) {
		/* systemd lists one directory per RuntimeDirectory= entry,
		 * separated by colons: ours is the first. */
		size_t l = strcspn(rt, ":");
		n = snprintf(buf, len, "%.*s", (int)l, rt);
	} else if (geteuid() == 0) {
		n = snprintf(buf, len, "/run/vdiskd");
	} else if (xdg && *xdg) {
		n = snprintf(buf, len, "%s/vdiskd", xdg);
	} else {
		return -ENOENT;
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int vd_mkdir_p(const char *path, unsigned mode)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}
