/* RBD driver internals shared by drivers/rbd*.c; the rest of vdiskd sees
 * only vd_rbd_driver (drivers/driver.h).
 *
 *   rbd.c         the image spec, connecting, opening and locking the
 *                 image, close, describe, snapshots; the ops table
 *   rbd-io.c      the data path: the submit thread, completions through
 *                 librbd's eventfd, block status on the queue's worker
 *
 * Threads: librbd runs its own; vdiskd's work never runs on them.  The
 * driver's submit thread makes the rbd_aio_* calls (they block when
 * librbd's in-flight throttle is full); librbd signals the eventfd when
 * a completion is ready, and the main loop collects it with
 * rbd_poll_io_events and calls vd_io_complete. */
#ifndef VD_RBD_INT_H
#define VD_RBD_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "drivers/driver.h"

enum {
	RBD_NAME_MAX = 255,	/* bytes in a pool, namespace, image or snapshot name */
};

/* POOL[/NAMESPACE]/IMAGE[@SNAP], with an optional "rbd:" in front. */
struct rbd_spec {
	char pool[RBD_NAME_MAX + 1];
	char ns[RBD_NAME_MAX + 1];	/* "" : the default namespace */
	char image[RBD_NAME_MAX + 1];
	char snap[RBD_NAME_MAX + 1];	/* "" : the image itself */
};

struct rbd_disk {
	/* Fixed at open: every thread may read these. */
	struct rbd_spec spec;
	char *label;			/* "pool/image[@snap]" for messages */
	rados_t cluster;
	rados_ioctx_t ioctx;
	rbd_image_t image;
	bool read_only;
	bool locked;			/* we hold the exclusive lock */
	uint64_t size;
	uint64_t obj_size;
	uint64_t features;
	struct tqueue *q;		/* the worker runs block status, snapshots */

	/* Completions: librbd bumps efd; ev collects them on the main loop. */
	int efd;
	bool efd_edge;		/* registered edge-triggered: never read */
	struct event *ev;
	unsigned inflight;		/* main thread: aio handed to the submit thread */

	/* The submit thread and its lists: newest-first stacks linked via
	 * drv_ptr, pushed with a CAS and emptied with one exchange, so the
	 * two threads share no lock (common/futex.h). */
	pthread_t thread;
	bool thread_started;
	bool stop;
	int sleeping;			/* futex word: the thread sleeps */
	struct vd_io *inbox;		/* main -> thread: to submit */
	struct vd_io *failed;		/* thread -> main: refused (res in drv_u64[1]) */

	/* Main thread: the snapshots as last read (info), "a,b,c". */
	char *snaps;
	unsigned nr_snaps;

	struct rbd_disk *next;		/* every open disk of this process */
};

/* rbd.c */
int vrbd_spec_parse(const char *s, struct rbd_spec *out, char *msg, size_t msglen);
/* The snapshots of the open image, "a,b" (malloc'd), and how many.
 * Blocking: worker or open only. */
int vrbd_snaps_read(struct rbd_disk *d, char **out, unsigned *nr);

/* rbd-io.c */
int vrbd_io_start(struct rbd_disk *d, struct event_base *base);
void vrbd_io_stop(struct rbd_disk *d);
int vrbd_read(void *priv, struct vd_io *io);
int vrbd_write(void *priv, struct vd_io *io);
int vrbd_flush(void *priv, struct vd_io *io);
int vrbd_trim(void *priv, struct vd_io *io);
int vrbd_write_zeroes(void *priv, struct vd_io *io);
int vrbd_block_status(void *priv, struct vd_io *io);

#endif
