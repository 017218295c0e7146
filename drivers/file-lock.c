/* Image locking between processes, compatible with QEMU's (file-posix).
 *
 * Each permission a user may hold is a bit (QEMU's BLK_PERM_*: consistent
 * read 0, write 1, write-unchanged 2, resize 3).  A user that holds
 * permission b takes a shared lock on byte 100 + b; a user that does not
 * let others have it takes one on byte 200 + b.  Locks are taken first
 * and checked after, so of two users that start together at least one
 * sees the other.  They are open file description locks: they belong to
 * this fd, conflict with every other open of the file (in this process
 * too), and go away when the fd is closed or the process dies.
 *
 * vdiskd takes what a QEMU guest disk takes: consistent read (and write
 * when writable), and lets no one else write or resize the image.  So a
 * second vdiskd, a qemu or qemu-nbd writing to it, or qemu-img reading it
 * without -U, refuse each other; two read-only users share it. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "common/log.h"
#include "drivers/file-lock.h"

enum {
	LOCK_PERM_BASE = 100,	/* + b: b is held */
	LOCK_SHARED_BASE = 200,	/* + b: b is not shared */
	LOCK_END = 300,
	PERM_READ = 0,		/* BLK_PERM_CONSISTENT_READ */
	PERM_WRITE = 1,
	PERM_RESIZE = 3,
};

/* One byte we lock, and what it means when another process has locked
 * its counterpart (200 + b for a held b, 100 + b for an unshared one). */
struct lock_perm {
	int perm;
	bool held;		/* else: not shared */
	bool writer_only;
	const char *conflict;
};

static const struct lock_perm lock_perms[] = {
	{ PERM_READ, true, false, "another process does not let others read it" },
	{ PERM_WRITE, true, true, "another process does not let others write to it" },
	{ PERM_WRITE, false, false, "another process is writing to it" },
	{ PERM_RESIZE, false, false, "another process may resize it" },
};
enum { LOCK_NPERMS = sizeof(lock_perms) / sizeof(lock_perms[0]) };

static int lock_byte(int fd, short type, int cmd, off_t off, short *found)
{
	struct flock fl = {
		.l_type = type,
		.l_whence = SEEK_SET,
		.l_start = off,
		.l_len = 1,
	};

	if (fcntl(fd, cmd, &fl) < 0)
		return -errno;
	if (found)
		*found = fl.l_type;
	return 0;
}

void vd_file_unlock(int fd)
{
	struct flock fl = {
		.l_type = F_UNLCK,
		.l_whence = SEEK_SET,
		.l_start = LOCK_PERM_BASE,
		.l_len = LOCK_END - LOCK_PERM_BASE,
	};

	fcntl(fd, F_OFD_SETLK, &fl);
}

static bool lock_unsupported(int err)
{
	return err == -EINVAL || err == -ENOLCK || err == -EOPNOTSUPP || err == -ENOSYS;
}

int vd_file_lock(int fd, bool write, const char *path)
{
	const char *why = NULL;
	int r;

	for (int i = 0; i < LOCK_NPERMS; i++) {
		const struct lock_perm *p = &lock_perms[i];
		off_t off = (p->held ? LOCK_PERM_BASE : LOCK_SHARED_BASE) + p->perm;

		if (p->writer_only && !write)
			continue;
		if ((r = lock_byte(fd, F_RDLCK, F_OFD_SETLK, off, NULL)) < 0)
			goto failed;
	}
	/* Only now look at the others (see the top). */
	for (int i = 0; i < LOCK_NPERMS && !why; i++) {
		const struct lock_perm *p = &lock_perms[i];
		off_t off = (p->held ? LOCK_SHARED_BASE : LOCK_PERM_BASE) + p->perm;
		short type = F_UNLCK;

		if (p->writer_only && !write)
			continue;
		if ((r = lock_byte(fd, F_WRLCK, F_OFD_GETLK, off, &type)) < 0)
			goto failed;
		if (type != F_UNLCK)
			why = p->conflict;
	}
	if (why) {
		vd_file_unlock(fd);
		log_msg(LOG_LVL_ERR, "%s is in use: %s (a vdiskd, qemu or qemu-nbd serving it%s)",
			path, why, write ? "; two writers would corrupt it" : "");
		return -EBUSY;
	}
	return 0;
failed:
	vd_file_unlock(fd);
	if (lock_unsupported(r)) {
		log_errno(LOG_LVL_WARN, r, "%s: the filesystem has no file locks; "
			  "serving it unlocked (nothing stops a second user)", path);
		return 0;
	}
	if (r == -EAGAIN || r == -EACCES) {
		log_msg(LOG_LVL_ERR, "%s is in use: another process holds a write lock "
			"on its lock bytes", path);
		return -EBUSY;
	}
	log_errno(LOG_LVL_ERR, r, "%s: locking", path);
	return r;
}
