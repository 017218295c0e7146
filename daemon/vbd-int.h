/* vbd internals shared by daemon/vbd*.c. */
#ifndef VD_VBD_INT_H
#define VD_VBD_INT_H

#include "daemon/latency.h"
#include "daemon/vbd.h"

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
};

struct vbd {
	struct event_base *base;
	char *name;
	char *image;
	const struct vd_driver *drv;
	bool driver_forced;		/* -d given: reopen keeps it */
	void *drv_priv;
	struct vd_info info;
	struct vd_open_opts open_opts;
	struct tqueue *q;

	enum vbd_state state;
	unsigned inflight;		/* handed to the driver, not yet done */
	unsigned held;			/* waiting for resume */
	struct vbd_request *held_head, **held_tail;

	/* Completions and errors found inside vbd_request_submit run from
	 * this event, so req->done never runs inside submit. */
	struct event *deferred_ev;
	struct vbd_request *deferred_head, **deferred_tail;
	bool in_submit;
	struct vbd_waiter *waiters;	/* drain waiters */

	struct vbd_request *pool;	/* free requests */
	unsigned pool_free, pool_total;

	uint64_t connections;
	uint64_t start_ns;
	struct vbd_counters c;
};

void vbd_dispatch(struct vbd *vbd, struct vbd_request *req);
void vbd_check_drained(struct vbd *vbd);
void vbd_deferred_cb(int fd, short what, void *arg);
void vbd_pool_free_all(struct vbd *vbd);

#endif
