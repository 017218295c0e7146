/* Making new VHD images: fixed, dynamic and differencing.  Blocking
 * pwrite/fsync (control path only: vdisk-img, the snapshot command).
 *
 * Images are written so that qemu, tapdisk and Hyper-V read back the size
 * asked for: the creator app is "tap\0" (tapdisk's), which qemu takes as
 * "trust current_size" rather than the CHS geometry; creator version 1.0,
 * below 1.2, so tapdisk does not look for its batmap extension.  The
 * geometry is still the spec's for the size.
 *
 * Layout of a dynamic image: footer copy at 0, dynamic header at 512, BAT
 * at 1536 (all 0xFF, padded to a 512 multiple), footer.  A differencing
 * image puts the parent locators' data between the header and the BAT
 * (W2ru = path relative to the child's directory, W2ku = absolute path,
 * MacX = file:// + absolute path; each padded to 512, data space written
 * in bytes as Windows does): qemu reads a differencing image as a dynamic
 * one and allocates its first block right after the BAT, so locators
 * placed there would be overwritten by a qemu write.  A fixed image is
 * SIZE bytes of zeros (sparse) and the footer. */
#ifndef VHD_CREATE_H
#define VHD_CREATE_H

#include <stddef.h>
#include <stdint.h>

#include "drivers/vhd-format.h"

/* Creates path (never overwriting: O_EXCL), fsyncs it and its directory.
 *  size: a non-zero multiple of 512 up to 2040 GiB.  For a differencing
 *    image 0 means the parent's size, and any other value must equal it.
 *  block_size: 0 for 2 MiB; a power of two from 512 B to 256 MiB whose BAT
 *    stays within VHD_MAX_BAT_ENTRIES; ignored for fixed images.
 *  parent: the parent of a differencing image (NULL otherwise).  A parent
 *    that is a VHD (its footer is valid) gives its UUID and its size as a
 *    reader sees it; any other file is a raw parent: its size is the file's
 *    (a multiple of 512), the parent UUID is zero.  Either way the parent
 *    timestamp is the parent file's mtime and the unicode name its base
 *    name.
 * On failure nothing is left at path (a partly written file is removed). */
int vhd_create(const char *path, uint64_t size, enum vhd_type type, uint32_t block_size,
	       const char *parent, char *msg, size_t msglen);

/* The path of to relative to the directory from; both absolute and
 * canonical (realpath).  "./x" or "../x" style, never starting with '/'. */
int vhd_relative_path(const char *from, const char *to, char *out, size_t outcap);

#endif
