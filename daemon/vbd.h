/* The vbd core: one virtual disk.  Frontends take requests from its pool,
 * submit them, and get them back through req->done on the main thread.
 * The vbd counts requests from submission to reply (in flight), holds
 * them while paused, keeps the statistics and owns the driver. */
#ifndef VD_VBD_H
#define VD_VBD_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers/driver.h"

struct event_base;
struct vbd;

enum { VBD_MAX_PAYLOAD = 32 * 1024 * 1024 };	/* largest READ/WRITE */

enum vbd_op {
	VBD_OP_READ,
	VBD_OP_WRITE,
	VBD_OP_FLUSH,
	VBD_OP_TRIM,
	VBD_OP_WRITE_ZEROES,
	VBD_OP_CACHE,		/* prefetch hint: checked, then a no-op */
	VBD_OP_BLOCK_STATUS,
};

enum vbd_state {
	VBD_RUNNING,
	VBD_PAUSING,		/* holding new requests, draining */
	VBD_PAUSED,
};

struct vbd_request {
	struct vd_io io;	/* what the driver sees */
	enum vbd_op op;
	int err;		/* result: 0 or a negative errno */

	/* The frontend's. */
	void (*done)(struct vbd_request *req);
	void *owner;
	uint64_t tag;
	struct vbd_request *next;	/* free for the frontend's lists
					 * once done has been called */

	/* The vbd's. */
	struct vbd *vbd;
	uint64_t start_ns;
	bool rejected;		/* failed the checks: the client's fault */
	size_t cap;		/* capacity of io.buf */
	struct vbd_request *vbd_next;	/* pool and held list */
};

struct vbd_config {
	const char *name;
	const char *image;
	const char *driver;	/* NULL: detect */
	bool read_only;
	enum vd_cache cache;
	unsigned queue_depth;
};

/* Live counters (see DESIGN.md for the names). */
struct vbd_stats {
	uint64_t reads, writes, flushes, trims, zeroes, caches, block_status;
	uint64_t bytes_read, bytes_written;
	uint64_t errors;
	uint64_t inflight, held;
	uint64_t waiting, pending, iocbs_submitted, io_submit_calls, merged;
	uint64_t connections;
	enum vbd_state state;
	uint64_t uptime_s;
	uint64_t read_lat_p50_us, read_lat_p99_us;
	uint64_t write_lat_p50_us, write_lat_p99_us;
};

int vbd_open(struct event_base *base, const struct vbd_config *cfg, struct vbd **out);
/* Closes the driver and the queue; in-flight requests must be drained. */
void vbd_close(struct vbd *vbd);

const struct vd_info *vbd_info(const struct vbd *vbd);
const char *vbd_name(const struct vbd *vbd);
const char *vbd_image(const struct vbd *vbd);
const char *vbd_driver_name(const struct vbd *vbd);
enum vd_cache vbd_cache(const struct vbd *vbd);
enum vbd_state vbd_state(const struct vbd *vbd);
const char *vbd_state_name(enum vbd_state s);

/* A request with a buffer of at least buflen bytes (0 for none).  From a
 * pool: no allocation on the hot path for buflen <= the pool's buffer
 * size.  NULL when buflen > VBD_MAX_PAYLOAD or memory is short. */
struct vbd_request *vbd_request_get(struct vbd *vbd, uint64_t buflen);
void vbd_request_put(struct vbd_request *req);

/* Fills op, offset, len, flags (and the payload for WRITE) first.  Checks
 * the request (range, read-only, capability), counts it and hands it to the
 * driver, or holds it while paused.  req->done runs exactly once, on the
 * main thread, never from inside vbd_request_submit (errors found here are
 * reported from the loop), so the frontend may submit a batch and then
 * call vbd_kick() once. */
void vbd_request_submit(struct vbd_request *req);
void vbd_kick(struct vbd *vbd);

/* Calls cb(arg) from the loop once nothing is in flight. */
typedef void vbd_cb(void *arg, int err);
void vbd_drain(struct vbd *vbd, vbd_cb *cb, void *arg);

/* Stop handing requests to the driver (new ones are held), drain, then
 * cb(arg, 0).  Idempotent.  vbd_resume runs the held requests. */
void vbd_pause(struct vbd *vbd, vbd_cb *cb, void *arg);
void vbd_resume(struct vbd *vbd);

/* Makes completed writes durable; cb(arg, err) when done. */
void vbd_flush(struct vbd *vbd, vbd_cb *cb, void *arg);

/* Only while paused: close the image and open it (or a new path) again,
 * driver detected again (unless one was forced at open).  On failure the old image stays open.  A size
 * change is refused (-EBUSY) when allow_resize is false. */
int vbd_reopen(struct vbd *vbd, const char *image, bool allow_resize);

void vbd_connection_add(struct vbd *vbd, int delta);
void vbd_get_stats(struct vbd *vbd, struct vbd_stats *s);

#endif
