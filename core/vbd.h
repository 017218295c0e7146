/* The vbd core: one virtual disk.  Frontends take requests from its pool,
 * submit them, and get them back through req->done on the main thread.
 * The vbd counts requests from submission to reply (in flight), holds
 * them while paused, keeps the statistics and owns the driver. */
#ifndef VD_VBD_H
#define VD_VBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>


struct event_base;
struct thr_limits;
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

enum vbd_req_flags {
	VBD_REQ_FUA = 1u << 0,		/* durable before the reply */
	VBD_REQ_NO_HOLE = 1u << 1,	/* WRITE_ZEROES must allocate */
	VBD_REQ_FAST_ZERO = 1u << 2,	/* WRITE_ZEROES: ENOTSUP rather than slow */
	VBD_REQ_ONE_EXTENT = 1u << 3,	/* BLOCK_STATUS: one extent is enough */
};

/* BLOCK_STATUS answers: holes read as zeroes; ZERO alone is allocated
 * but reads as zeroes. */
enum vbd_extent_flags {
	VBD_EXTENT_HOLE = 1u << 0,
	VBD_EXTENT_ZERO = 1u << 1,
};
struct vbd_extent {
	uint64_t length;
	uint32_t flags;
};

/* One request as a frontend fills it in.  The vbd's own state lives
 * behind it (core/vbd-int.h). */
struct vbd_request {
	enum vbd_op op;
	uint64_t offset;
	uint64_t len;
	unsigned flags;			/* enum vbd_req_flags */
	void *buf;			/* READ/WRITE payload, 4096-aligned */

	/* BLOCK_STATUS: the frontend points extents at max_extents entries
	 * (in buf, say); on success the vbd fills nr_extents >= 1 of them,
	 * covering a prefix of the range. */
	struct vbd_extent *extents;
	unsigned max_extents;
	unsigned nr_extents;

	int err;			/* result: 0 or a negative errno */
	uint64_t recv_ns;		/* when the frontend read it (vd_now_ns), or 0 */

	/* The frontend's. */
	void (*done)(struct vbd_request *req);
	void *owner;
	uint64_t tag;
	struct vbd_request *next;	/* free for the frontend's lists
					 * once done has been called */
};

enum vbd_cache {
	VBD_CACHE_NONE,		/* O_DIRECT */
	VBD_CACHE_WRITEBACK,	/* page cache */
};

/* Where the submit thread runs (--submit-cpu). */
enum vbd_submit_cpu {
	VBD_SUBMIT_FOLLOW,	/* on the main thread's CPU, moved when it moves */
	VBD_SUBMIT_FREE,	/* where the scheduler puts it */
};

/* What an I/O error does (QEMU's werror/rerror): answer the client, or
 * pause the disk holding the failed request (and everything after it)
 * until an operator's resume retries it. */
enum vbd_error_policy {
	VBD_ERR_REPORT,		/* the client gets the error */
	VBD_ERR_ENOSPC,		/* pause on ENOSPC, report the others */
	VBD_ERR_PAUSE,		/* pause on any error */
};

struct vbd_config {
	const char *name;
	const char *image;
	const char *driver;	/* NULL: detect */
	bool read_only;
	enum vbd_cache cache;
	unsigned queue_depth;
	unsigned poll_us;		/* the queue's poll window; 0: off */
	enum vbd_submit_cpu submit_cpu;
	const struct thr_limits *limits;	/* NULL: none */
	const char *limit_group;	/* NULL: the limits are this disk's */
	const char *rundir;		/* where limit groups live */
	uint64_t buffer_limit;		/* bytes of request buffers; 0: default */
	enum vbd_error_policy on_write_error, on_read_error;
	/* rbd driver (kept by reference: they must outlive the vbd). */
	const char *ceph_conf;		/* NULL: librados's default */
	const char *ceph_id;		/* NULL: admin */
	unsigned ceph_timeout;		/* s; 0: the driver's default */
	unsigned ceph_op_timeout;	/* s; 0: wait forever */
};

enum { VBD_DEFAULT_BUFFER_LIMIT = 256 * 1024 * 1024 };

/* What the disk is, as a frontend advertises it. */
struct vbd_info {
	uint64_t size;			/* bytes */
	uint32_t logical_block;		/* smallest unit served without RMW */
	uint32_t physical_block;	/* preferred unit */
	bool read_only;
	bool can_flush;
	bool can_fua;
	bool can_trim;
	bool can_zero;			/* efficient WRITE_ZEROES */
	bool can_fast_zero;		/* zeroing is never slower than writing */
	bool can_block_status;		/* knows holes/zeroes */
	bool is_rotational;
	bool direct;			/* O_DIRECT in effect */
};

/* Where a request's time goes, stage by stage (docs/performance.md):
 *   recv    the frontend read it -> handed to the vbd
 *   queue   the driver queued it -> the submit thread took it
 *   submit  one io_submit call (per call, not per request)
 *   device  the submit thread took it -> its completion was reaped
 *   vbd     handed to the vbd -> done (every op; reads and writes also
 *           have read_lat/write_lat)
 *   reply   done -> the reply left in a send call
 *   total   the frontend read it -> the reply left
 * queue, submit and device are the queue's (raw, vhd); a driver without
 * the queue (ram, rbd) leaves them empty. */
