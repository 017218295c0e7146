/* The vhd driver on the real queue, through vd_image_open/vd_image_submit
 * as the vbd uses it, against a byte model: a three-deep chain (raw base,
 * dynamic VHD, differencing leaf) with small blocks so that the bitmap
 * cache evicts; random reads, writes (some FUA), write zeroes, flushes
 * and block status in concurrent batches, with both cache modes; then a
 * close and reopen that must read the same bytes; then a fixed image.
 * Writes and write zeroes at any byte (read-modify-writes of partial
 * sectors), also several sharing a sector at once, with their old
 * contents from the parent, the leaf and zeroes.  TRIM: a dynamic image
 * reads zeroes and deallocates whole blocks; a differencing one keeps its
 * data.  Also: concurrent writes into one unallocated block allocate it
 * once. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "drivers/driver.h"
#include "drivers/vhd-create.h"
#include "drivers/vhd-probe.h"
#include "queue/queue.h"
#include "tests/lib/test.h"

struct req {
	struct vd_io io;
	bool done;
	int err;
	struct vd_extent ext[64];
};

static struct event_base *base;
static char tmpdir[4096];

static void on_complete(struct vd_io *io, int err)
{
	struct req *r = (struct req *)io;

	if (r->done) {
		fprintf(stderr, "request completed twice\n");
		test_failures++;
	}
	r->done = true;
	r->err = err;
}

static struct req *req_new(enum vd_op op, uint64_t off, uint64_t len, unsigned flags)
{
	struct req *r = calloc(1, sizeof(*r));
	void *buf = NULL;

	REQUIRE(r);
	if (op == VD_OP_READ || op == VD_OP_WRITE)
		REQUIRE(posix_memalign(&buf, 4096, len) == 0);
	r->io = (struct vd_io){
		.op = op, .offset = off, .len = len, .flags = flags, .buf = buf,
		.extents = r->ext, .max_extents = 64, .complete = on_complete,
	};
	return r;
}

static void req_free(struct req *r)
{
	free(r->io.buf);
	free(r);
}

static void req_start(struct vd_image *img, struct req *r)
{
	int err = vd_image_submit(img, &r->io);

	if (err) {
		CHECK(!r->done);
		r->done = true;
		r->err = err < 0 ? err : 0;
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void wait_all(struct tqueue *q, struct req **reqs, int n)
{
	double deadline = now_s() + 30;

	tq_kick(q);
	for (;;) {
		int left = 0;

		for (int i = 0; i < n; i++)
			left += !reqs[i]->done;
		if (!left)
			return;
		if (now_s() > deadline) {
			fprintf(stderr, "%d request(s) never completed\n", left);
			exit(1);
		}
		event_base_loop(base, EVLOOP_ONCE);
	}
}

static uint64_t rnd(uint64_t n)
{
	return ((uint64_t)random() << 31 ^ (uint64_t)random()) % n;
}

static void fill(unsigned char *buf, uint64_t len)
{
	uint32_t x = (uint32_t)random() | 1;

	for (uint64_t b = 0; b < len; b++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[b] = (unsigned char)(x | 1);
	}
}

/* A WRITE of fresh data at off, copied into the model as well. */
static struct req *req_write_model(unsigned char *model, uint64_t off, uint64_t len,
				   unsigned flags)
{
	struct req *r = req_new(VD_OP_WRITE, off, len, flags);

	fill(r->io.buf, len);
	memcpy(model + off, r->io.buf, len);
	return r;
}

static int open_img(const char *path, struct tqueue *q, enum vd_cache cache, bool ro,
		    struct vd_image **img)
{
	struct vd_open_opts o = { .read_only = ro, .cache = cache };
	struct vd_env env = { .base = base, .q = q };

	return vd_image_open(path, NULL, &o, &env, img);
}

static int run1(struct vd_image *img, struct tqueue *q, struct req *r)
{
	req_start(img, r);
	wait_all(q, &r, 1);
	return r->err;
}

/* Reads the whole disk in 1 MiB pieces and compares with the model. */
static void verify_all(struct vd_image *img, struct tqueue *q, const unsigned char *model,
		       uint64_t size, const char *what)
{
	for (uint64_t off = 0; off < size; off += 1 << 20) {
		uint64_t len = size - off < (1 << 20) ? size - off : (1 << 20);
		struct req *r = req_new(VD_OP_READ, off, len, 0);

		CHECK_EQ(run1(img, q, r), 0);
		if (memcmp(r->io.buf, model + off, len)) {
			fprintf(stderr, "%s: mismatch in [%llu, +%llu)\n", what,
				(unsigned long long)off, (unsigned long long)len);
			test_failures++;
			req_free(r);
			return;
		}
		req_free(r);
	}
}

