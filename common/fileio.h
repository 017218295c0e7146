/* Whole-buffer file I/O for the places that may block (open, the worker
 * thread, tools): retries EINTR and short transfers. */
#ifndef VD_FILEIO_H
#define VD_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* All of len at off, or a negative errno (-EIO at an unexpected end). */
int vd_pread_all(int fd, void *buf, size_t len, uint64_t off);
int vd_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

/* read(2) until cap bytes or the end of the file; *len is what came.
 * 0 or a negative errno. */
int vd_read_upto(int fd, char *buf, size_t cap, size_t *len);

#endif
