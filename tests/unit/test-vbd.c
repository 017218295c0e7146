/* The vbd core on the ram driver: checks, deferred completion, pause with
 * held requests, drain, resume cancelling a pause, flush, reopen, stats. */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/vbd.h"
#include "tests/lib/test.h"

static struct event_base *base;
static int in_submit;		/* set around vbd_request_submit */
static int done_inside_submit;
static int ndone;

static void on_done(struct vbd_request *req)
{
	if (in_submit)
		done_inside_submit++;
	ndone++;
	req->tag = 1;
}

static struct vbd_request *mkreq(struct vbd *vbd, enum vbd_op op, uint64_t off,
				 uint64_t len, uint64_t buflen)
{
	struct vbd_request *req = vbd_request_get(vbd, buflen);
	REQUIRE(req);
	req->op = op;
	req->offset = off;
	req->len = len;
	req->done = on_done;
	req->tag = 0;
	return req;
}

static void submit(struct vbd_request *req)
{
	in_submit = 1;
	vbd_request_submit(req);
	in_submit = 0;
}

static void run_until(int *counter, int want)
{
	for (int i = 0; i < 10000 && *counter < want; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* Submits one request, waits for it, returns its error. */
static int sync_io(struct vbd *vbd, enum vbd_op op, uint64_t off, uint64_t len,
		   void *data)
{
	struct vbd_request *req = mkreq(vbd, op, off, len, op <= VBD_OP_WRITE ? len : 0);
	if (op == VBD_OP_WRITE)
		memcpy(req->buf, data, len);
	int want = ndone + 1;
	submit(req);
	vbd_kick(vbd);
	run_until(&ndone, want);
	CHECK(req->tag == 1);
	int err = req->err;
	if (op == VBD_OP_READ && !err)
		memcpy(data, req->buf, len);
	vbd_request_put(req);
	return err;
}

static int cb_calls, cb_err;
static void on_cb(void *arg, int err)
{
	cb_calls++;
	cb_err = err;
	(void)arg;
}

static void test_checks(struct vbd *vbd)
{
	char buf[4096];
	uint64_t size = vbd_info(vbd)->size;

	CHECK_EQ(sync_io(vbd, VBD_OP_READ, size - 4096, 4096, buf), 0);
	CHECK_EQ(sync_io(vbd, VBD_OP_READ, size - 512, 4096, buf), -EINVAL);
	CHECK_EQ(sync_io(vbd, VBD_OP_READ, size, 1, buf), -EINVAL);
	CHECK_EQ(sync_io(vbd, VBD_OP_READ, UINT64_MAX - 10, 100, buf), -EINVAL);
	CHECK_EQ(sync_io(vbd, VBD_OP_WRITE, size - 512, 4096, buf), -ENOSPC);
	CHECK_EQ(sync_io(vbd, VBD_OP_READ, 0, 0, buf), -EINVAL);
	CHECK_EQ(sync_io(vbd, VBD_OP_TRIM, UINT64_MAX - 4095, 4096, NULL), -ENOSPC);
	CHECK_EQ(sync_io(vbd, VBD_OP_FLUSH, 0, 0, NULL), 0);
	CHECK_EQ(sync_io(vbd, VBD_OP_CACHE, 0, 4096, NULL), 0);
	CHECK_EQ(sync_io(vbd, VBD_OP_CACHE, size, 4096, NULL), -EINVAL);
	CHECK(vbd_request_get(vbd, VBD_MAX_PAYLOAD + 1ull) == NULL);
	CHECK(vbd_request_get(vbd, UINT64_MAX) == NULL);
	/* A request whose buffer is smaller than its length is refused. */
	struct vbd_request *req = mkreq(vbd, VBD_OP_READ, 0, 256 * 1024, 4096);
	int want = ndone + 1;
	submit(req);
	run_until(&ndone, want);
	CHECK_EQ(req->err, -EINVAL);
	vbd_request_put(req);
	CHECK_EQ(done_inside_submit, 0);
}

static void test_data(struct vbd *vbd)
{
	char *a = malloc(65536), *b = malloc(65536);
	for (int i = 0; i < 65536; i++)
		a[i] = (char)(i * 7 + 3);
	CHECK_EQ(sync_io(vbd, VBD_OP_WRITE, 1 << 20, 65536, a), 0);
	CHECK_EQ(sync_io(vbd, VBD_OP_READ, 1 << 20, 65536, b), 0);
	CHECK(memcmp(a, b, 65536) == 0);
	CHECK_EQ(sync_io(vbd, VBD_OP_WRITE_ZEROES, 1 << 20, 4096, NULL), 0);
	CHECK_EQ(sync_io(vbd, VBD_OP_READ, 1 << 20, 4096, b), 0);
	CHECK(b[0] == 0 && b[4095] == 0);

	/* Block status through the vbd. */
	struct vbd_extent ext[8];
	struct vbd_request *req = mkreq(vbd, VBD_OP_BLOCK_STATUS, 0, 4 << 20, 0);
	req->extents = ext;
	req->max_extents = 8;
	int want = ndone + 1;
	submit(req);
	run_until(&ndone, want);
	CHECK_EQ(req->err, 0);
	CHECK(req->nr_extents >= 1);
	vbd_request_put(req);
	free(a);
	free(b);
}

static void test_pause(struct vbd *vbd)
{
	struct vbd_request *r1, *r2;
	int want;

	/* A request in flight finishes before the pause is acknowledged. */
	r1 = mkreq(vbd, VBD_OP_WRITE, 0, 4096, 4096);
	memset(r1->buf, 0x5a, 4096);
	cb_calls = 0;
	submit(r1);
	vbd_kick(vbd);
	vbd_pause(vbd, on_cb, NULL);
	CHECK_EQ(cb_calls, 0);
	CHECK(vbd_state(vbd) == VBD_PAUSING);
	run_until(&cb_calls, 1);
	CHECK_EQ(cb_calls, 1);
	CHECK_EQ(cb_err, 0);
	CHECK(r1->tag == 1);
	CHECK(vbd_state(vbd) == VBD_PAUSED);

	/* Paused: requests are held, never failed, never reach the driver. */
	struct vbd_stats st;
	r2 = mkreq(vbd, VBD_OP_READ, 0, 4096, 4096);
	want = ndone + 1;
	submit(r2);
	vbd_kick(vbd);
	for (int i = 0; i < 50; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	CHECK(r2->tag == 0);
	vbd_get_stats(vbd, &st);
	CHECK_EQ(st.inflight, 0);
	CHECK_EQ(st.held, 1);
	CHECK(st.state == VBD_PAUSED);

	/* Idempotent pause; flush works while paused. */
	vbd_pause(vbd, on_cb, NULL);
	run_until(&cb_calls, 2);
	CHECK_EQ(cb_calls, 2);
	vbd_flush(vbd, on_cb, NULL);
	run_until(&cb_calls, 3);
	CHECK_EQ(cb_calls, 3);
	CHECK_EQ(cb_err, 0);

	/* Reopen: refused while running, works while paused. */
	vbd_resume(vbd);
	run_until(&ndone, want);
	CHECK(r2->tag == 1);
	CHECK_EQ(r2->err, 0);
	CHECK(((unsigned char *)r2->buf)[0] == 0x5a);
	vbd_request_put(r1);
	vbd_request_put(r2);

	CHECK_EQ(vbd_reopen(vbd, "8M", true), -EBUSY);
	vbd_pause(vbd, on_cb, NULL);
	run_until(&cb_calls, 4);
	CHECK_EQ(vbd_reopen(vbd, "16M", false), -EBUSY);	/* size change */
	CHECK(vbd_info(vbd)->size == 8u << 20);
	CHECK(vbd_reopen(vbd, "0", true) < 0);			/* bad: old kept */
	CHECK(vbd_info(vbd)->size == 8u << 20);
	CHECK_EQ(vbd_reopen(vbd, "16M", true), 0);
	CHECK(vbd_info(vbd)->size == 16u << 20);
	CHECK(strcmp(vbd_image(vbd), "16M") == 0);

	/* A resume while a pause drains cancels it. */
	vbd_resume(vbd);
	r1 = mkreq(vbd, VBD_OP_READ, 0, 4096, 4096);
	want = ndone + 1;
	submit(r1);
	vbd_kick(vbd);
	vbd_pause(vbd, on_cb, NULL);
	vbd_resume(vbd);
	run_until(&cb_calls, 5);
	run_until(&ndone, want);
	CHECK_EQ(cb_calls, 5);
	CHECK_EQ(cb_err, -ECANCELED);
	CHECK(vbd_state(vbd) == VBD_RUNNING);
	vbd_request_put(r1);

	vbd_drain(vbd, on_cb, NULL);
	run_until(&cb_calls, 6);
	CHECK_EQ(cb_calls, 6);
}

static void test_stats(struct vbd *vbd)
{
	struct vbd_stats st;
	vbd_get_stats(vbd, &st);
	CHECK(st.reads >= 3);
	CHECK(st.writes >= 2);
	CHECK(st.errors >= 6);
	CHECK(st.bytes_written >= 65536);
	CHECK(st.flushes >= 2);
	CHECK_EQ(st.inflight, 0);
	CHECK(st.read_lat_p99_us >= st.read_lat_p50_us);
}

static void test_read_only(void)
{
	struct vbd_config cfg = { .name = "ro", .image = "1M", .driver = "ram",
				  .read_only = true };
	struct vbd *vbd;
	char buf[512] = { 0 };
	REQUIRE(vbd_open(base, &cfg, &vbd) == 0);
	CHECK(vbd_info(vbd)->read_only);
	CHECK_EQ(sync_io(vbd, VBD_OP_WRITE, 0, 512, buf), -EPERM);
	CHECK_EQ(sync_io(vbd, VBD_OP_TRIM, 0, 512, NULL), -EPERM);
	CHECK_EQ(sync_io(vbd, VBD_OP_WRITE_ZEROES, 0, 512, NULL), -EPERM);
	CHECK_EQ(sync_io(vbd, VBD_OP_READ, 0, 512, buf), 0);
	vbd_close(vbd);
}

static void test_open_errors(void)
{
	struct vbd_config cfg = { .name = "bad", .image = "1M", .driver = "bogus" };
	struct vbd *vbd = NULL;
	CHECK(vbd_open(base, &cfg, &vbd) < 0);
	cfg.driver = "ram";
	cfg.image = "1Q";
	CHECK(vbd_open(base, &cfg, &vbd) < 0);
	cfg.driver = "raw";
	cfg.image = "/nonexistent/image";
	CHECK(vbd_open(base, &cfg, &vbd) < 0);
}

int main(void)
{
	struct vbd_config cfg = { .name = "t", .image = "8M", .driver = "ram" };
	struct vbd *vbd;

	log_init("test-vbd", LOG_LVL_WARN, LOG_SINK_STDERR);
	base = event_base_new();
	REQUIRE(base);
	REQUIRE(vbd_open(base, &cfg, &vbd) == 0);
	test_checks(vbd);
	test_data(vbd);
	test_pause(vbd);
	test_stats(vbd);
	vbd_close(vbd);
	test_read_only();
	test_open_errors();
	event_base_free(base);
	return test_done("test-vbd");
}