/* What a close left in the file: open it read-only and compare. */
static void verify_reopened(const char *path, struct tqueue *q, enum vd_cache cache,
			    const unsigned char *model, uint64_t size, const char *what)
{
	struct vd_image *img;

	REQUIRE(open_img(path, q, cache, true, &img) == 0);
	verify_all(img, q, model, size, what);
	vd_image_close(img);
}

/* Block status must agree with the model where it says zero. */
static void check_status(struct vd_image *img, struct tqueue *q, const unsigned char *model,
			 uint64_t size)
{
	for (int k = 0; k < 20; k++) {
		uint64_t off = rnd(size / 512) * 512, len = (rnd(64) + 1) * 4096;
		struct req *r;
		uint64_t pos;

		if (len > size - off)
			len = size - off;
		r = req_new(VD_OP_BLOCK_STATUS, off, len, 0);
		CHECK_EQ(run1(img, q, r), 0);
		CHECK(r->io.nr_extents >= 1);
		pos = off;
		for (unsigned i = 0; i < r->io.nr_extents; i++) {
			if (r->ext[i].flags & VD_EXTENT_ZERO) {
				for (uint64_t b = pos; b < pos + r->ext[i].length; b++)
					if (model[b]) {
						fprintf(stderr, "status says zero at %llu\n",
							(unsigned long long)b);
						test_failures++;
						break;
					}
			}
			pos += r->ext[i].length;
		}
		CHECK(pos > off && pos <= off + len);
		req_free(r);
	}
}

enum {
	RB_UNALIGNED = 1,	/* writes and zeroes at any byte */
	RB_TRIM_ZERO = 2,	/* trims; whole sectors inside read as zeroes after */
	RB_TRIM_KEEP = 4,	/* trims; the data stays (a differencing image) */
};

/* Batches of concurrent random requests that never overlap each other
 * within a batch (overlapping concurrent writes have no defined result);
 * with RB_UNALIGNED, requests in one batch often share a sector without
 * sharing a byte, which the read-modify-write must keep apart. */
static void random_batches(struct vd_image *img, struct tqueue *q, unsigned char *model,
			   uint64_t size, int batches, unsigned how)
{
	for (int b = 0; b < batches; b++) {
		struct req *reqs[16];
		uint64_t lo[16], hi[16];
		int n = 0;

		for (int i = 0; i < 16; i++) {
			uint64_t off = rnd(size / 512) * 512;
			uint64_t len = (rnd(64) + 1) * 512;
			int kind = (int)rnd(20);
			bool clash = false;

			if ((how & RB_UNALIGNED) && rnd(2)) {
				off += rnd(512);
				len = rnd(3) ? rnd(600) + 1 : len - rnd(511);
				/* Cluster them: neighbours in one sector. */
				if (n && rnd(2))
					off = hi[n - 1] + rnd(3);
			}
			if (off >= size)
				continue;
			if (len > size - off)
				len = size - off;
			for (int j = 0; j < n; j++)
				clash |= off < hi[j] && lo[j] < off + len;
			if (clash)
				continue;
			if (kind < 8) {
				reqs[n] = req_write_model(model, off, len,
							  kind == 0 ? VD_IO_FUA : 0);
			} else if (kind < 10) {
				reqs[n] = req_new(VD_OP_WRITE_ZEROES, off, len, 0);
				memset(model + off, 0, len);
			} else if (kind < 11) {
				reqs[n] = req_new(VD_OP_FLUSH, 0, 0, 0);
				len = 0;
			} else if (kind < 13 && (how & (RB_TRIM_ZERO | RB_TRIM_KEEP))) {
				uint64_t a = (off + 511) & ~(uint64_t)511;
				uint64_t z = (off + len) & ~(uint64_t)511;

				/* Now and then a whole 64 KiB block or more. */
				if (rnd(3) == 0) {
					off = off & ~(uint64_t)0xffff;
					len = (rnd(3) + 1) << 16;
					if (len > size - off)
						len = size - off;
					a = off;
					z = off + len;
					clash = false;
					for (int j = 0; j < n; j++)
						clash |= off < hi[j] && lo[j] < off + len;
					if (clash)
						continue;
				}
				reqs[n] = req_new(VD_OP_TRIM, off, len, 0);
				if ((how & RB_TRIM_ZERO) && a < z)
					memset(model + a, 0, z - a);
			} else {
				reqs[n] = req_new(VD_OP_READ, off, len, 0);
				reqs[n]->io.drv_u64[0] = 1;
			}
			lo[n] = off;
			hi[n] = off + len;
			req_start(img, reqs[n]);
			n++;
		}
		wait_all(q, reqs, n);
		for (int i = 0; i < n; i++) {
			CHECK_EQ(reqs[i]->err, 0);
			if (reqs[i]->io.op == VD_OP_READ &&
			    memcmp(reqs[i]->io.buf, model + reqs[i]->io.offset, reqs[i]->io.len)) {
				fprintf(stderr, "read mismatch at %llu+%llu\n",
					(unsigned long long)reqs[i]->io.offset,
					(unsigned long long)reqs[i]->io.len);
				test_failures++;
			}
			req_free(reqs[i]);
		}
	}
}

