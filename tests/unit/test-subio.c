/* The driver interface's sub-I/O rules (drivers/driver.h, rule 3) and the
 * image wrapper: a split request completes once, after its last piece,
 * with the first error; a child sent to a backing image (here a ram disk,
 * and a raw file through the real queue) completes its parent. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drivers/driver.h"
#include "queue/queue.h"
#include "tests/lib/test.h"

static int completions;
static int last_err;

static void on_complete(struct vd_io *io, int err)
{
	completions++;
	last_err = err;
}

/* Pieces finish in every order; the first error (in time) wins. */
static void test_split_order(void)
{
	for (unsigned mask = 0; mask < 16; mask++) {
		struct vd_io io = { .complete = on_complete };
		int errs[4];

		completions = 0;
		vd_io_split_begin(&io);
		for (int i = 0; i < 4; i++) {
			vd_io_hold(&io);
			errs[i] = (mask >> i) & 1 ? -(EIO + i) : 0;
		}
		vd_io_release(&io, 0);		/* the issuer's reference */
		CHECK_EQ(completions, 0);
		int want = 0;
		for (int i = 3; i >= 0; i--) {	/* reverse order */
			if (!want && errs[i])
				want = errs[i];
			vd_io_release(&io, errs[i]);
			CHECK_EQ(completions, i == 0 ? 1 : 0);
		}
		CHECK_EQ(completions, 1);
		CHECK_EQ(last_err, want);
	}
}

/* The issuer's own error (say ENOMEM after two pieces) still waits for
 * the pieces in flight, and is the answer if it came first. */
static void test_split_issuer_error(void)
{
	struct vd_io io = { .complete = on_complete };

	completions = 0;
	vd_io_split_begin(&io);
	vd_io_hold(&io);
	vd_io_hold(&io);
	vd_io_release(&io, -ENOMEM);
	CHECK_EQ(completions, 0);
	vd_io_release(&io, -EIO);
	vd_io_release(&io, 0);
	CHECK_EQ(completions, 1);
	CHECK_EQ(last_err, -ENOMEM);
}

/* A parent read split into children on a ram backing image. */
static void test_children_on_ram(void)
{
	struct vd_open_opts ro = { .read_only = true };
	struct vd_open_opts rw = { .read_only = false };
	struct vd_env env = { 0 };
	struct vd_image *img;
	unsigned char wbuf[8192], rbuf[8192];
	struct vd_io w = { .op = VD_OP_WRITE, .offset = 4096, .len = sizeof(wbuf),
			   .buf = wbuf, .complete = on_complete };
	struct vd_io parent = { .op = VD_OP_READ, .complete = on_complete };
	struct vd_io child[3];

	REQUIRE(vd_image_open("1M", "ram", &rw, &env, &img) == 0);
	CHECK_EQ(vd_image_info(img)->size, 1 << 20);
	CHECK_EQ(vd_image_info(img)->logical_block, 512);	/* default filled in */
	CHECK(strcmp(vd_image_driver(img)->name, "ram") == 0);
	for (size_t i = 0; i < sizeof(wbuf); i++)
		wbuf[i] = (unsigned char)(i * 7 + 1);
	completions = 0;
	CHECK_EQ(vd_image_submit(img, &w), 0);
	CHECK_EQ(completions, 1);
	CHECK_EQ(last_err, 0);

	/* Three children read [4096, 12288) in pieces of 1000, 5000, 2192. */
	completions = 0;
	memset(rbuf, 0, sizeof(rbuf));
	vd_io_split_begin(&parent);
	vd_io_child_init(&child[0], &parent, VD_OP_READ, 4096, 1000, rbuf);
	vd_io_child_init(&child[1], &parent, VD_OP_READ, 5096, 5000, rbuf + 1000);
	vd_io_child_init(&child[2], &parent, VD_OP_READ, 10096, 2192, rbuf + 6000);
	CHECK_EQ(parent.refs, 4);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(vd_image_submit(img, &child[i]), 0);
	CHECK_EQ(completions, 0);		/* the issuer still holds it */
	vd_io_release(&parent, 0);
	CHECK_EQ(completions, 1);
	CHECK_EQ(last_err, 0);
	CHECK(memcmp(rbuf, wbuf, sizeof(wbuf)) == 0);
	vd_image_close(img);

	/* Read-only is forced on the image; bad driver, bad image. */
	REQUIRE(vd_image_open("1M", "ram", &ro, &env, &img) == 0);
	CHECK(vd_image_info(img)->read_only);
	vd_image_close(img);
	CHECK_EQ(vd_image_open("1M", "nosuch", &ro, &env, &img), -EINVAL);
	CHECK_EQ(vd_image_open("0", "ram", &ro, &env, &img), -EINVAL);
}

/* Children on a raw backing file complete through the real queue, on the
 * main thread, in any order; the parent gets the first error. */
static void test_children_on_raw(void)
{
	char dir[] = "/tmp/test-subio.XXXXXX", path[64];
	static unsigned char data[65536] __attribute__((aligned(4096)));
	static unsigned char buf[65536] __attribute__((aligned(4096)));
	struct vd_open_opts opts = { .read_only = true, .cache = VD_CACHE_WRITEBACK };
	struct event_base *base = event_base_new();
	struct tq_options qo;
	struct tqueue *q;
	struct vd_image *img;
	struct vd_io parent = { .op = VD_OP_READ, .complete = on_complete };
	struct vd_io child[16];
	int fd;

	REQUIRE(base && mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/img", dir);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i ^ (i >> 8));
	fd = open(path, O_RDWR | O_CREAT, 0600);
	REQUIRE(fd >= 0 && pwrite(fd, data, sizeof(data), 0) == (ssize_t)sizeof(data));
	close(fd);
	tq_options_default(&qo);
	REQUIRE(tq_create(base, &qo, &q) == 0);
	struct vd_env env = { .base = base, .q = q };
	REQUIRE(vd_image_open(path, NULL, &opts, &env, &img) == 0);
	CHECK(strcmp(vd_image_driver(img)->name, "raw") == 0);

	completions = 0;
	vd_io_split_begin(&parent);
	for (int i = 0; i < 16; i++) {
		vd_io_child_init(&child[i], &parent, VD_OP_READ, (uint64_t)i * 4096, 4096,
				 buf + (size_t)i * 4096);
		CHECK_EQ(vd_image_submit(img, &child[i]), 0);
	}
	vd_io_release(&parent, 0);
	tq_kick(q);
	while (completions == 0)
		tq_wait(q);
	CHECK_EQ(completions, 1);
	CHECK_EQ(last_err, 0);
	CHECK(memcmp(buf, data, sizeof(data)) == 0);

	vd_image_close(img);
	tq_destroy(q);
	event_base_free(base);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	test_split_order();
	test_split_issuer_error();
	test_children_on_ram();
	test_children_on_raw();
	return test_done("test-subio");
}
