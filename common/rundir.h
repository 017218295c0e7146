/* $RUNDIR, where vdiskd puts its sockets and vdiskctl looks for them:
 * $RUNTIME_DIRECTORY (systemd), else /run/vdiskd for root, else
 * $XDG_RUNTIME_DIR/vdiskd.  Daemon and client share this one rule. */
#ifndef VD_RUNDIR_H
#define VD_RUNDIR_H

#include <stddef.h>

/* Writes $RUNDIR into buf.  -ENOENT when none applies (not root, no
 * XDG_RUNTIME_DIR), -ENAMETOOLONG when it does not fit.  No message. */
int vd_rundir(char *buf, size_t len);

/* mkdir -p; the last component gets mode.  0 or a negative errno. */
int vd_mkdir_p(const char *path, unsigned mode);

#endif