static void test_chain(struct tqueue *q, enum vd_cache cache)
{
	const uint64_t size = 8 << 20;
	char rawp[4200], midp[4200], leafp[4200], msg[512];
	unsigned char *model = malloc(size);
	struct vd_image *img;
	int fd;

	REQUIRE(model);
	snprintf(rawp, sizeof(rawp), "%s/base-%d.raw", tmpdir, cache);
	snprintf(midp, sizeof(midp), "%s/mid-%d.vhd", tmpdir, cache);
	snprintf(leafp, sizeof(leafp), "%s/leaf-%d.vhd", tmpdir, cache);
	fill(model, size);
	fd = open(rawp, O_RDWR | O_CREAT | O_TRUNC, 0644);
	REQUIRE(fd >= 0 && pwrite(fd, model, size, 0) == (ssize_t)size);
	close(fd);
	/* raw <- dynamic-over-raw (differencing) <- leaf; 4 KiB blocks so
	 * that 2048 blocks overflow the 64-entry minimum... with 512-byte
	 * bitmaps the cache holds 8192: use 64 KiB blocks and many writes. */
	REQUIRE(vhd_create(midp, 0, VHD_TYPE_DIFF, 64 << 10, rawp, msg, sizeof(msg)) == 0);
	REQUIRE(open_img(midp, q, cache, false, &img) == 0);
	CHECK_EQ(vd_image_info(img)->size, size);
	random_batches(img, q, model, size, 60, RB_UNALIGNED | RB_TRIM_KEEP);
	verify_all(img, q, model, size, "mid");
	vd_image_close(img);
	REQUIRE(vhd_create(leafp, 0, VHD_TYPE_DIFF, 512 << 10, midp, msg, sizeof(msg)) == 0);
	REQUIRE(open_img(leafp, q, cache, false, &img) == 0);
	CHECK(vd_image_backing(img) != NULL);
	verify_all(img, q, model, size, "leaf before writes");
	random_batches(img, q, model, size, 80, RB_UNALIGNED | RB_TRIM_KEEP);
	check_status(img, q, model, size);
	verify_all(img, q, model, size, "leaf");
	vd_image_close(img);
	/* Everything written survives a close and an open. */
	verify_reopened(leafp, q, cache, model, size, "leaf reopened");
	free(model);
}

/* Blocks in the BAT of the image at p (its footer must be the end one);
 * bat_out, when given, gets the BAT. */
static int count_allocated(const char *p, uint32_t **bat_out)
{
	char msg[512];
	struct vhd_image_meta m;
	uint32_t *bat;
	int fd = open(p, O_RDONLY), used = 0;

	REQUIRE(fd >= 0);
	REQUIRE(vhd_probe_fd(fd, p, &m, msg, sizeof(msg)) == 0);
	CHECK(!m.footer_from_copy);
	REQUIRE(vhd_bat_load(fd, p, &m, &bat, msg, sizeof(msg)) == 0);
	for (uint32_t i = 0; i < m.bat_entries; i++)
		used += bat[i] != VHD_BAT_UNUSED;
	close(fd);
	if (bat_out)
		*bat_out = bat;
	else
		free(bat);
	return used;
}

