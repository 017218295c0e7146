/* vbd internals shared by core/vbd*.c. */
#ifndef VD_VBD_INT_H
#define VD_VBD_INT_H

#include "common/latency.h"
#include "core/throttle.h"
#include "core/vbd.h"
#include "drivers/driver.h"

struct thr_group;

/* A request with the vbd's state behind the frontend's part.  The vbd
 * builds io, what the driver sees, from pub at dispatch. */
struct vbd_req {
	struct vbd_request pub;
	struct vd_io io;
	struct vbd *vbd;
	uint64_t start_ns;
	uint64_t done_ns;
	bool rejected;			/* failed the checks: the client's fault */
	size_t cap;			/* capacity of pub.buf */
	uint64_t charged;		/* bytes counted in vbd->buffer_bytes */
	struct vd_extent *drv_ext;	/* BLOCK_STATUS: the driver's answer */
	unsigned drv_ext_cap;
	struct vbd_req *vbd_next;	/* pool, held and deferred lists */
};

static inline struct vbd_req *vbd_req_of(struct vbd_request *pub)
{
	return (struct vbd_req *)((char *)pub - offsetof(struct vbd_req, pub));
}

struct vbd_waiter {
	struct vbd_waiter *next;
	vbd_cb *cb;
	void *arg;
	bool for_pause;		/* completes a pause when it fires */
};

struct vbd_counters {
	uint64_t reads, writes, flushes, trims, zeroes, caches, block_status;
	uint64_t bytes_read, bytes_written, errors;
	struct lat_hist read_lat, write_lat;
	struct lat_hist recv_lat, vbd_lat, reply_lat, total_lat;
};

/* I/O limits (core/vbd-limit.c): requests over a limit wait here, in
 * order, per direction, counted in flight; a timer lets them go. */
enum { VBD_LIMIT_READ, VBD_LIMIT_WRITE, VBD_LIMIT_DIRS };

struct vbd_limit {
	bool on;			/* limits in force (local) or a group */
	struct thr_limits lim;		/* local limits (no group) */
	struct thr_state st;
	struct thr_group *group;	/* NULL: the limits are this disk's */
	char *group_name;
	struct vbd_req *head[VBD_LIMIT_DIRS], **tail[VBD_LIMIT_DIRS];
	unsigned now;			/* requests held by a limit */
	uint64_t throttled;		/* requests held by a limit, ever */
	uint64_t wait_ns;		/* time they spent held */
	struct event *timer;
	bool timer_armed;
};

struct vbd {
	struct event_base *base;
	char *name;
	char *image;
	struct vd_image *img;
	bool driver_forced;		/* -d given: reopen keeps it */
	struct vbd_info info;		/* img's, as frontends see it */
	struct vd_open_opts open_opts;
	struct vd_env env;
	struct tqueue *q;

	enum vbd_state state;
	unsigned inflight;		/* handed to the driver, not yet done */
	uint64_t work;			/* requests arrived + finished: the poll loop's clock */
	unsigned held;			/* waiting for resume */
	struct vbd_req *held_head, **held_tail;
	/* Error policy: requests that failed and paused the disk, retried
	 * first on resume. */
	enum vbd_error_policy on_write_error, on_read_error;
	bool submit_follow;		/* --submit-cpu follow, where it pays */
	struct vbd_req *failed_head, **failed_tail;
	char pause_reason[96];

	/* Completions and errors found inside vbd_request_submit run from
	 * this event, so req->done never runs inside submit. */
	struct event *deferred_ev;
	struct vbd_req *deferred_head, **deferred_tail;
	bool in_submit;
	struct vbd_waiter *waiters;	/* drain waiters */

	struct vbd_req *pool;		/* free requests, buffers <= 128 KiB */
	struct vbd_req *pool_big;	/* free requests with larger buffers */
	uint64_t pool_big_bytes;	/* the size of those buffers */
	unsigned pool_free, pool_total;
	uint64_t buffer_bytes;		/* asked for by requests out of the pool */
	uint64_t buffer_limit;		/* the budget frontends keep to */

	uint64_t connections;
	uint64_t start_ns;
	struct vbd_counters c;
	struct vbd_limit limit;
};

void vbd_dispatch(struct vbd *vbd, struct vbd_req *req);
/* vbd_dispatch for a request already counted in flight. */
void vbd_start(struct vbd *vbd, struct vbd_req *req);
/* Dispatches req now, or holds it until its limits let it go. */
void vbd_admit(struct vbd *vbd, struct vbd_req *req);

/* core/vbd-limit.c */
int vbd_limit_init(struct vbd *vbd, const struct vbd_config *cfg);
void vbd_limit_free(struct vbd *vbd);
/* True when req was held (counted in flight); false: dispatch it now. */
bool vbd_limit_hold(struct vbd *vbd, struct vbd_req *req);
void vbd_check_drained(struct vbd *vbd);
void vbd_deferred_cb(int fd, short what, void *arg);
void vbd_pool_free_all(struct vbd *vbd);
/* vbd_reopen with a driver named (NULL: as vbd_reopen chooses). */
int vbd_reopen_driver(struct vbd *vbd, const char *image, const char *driver,
		      bool allow_resize);

#endif
