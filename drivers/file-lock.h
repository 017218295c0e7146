/* Image locking between processes, the way QEMU does it (file-posix):
 * open file description locks on single bytes of the image, so that
 * vdiskd, qemu, qemu-nbd and qemu-img see each other. */
#ifndef VD_FILE_LOCK_H
#define VD_FILE_LOCK_H

#include <stdbool.h>

/* Takes the locks of a user of path through fd: a writer, or a reader
 * that wants a consistent image; neither lets anyone else write or
 * resize it.  0 when locked (or when the filesystem has no such locks:
 * a warning says so), -EBUSY when another process is in the way (an
 * error says who and what), another negative errno on failure. */
int vd_file_lock(int fd, bool write, const char *path);

/* Drops every lock of fd (closing it does that too). */
void vd_file_unlock(int fd);

#endif