/* Writes racing for one unallocated block: one allocation. */
static void test_one_alloc(struct tqueue *q)
{
	char p[4200], msg[512];
	struct vd_image *img;
	struct req *reqs[8];
	uint32_t *bat;

	snprintf(p, sizeof(p), "%s/race.vhd", tmpdir);
	REQUIRE(vhd_create(p, 16 << 20, VHD_TYPE_DYNAMIC, 0, NULL, msg, sizeof(msg)) == 0);
	REQUIRE(open_img(p, q, VD_CACHE_NONE, false, &img) == 0);
	for (int i = 0; i < 8; i++) {
		reqs[i] = req_new(VD_OP_WRITE, (2 << 20) + i * 8192, 8192, 0);
		memset(reqs[i]->io.buf, 'a' + i, 8192);
		req_start(img, reqs[i]);
	}
	/* And a read of the block while it is being allocated. */
	wait_all(q, reqs, 8);
	for (int i = 0; i < 8; i++) {
		CHECK_EQ(reqs[i]->err, 0);
		req_free(reqs[i]);
	}
	reqs[0] = req_new(VD_OP_FLUSH, 0, 0, 0);
	CHECK_EQ(run1(img, q, reqs[0]), 0);
	req_free(reqs[0]);
	vd_image_close(img);
	CHECK_EQ(count_allocated(p, &bat), 1);
	CHECK(bat[1] != VHD_BAT_UNUSED);
	free(bat);
}

/* A dynamic image (no parent): unaligned writes and trims whose sectors
 * must read back as zeroes, with block status saying holes. */
static void test_dynamic_trim(struct tqueue *q, enum vd_cache cache)
{
	const uint64_t size = 8 << 20;
	char p[4200], msg[512];
	unsigned char *model = calloc(1, size);
	struct vd_image *img;
	struct req *r;
	uint32_t *bat;

	REQUIRE(model);
	snprintf(p, sizeof(p), "%s/dyn-%d.vhd", tmpdir, cache);
	REQUIRE(vhd_create(p, size, VHD_TYPE_DYNAMIC, 64 << 10, NULL, msg, sizeof(msg)) == 0);
	REQUIRE(open_img(p, q, cache, false, &img) == 0);
	random_batches(img, q, model, size, 80, RB_UNALIGNED | RB_TRIM_ZERO);
	check_status(img, q, model, size);
	verify_all(img, q, model, size, "dynamic");

	/* Whole blocks: written, then trimmed in two halves and whole. */
	r = req_new(VD_OP_WRITE, 0, 4 << 16, 0);
	memset(r->io.buf, 0x5a, 4 << 16);
	CHECK_EQ(run1(img, q, r), 0);
	req_free(r);
	memset(model, 0x5a, 4 << 16);
	r = req_new(VD_OP_TRIM, 0, 1 << 15, 0);		/* half of block 0 */
	CHECK_EQ(run1(img, q, r), 0);
	req_free(r);
	r = req_new(VD_OP_TRIM, (1 << 15) - 100, (1 << 15) + 100, 0);	/* the rest */
	CHECK_EQ(run1(img, q, r), 0);
	req_free(r);
	r = req_new(VD_OP_TRIM, 2 << 16, 2 << 16, 0);	/* blocks 2 and 3 whole */
	CHECK_EQ(run1(img, q, r), 0);
	req_free(r);
	memset(model, 0, 1 << 16);
	memset(model + (2 << 16), 0, 2 << 16);
	r = req_new(VD_OP_BLOCK_STATUS, 0, 1 << 16, 0);
	CHECK_EQ(run1(img, q, r), 0);
	CHECK_EQ(r->io.nr_extents, 1);
	CHECK_EQ(r->ext[0].flags, VD_EXTENT_HOLE | VD_EXTENT_ZERO);
	CHECK_EQ(r->ext[0].length, 1 << 16);
	req_free(r);
	r = req_new(VD_OP_FLUSH, 0, 0, 0);
	CHECK_EQ(run1(img, q, r), 0);
	req_free(r);
	verify_all(img, q, model, size, "dynamic after whole-block trims");
	/* Written again after the trim: a new block, the data reads back. */
	r = req_new(VD_OP_WRITE, (2 << 16) + 512, 4096, 0);
	memset(r->io.buf, 0x77, 4096);
	memset(model + (2 << 16) + 512, 0x77, 4096);
	CHECK_EQ(run1(img, q, r), 0);
	req_free(r);
	vd_image_close(img);
	count_allocated(p, &bat);
	CHECK_EQ(bat[0], VHD_BAT_UNUSED);
	CHECK(bat[1] != VHD_BAT_UNUSED);
	CHECK(bat[2] != VHD_BAT_UNUSED);
	CHECK_EQ(bat[3], VHD_BAT_UNUSED);
	free(bat);
	verify_reopened(p, q, cache, model, size, "dynamic reopened");
	free(model);
}