enum vbd_stage {
	VBD_STAGE_RECV,
	VBD_STAGE_QUEUE,
	VBD_STAGE_SUBMIT,
	VBD_STAGE_DEVICE,
	VBD_STAGE_VBD,
	VBD_STAGE_REPLY,
	VBD_STAGE_TOTAL,
	VBD_STAGES
};
struct vbd_stage_lat {
	uint64_t count, p50_us, p99_us;
};
const char *vbd_stage_name(enum vbd_stage st);

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
	uint64_t throttled, throttled_now, throttle_wait_us;
	uint64_t buffer_bytes, buffer_limit;
	const char *pause_reason;	/* "" running; "operator", or the error */
	uint64_t submit_wakeups, submit_polled, submit_moves;
	struct vbd_stage_lat stage[VBD_STAGES];
};

int vbd_open(struct event_base *base, const struct vbd_config *cfg, struct vbd **out);
/* Waits for the queue's I/O (blocking), then closes the driver and the
 * queue.  The frontends must have let go of their requests.  Never call
 * it with I/O that may not come back: exit instead. */
void vbd_close(struct vbd *vbd);

const struct vbd_info *vbd_info(const struct vbd *vbd);
const char *vbd_name(const struct vbd *vbd);
const char *vbd_image(const struct vbd *vbd);
const char *vbd_driver_name(const struct vbd *vbd);
enum vbd_cache vbd_cache(const struct vbd *vbd);
enum vbd_state vbd_state(const struct vbd *vbd);
/* Bumped when a request arrives and when it finishes: a loop that polls
 * tells "something happened" by it changing. */
uint64_t vbd_work(const struct vbd *vbd);
/* Requests handed to the driver and not yet finished. */
unsigned vbd_inflight(const struct vbd *vbd);
const char *vbd_state_name(enum vbd_state s);

/* A request with a buffer of at least buflen bytes (0 for none).  From a
 * pool: no allocation on the hot path for buflen <= the pool's buffer
 * size.  NULL when buflen > VBD_MAX_PAYLOAD or memory is short. */
struct vbd_request *vbd_request_get(struct vbd *vbd, uint64_t buflen);
void vbd_request_put(struct vbd_request *req);
/* The frontend sent req's reply at now_ns (before it puts req back):
 * counts the reply and total stages. */
void vbd_request_replied(struct vbd_request *req, uint64_t now_ns);

/* The daemon-wide buffer budget (--buffer-limit): true when a request
 * asking for len more bytes may be taken now.  Frontends apply it as
 * back-pressure (they stop reading), never by failing a request. */
bool vbd_buffer_room(const struct vbd *vbd, uint64_t len);

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

/* core/vbd-snapshot.c.  Live snapshot: pause (drain), flush, create
 * newfile as a differencing VHD child of the current image (VHD or raw),
 * reopen on it, resume when it was running.  On failure the disk stays on
 * the old image; cb gets the error and a message (NULL on success). */
typedef void vbd_snapshot_cb(void *arg, int err, const char *msg);
void vbd_snapshot(struct vbd *vbd, const char *newfile, vbd_snapshot_cb *cb, void *arg);
/* The image chain, leaf first: up to max paths and driver names. */
unsigned vbd_chain(const struct vbd *vbd, const char **paths, const char **drivers,
		   unsigned max);

void vbd_connection_add(struct vbd *vbd, int delta);

/* Why the disk is paused ("" when it is not): "operator", or the error
 * that paused it ("ENOSPC on write at offset N"). */
const char *vbd_pause_reason(const struct vbd *vbd);
/* Shutdown: from now on every error is answered, none pauses. */
void vbd_errors_report_all(struct vbd *vbd);
const char *vbd_error_policy_name(enum vbd_error_policy p);

/* I/O limits: the ones in force (the group's, in a group), and a change
 * applied at once.  Changing returns 0 or a negative errno with a
 * message in msg. */
void vbd_get_limits(struct vbd *vbd, struct thr_limits *out);
int vbd_set_limits(struct vbd *vbd, const struct thr_limits *lim, char *msg, size_t msglen);
const char *vbd_limit_group(const struct vbd *vbd);	/* NULL: none */
int vbd_limit_group_members(struct vbd *vbd);
void vbd_get_stats(struct vbd *vbd, struct vbd_stats *s);

/* Driver-specific facts about the image for info (rbd: pool, image,
 * object size, features, snapshots), one per call; a key given several
 * times is a list; number: the value is a decimal integer.  Nothing for
 * drivers that have none. */
typedef void vbd_describe_fn(void *arg, const char *key, const char *value, bool number);
void vbd_describe(struct vbd *vbd, vbd_describe_fn *fn, void *arg);

/* A named snapshot of the image in its own format (rbd: rbd_snap_create):
 * pause (unless paused already), drain, flush, snapshot, resume (only
 * when it was running).  Returns -EOPNOTSUPP when the driver cannot (cb
 * is not called), else 0 and cb(arg, err, msg) runs once from the loop,
 * msg saying what failed. */
typedef void vbd_snapshot_cb(void *arg, int err, const char *msg);
int vbd_snapshot_named(struct vbd *vbd, const char *name, vbd_snapshot_cb *cb, void *arg);

#endif