/* Concurrent writes sharing sectors but not bytes, into sectors whose old
 * contents come from the parent (unallocated in the leaf), from the leaf,
 * and across a block boundary; plus whole-sector writes next to them. */
static void test_rmw_overlap(struct tqueue *q)
{
	const uint64_t size = 4 << 20;
	char rawp[4200], p[4200], msg[512];
	unsigned char *model = malloc(size);
	struct vd_image *img;
	struct req *reqs[64];
	int fd, n = 0;

	REQUIRE(model);
	fill(model, size);
	snprintf(rawp, sizeof(rawp), "%s/rmw-base.raw", tmpdir);
	snprintf(p, sizeof(p), "%s/rmw.vhd", tmpdir);
	fd = open(rawp, O_RDWR | O_CREAT | O_TRUNC, 0644);
	REQUIRE(fd >= 0 && pwrite(fd, model, size, 0) == (ssize_t)size);
	close(fd);
	REQUIRE(vhd_create(p, 0, VHD_TYPE_DIFF, 512 << 10, rawp, msg, sizeof(msg)) == 0);
	REQUIRE(open_img(p, q, VD_CACHE_NONE, false, &img) == 0);
	for (int round = 0; round < 3; round++) {
		/* Round 0: parent's sectors; then the leaf's (allocated, bits
		 * set by round 0). */
		uint64_t bases[3] = { 4096, (512 << 10) - 512, (2 << 20) + 1000 };

		n = 0;
		for (int k = 0; k < 3; k++) {
			for (int i = 0; i < 16; i++) {
				uint64_t off = bases[k] + (uint64_t)i * 61 + (uint64_t)round * 7;
				uint64_t len = i == 15 ? 3 : 61;

				reqs[n] = req_write_model(model, off, len, i == 3 ? VD_IO_FUA : 0);
				req_start(img, reqs[n++]);
			}
			/* A whole sector beside them, in flight with them. */
			reqs[n] = req_write_model(model, (bases[k] & ~(uint64_t)511) + 2048, 512, 0);
			req_start(img, reqs[n++]);
		}
		wait_all(q, reqs, n);
		for (int i = 0; i < n; i++) {
			CHECK_EQ(reqs[i]->err, 0);
			req_free(reqs[i]);
		}
		verify_all(img, q, model, size, "concurrent partial-sector writes");
	}
	vd_image_close(img);
	verify_reopened(p, q, VD_CACHE_WRITEBACK, model, size, "partial-sector writes reopened");
	free(model);
}

static void test_fixed(struct tqueue *q)
{
	const uint64_t size = 3 << 20;
	char p[4200], msg[512];
	unsigned char *model = calloc(1, size);
	struct vd_image *img;

	snprintf(p, sizeof(p), "%s/fixed.vhd", tmpdir);
	REQUIRE(vhd_create(p, size, VHD_TYPE_FIXED, 0, NULL, msg, sizeof(msg)) == 0);
	REQUIRE(open_img(p, q, VD_CACHE_NONE, false, &img) == 0);
	CHECK(strcmp(vd_image_driver(img)->name, "vhd") == 0);
	CHECK_EQ(vd_image_info(img)->size, size);
	random_batches(img, q, model, size, 20, RB_UNALIGNED);
	vd_image_close(img);
	verify_reopened(p, q, VD_CACHE_WRITEBACK, model, size, "fixed reopened");
	free(model);
}

int main(void)
{
	struct tq_options o;
	struct tqueue *q;
	const char *t = getenv("TESTS_TMP");

	log_init("test-vhd-driver", LOG_LVL_WARN, LOG_SINK_STDERR);
	srandom(12345);
	snprintf(tmpdir, sizeof(tmpdir), "%s/test-vhd-driver.XXXXXX", t ? t : "/tmp");
	REQUIRE(mkdtemp(tmpdir));
	base = event_base_new();
	REQUIRE(base);
	tq_options_default(&o);
	o.depth = 32;
	REQUIRE(tq_create(base, &o, &q) == 0);
	test_chain(q, VD_CACHE_NONE);
	test_chain(q, VD_CACHE_WRITEBACK);
	test_one_alloc(q);
	test_dynamic_trim(q, VD_CACHE_NONE);
	test_dynamic_trim(q, VD_CACHE_WRITEBACK);
	test_rmw_overlap(q);
	test_fixed(q);
	tq_destroy(q);
	event_base_free(base);
	{
		char cmd[4300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "cleanup failed\n");
	}
	return test_done("test-vhd-driver");
}
