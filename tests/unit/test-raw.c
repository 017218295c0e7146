/* The raw driver on the real queue, against a byte model: thousands of
 * random aligned and unaligned reads and writes in concurrent batches, with
 * cache none and writeback; neighbouring unaligned writes in one block;
 * trim, write zeroes and block status; FUA; open errors.
 *
 * The same file builds the parts that need something of the machine, each
 * its own program so that one that cannot run says so (exit 77) instead of
 * passing: test-raw-tmpfs (a tmpfs at /dev/shm), test-raw-loop (root and a
 * free loop device), test-raw-eacces (a user the file's mode refuses), test-raw-status
 * (block status: a filesystem that punches holes, at $TESTS_TMP).
 * Each defines RAW_SUITE and includes this file. */
#ifndef RAW_SUITE
#define RAW_SUITE RAW_SUITE_FILE
#endif
#define RAW_SUITE_FILE		0
#define RAW_SUITE_TMPFS		1
#define RAW_SUITE_LOOP		2
#define RAW_SUITE_EACCES	3
#define RAW_SUITE_STATUS	4
#define SKIP		77
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/loop.h>
#include <linux/magic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "drivers/driver.h"
#include "drivers/raw-int.h"	/* struct raw: the descriptor close must unlock */
#include "queue/queue.h"
#include "tests/lib/test.h"

enum op { OP_READ, OP_WRITE, OP_FLUSH, OP_TRIM, OP_ZERO, OP_STATUS };

struct req {
	struct vd_io io;
	enum op op;
	bool done;
	int err;
	struct vd_extent ext[32];
};

static struct event_base *base;
static struct event *tick;
static char tmpdir[4096];
static const struct vd_driver *drv = &vd_raw_driver;

static void on_complete(struct vd_io *io, int err)
{
	struct req *r = (struct req *)((char *)io - offsetof(struct req, io));

	if (r->done) {
		fprintf(stderr, "request completed twice\n");
		test_failures++;
	}
	r->done = true;
	r->err = err;
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {}

static struct req *req_new(enum op op, uint64_t off, uint64_t len, unsigned flags)
{
	struct req *r = calloc(1, sizeof(*r));
	void *buf = NULL;

	REQUIRE(r);
	if (op == OP_READ || op == OP_WRITE)
		REQUIRE(posix_memalign(&buf, 4096, len ? len : 1) == 0);
	r->op = op;
	r->io = (struct vd_io){
		.offset = off, .len = len, .flags = flags, .buf = buf,
		.extents = r->ext, .max_extents = 32, .complete = on_complete,
	};
	return r;
}

static void req_free(struct req *r)
{
	free(r->io.buf);
	free(r);
}

/* Hands r to the driver the way the vbd does: an immediate error is the
 * request's result. */
static void req_start(void *priv, struct req *r)
{
	int err = -1;

	switch (r->op) {
	case OP_READ:	err = drv->read(priv, &r->io); break;
	case OP_WRITE:	err = drv->write(priv, &r->io); break;
	case OP_FLUSH:	err = drv->flush(priv, &r->io); break;
	case OP_TRIM:	err = drv->trim(priv, &r->io); break;
	case OP_ZERO:	err = drv->write_zeroes(priv, &r->io); break;
	case OP_STATUS:	err = drv->block_status(priv, &r->io); break;
	}
	if (err) {
		CHECK(!r->done);
		r->done = true;
		r->err = err;
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs the loop until every request in reqs is done (30 s at most). */
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

static int run1(void *priv, struct tqueue *q, struct req *r)
{
	req_start(priv, r);
	wait_all(q, &r, 1);
	return r->err;
}

static int sync_rw(void *priv, struct tqueue *q, enum op op, uint64_t off,
		   uint64_t len, void *data, unsigned flags)
{
	struct req *r = req_new(op, off, len, flags);
	int err;

	if (op == OP_WRITE)
		memcpy(r->io.buf, data, len);
	err = run1(priv, q, r);
	if (op == OP_READ && !err)
		memcpy(data, r->io.buf, len);
	req_free(r);
	return err;
}

static int sync_op(void *priv, struct tqueue *q, enum op op, uint64_t off,
		   uint64_t len, unsigned flags)
{
	struct req *r = req_new(op, off, len, flags);
	int err = run1(priv, q, r);

	req_free(r);
	return err;
}

static struct tqueue *queue_new(bool no_fast)
{
	struct tq_options o;
	struct tqueue *q;

	tq_options_default(&o);
	o.depth = 32;
	/* The slow paths of the queue: FUA as write + flush, fdatasync on
	 * the worker, io_getevents. */
	o.no_rwf_dsync = o.no_fdsync = o.no_user_ring = no_fast;
	REQUIRE(tq_create(base, &o, &q) == 0);
	return q;
}

static int open_raw(const char *path, struct tqueue *q, enum vd_cache cache,
		    bool ro, struct vd_info *info, void **priv)
{
	struct vd_open_opts o = { .read_only = ro, .cache = cache };
	struct vd_env env = { .q = q };

	memset(info, 0, sizeof(*info));
	return drv->open(path, &o, &env, info, priv);
}

static void make_file(const char *path, uint64_t size, const unsigned char *data)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	REQUIRE(fd >= 0);
	REQUIRE(ftruncate(fd, (off_t)size) == 0);
	if (data)
		REQUIRE(pwrite(fd, data, size, 0) == (ssize_t)size);
	close(fd);
}

/* Close drops the image's locks itself: a completed iocb can keep the
 * file description alive for a moment after close(2), and with it its
 * OFD locks.  A dup of the driver's descriptor stands in for that. */
static void test_close_unlocks(struct tqueue *q)
{
	char path[4200];
	struct vd_info info;
	void *priv, *again;
	int held, err;

	snprintf(path, sizeof(path), "%s/close-unlocks", tmpdir);
	make_file(path, 1 << 20, NULL);
	REQUIRE(open_raw(path, q, VD_CACHE_WRITEBACK, false, &info, &priv) == 0);
	held = dup(((struct raw *)priv)->fd);
	REQUIRE(held >= 0);
	drv->close(priv);
	err = open_raw(path, q, VD_CACHE_WRITEBACK, false, &info, &again);
	CHECK_EQ(err, 0);
	if (err == 0)
		drv->close(again);
	close(held);
	unlink(path);
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

/* ---- Open errors ------------------------------------------------------- */

static void test_open_errors(struct tqueue *q)
{
	char path[4200];
	struct vd_info info;
	void *priv = NULL;

	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	CHECK_EQ(open_raw(path, q, VD_CACHE_NONE, false, &info, &priv), -ENOENT);
	CHECK_EQ(open_raw(path, q, VD_CACHE_WRITEBACK, true, &info, &priv), -ENOENT);
	/* A directory, read-only (opens) and read-write (open refuses). */
	CHECK_EQ(open_raw(tmpdir, q, VD_CACHE_NONE, true, &info, &priv), -EISDIR);
	CHECK_EQ(open_raw(tmpdir, q, VD_CACHE_WRITEBACK, false, &info, &priv), -EISDIR);
	/* Empty. */
	snprintf(path, sizeof(path), "%s/empty", tmpdir);
	make_file(path, 0, NULL);
	CHECK_EQ(open_raw(path, q, VD_CACHE_NONE, false, &info, &priv), -EINVAL);
	CHECK_EQ(open_raw(path, q, VD_CACHE_WRITEBACK, true, &info, &priv), -EINVAL);
	unlink(path);
	/* Neither a file nor a block device; a FIFO must not block the open
	 * waiting for a writer (tests/run's timeout would catch a hang). */
	CHECK_EQ(open_raw("/dev/null", q, VD_CACHE_WRITEBACK, false, &info, &priv), -EINVAL);
	snprintf(path, sizeof(path), "%s/fifo", tmpdir);
	REQUIRE(mkfifo(path, 0600) == 0);
	CHECK_EQ(open_raw(path, q, VD_CACHE_NONE, true, &info, &priv), -EINVAL);
	CHECK_EQ(open_raw(path, q, VD_CACHE_WRITEBACK, true, &info, &priv), -EINVAL);
	CHECK_EQ(open_raw(path, q, VD_CACHE_WRITEBACK, false, &info, &priv), -EINVAL);
	unlink(path);
	CHECK(priv == NULL);
}

/* Drops the capabilities that let root read any file (the effective set
 * only; this process is a throw-away child).  No libcap: one syscall. */
static int drop_dac_caps(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	d[CAP_DAC_OVERRIDE / 32].effective &= ~(1u << (CAP_DAC_OVERRIDE % 32));
	d[CAP_DAC_READ_SEARCH / 32].effective &= ~(1u << (CAP_DAC_READ_SEARCH % 32));
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

/* An unreadable file is -EACCES.  Root reads anything, so as root the
 * open runs in a child without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH. */
static int test_eacces(void)
{
	char path[4200];
	struct vd_info info;
	void *priv = NULL;
	int status;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/unreadable", tmpdir);
	make_file(path, 4096, NULL);
	REQUIRE(chmod(path, 0) == 0);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		/* No queue in the child: the open fails before any I/O, and
		 * the parent's queue threads do not exist here. */
		if (geteuid() == 0 && drop_dac_caps() < 0) {
			fprintf(stderr, "test-raw-eacces: skipped: cannot drop "
				"CAP_DAC_OVERRIDE as root: %s\n", strerror(errno));
			_exit(SKIP);
		}
		int a = open_raw(path, NULL, VD_CACHE_NONE, false, &info, &priv);
		int b = open_raw(path, NULL, VD_CACHE_NONE, true, &info, &priv);
		if (a != -EACCES || b != -EACCES) {
			fprintf(stderr, "unreadable file: open %d / %d, want %d\n",
				a, b, -EACCES);
			_exit(1);
		}
		_exit(priv == NULL ? 0 : 1);
	}
	REQUIRE(waitpid(pid, &status, 0) == pid);
	unlink(path);
	REQUIRE(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Read-only: reads work, the capabilities say no writes of any kind. */
static void test_read_only(struct tqueue *q)
{
	char path[4200];
	unsigned char data[8192], back[8192];
	struct vd_info info;
	void *priv;

	snprintf(path, sizeof(path), "%s/ro", tmpdir);
	fill(data, sizeof(data));
	make_file(path, sizeof(data), data);
	REQUIRE(chmod(path, 0444) == 0);
	for (int cache = 0; cache < 2; cache++) {
		REQUIRE(open_raw(path, q, cache, true, &info, &priv) == 0);
		CHECK(info.read_only);
		CHECK(!info.can_trim && !info.can_zero && !info.can_fast_zero);
		CHECK_EQ(info.size, sizeof(data));
		CHECK_EQ(sync_rw(priv, q, OP_READ, 100, 5000, back, 0), 0);
		CHECK(memcmp(back, data + 100, 5000) == 0);
		CHECK_EQ(sync_op(priv, q, OP_FLUSH, 0, 0, 0), 0);
		drv->close(priv);
	}
	unlink(path);
}

/* A size that O_DIRECT cannot cover whole falls back to buffered I/O. */
static void test_odd_size(struct tqueue *q)
{
	char path[4200];
	unsigned char data[4096 + 100], back[300];
	struct vd_info info;
	void *priv;

	snprintf(path, sizeof(path), "%s/odd", tmpdir);
	fill(data, sizeof(data));
	make_file(path, sizeof(data), data);
	REQUIRE(open_raw(path, q, VD_CACHE_NONE, false, &info, &priv) == 0);
	CHECK(!info.direct);
	CHECK_EQ(info.size, sizeof(data));
	CHECK_EQ(sync_rw(priv, q, OP_READ, 4000, 196, back, 0), 0);
	CHECK(memcmp(back, data + 4000, 196) == 0);
	memset(back, 0x11, sizeof(back));
	CHECK_EQ(sync_rw(priv, q, OP_WRITE, 4096 + 1, 99, back, VD_IO_FUA), 0);
	CHECK_EQ(sync_rw(priv, q, OP_READ, 4096, 100, data, 0), 0);
	CHECK_EQ(data[0], data[0]);
	CHECK_EQ(data[1], 0x11);
	CHECK_EQ(data[99], 0x11);
	drv->close(priv);
	unlink(path);
}

/* ---- The model --------------------------------------------------------- */

struct model {
	const char *what;
	void *priv;
	struct tqueue *q;
	struct vd_info info;
	unsigned char *bytes;
	unsigned char *unknown;	/* 1: trimmed on a device, any value goes */
	uint64_t size;
	bool is_dev;
};

/* Compares what was read with the model, skipping unknown bytes. */
static bool model_same(const struct model *m, const unsigned char *buf,
		       uint64_t off, uint64_t len)
{
	if (!memcmp(buf, m->bytes + off, len))
		return true;
	for (uint64_t b = 0; b < len; b++) {
		if (buf[b] != m->bytes[off + b] && !m->unknown[off + b])
			return false;
	}
	return true;
}

/* A range now holds known bytes (given, or zeroes). */
static void model_set(struct model *m, uint64_t off, uint64_t len, const void *data)
{
	if (data)
		memcpy(m->bytes + off, data, len);
	else
		memset(m->bytes + off, 0, len);
	memset(m->unknown + off, 0, len);
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Lengths: whole blocks, sub-block bits and odd sizes, sometimes large. */
static uint64_t pick_len(void)
{
	switch (rnd(6)) {
	case 0: return 1 + rnd(700);
	case 1: return 512 * (1 + rnd(16));
	case 2: return 4096 * (1 + rnd(32));
	case 3: return 1 + rnd(20000);
	case 4: return 4096 * (1 + rnd(256)) + rnd(2) * (1 + rnd(4095));
	default: return 1 + rnd(70000);
	}
}

static uint64_t pick_off(uint64_t size, uint64_t len)
{
	uint64_t off;

	switch (rnd(3)) {
	case 0: off = rnd(size / 4096) * 4096; break;
	case 1: off = rnd(size / 512) * 512; break;
	default: off = rnd(size); break;
	}
	return off + len > size ? size - len : off;
}

/* Checks a block-status answer: a prefix of the range, neighbours of
 * different kinds, holes reading as zeroes in the model. */
static void check_status(const struct model *m, const struct req *r)
{
	const struct vd_io *io = &r->io;
	uint64_t pos = io->offset;
	unsigned max = io->flags & VD_IO_REQ_ONE ? 1 : io->max_extents;

	CHECK(io->nr_extents >= 1 && io->nr_extents <= max);
	for (unsigned i = 0; i < io->nr_extents; i++) {
		const struct vd_extent *e = &io->extents[i];

		CHECK(e->length > 0);
		CHECK(e->flags == 0 || e->flags == (VD_EXTENT_HOLE | VD_EXTENT_ZERO));
		if (i)
			CHECK(e->flags != io->extents[i - 1].flags);
		for (uint64_t b = pos; e->flags && b < pos + e->length; b++) {
			if (m->bytes[b]) {
				fprintf(stderr, "%s: hole at %llu holds data\n", m->what,
					(unsigned long long)b);
				test_failures++;
				break;
			}
		}
		pos += e->length;
	}
	CHECK(pos <= io->offset + io->len);
	if (io->nr_extents < max)
		CHECK_EQ(pos, io->offset + io->len);
}

static struct req *pick_req(const struct model *m, int *nwrites)
{
	uint64_t len = pick_len(), off;
	unsigned k = (unsigned)rnd(20);
	struct req *r;

	if (len > m->size)
		len = m->size;
	off = pick_off(m->size, len);
	if (k < 8) {
		r = req_new(OP_READ, off, len, 0);
	} else if (k < 15) {
		r = req_new(OP_WRITE, off, len, rnd(4) ? 0 : VD_IO_FUA);
		fill(r->io.buf, len);
		++*nwrites;
	} else if (k == 15) {
		r = req_new(OP_TRIM, off, len, 0);
	} else if (k == 16) {
		r = req_new(OP_ZERO, off, len, (unsigned)rnd(2) * VD_IO_NO_HOLE);
	} else if (k == 17) {
		r = req_new(OP_ZERO, off, len, VD_IO_FAST_ZERO);
	} else if (k == 18) {
		r = req_new(OP_STATUS, off, len, rnd(4) ? 0 : VD_IO_REQ_ONE);
		r->io.max_extents = 1 + (unsigned)rnd(32);
	} else {
		r = req_new(OP_FLUSH, 0, 0, 0);
	}
	return r;
}

/* True when r touches bytes another request of the batch changes (or, for
 * a changing r, reads): those would race by the block layer's rules. */
static bool batch_conflicts(struct req **batch, int n, const struct req *r)
{
	bool r_changes = r->op == OP_WRITE || r->op == OP_TRIM || r->op == OP_ZERO;

	if (r->op == OP_FLUSH)
		return false;
	for (int i = 0; i < n; i++) {
		const struct req *o = batch[i];
		bool o_changes = o->op == OP_WRITE || o->op == OP_TRIM || o->op == OP_ZERO;

		if (o->op == OP_FLUSH || (!r_changes && !o_changes))
			continue;
		if (ranges_overlap(o->io.offset, o->io.len, r->io.offset, r->io.len))
			return true;
	}
	return false;
}

static void apply(struct model *m, struct req *r)
{
	struct vd_io *io = &r->io;

	switch (r->op) {
	case OP_READ:
		if (!r->err && !model_same(m, io->buf, io->offset, io->len)) {
			fprintf(stderr, "%s: read %llu+%llu differs from the model\n",
				m->what, (unsigned long long)io->offset,
				(unsigned long long)io->len);
			test_failures++;
		}
		CHECK_EQ(r->err, 0);
		break;
	case OP_WRITE:
		CHECK_EQ(r->err, 0);
		model_set(m, io->offset, io->len, io->buf);
		break;
	case OP_TRIM:
		CHECK_EQ(r->err, 0);
		/* A file trim punches: zeroes; an ignored one leaves the
		 * data; a discarded device block may read as anything. */
		if (m->is_dev)
			memset(m->unknown + io->offset, 1, io->len);
		else if (m->info.can_trim && !r->err)
			model_set(m, io->offset, io->len, NULL);
		break;
	case OP_ZERO:
		if (r->err == -ENOTSUP && (io->flags & VD_IO_FAST_ZERO))
			break;	/* allowed: nothing changed */
		CHECK_EQ(r->err, 0);
		model_set(m, io->offset, io->len, NULL);
		break;
	case OP_STATUS:
		CHECK_EQ(r->err, 0);
		if (!r->err)
			check_status(m, r);
		break;
	case OP_FLUSH:
		CHECK_EQ(r->err, 0);
		break;
	}
}

/* Batches of up to 16 requests that do not race each other, queued at
 * once and kicked once, like a frontend's batch. */
static void run_model(struct model *m, int nreq)
{
	struct req *batch[16];
	int done = 0, nwrites = 0;
	double t0 = now_s();

	while (done < nreq && test_failures < 20) {
		int n = 0, want = 1 + (int)rnd(16);

		while (n < want) {
			struct req *r = pick_req(m, &nwrites);

			if (batch_conflicts(batch, n, r)) {
				req_free(r);
				break;
			}
			batch[n++] = r;
		}
		for (int i = 0; i < n; i++)
			req_start(m->priv, batch[i]);
		wait_all(m->q, batch, n);
		/* Reads first: they saw the state before the batch's writes
		 * (they touch none of the same bytes anyway). */
		for (int i = 0; i < n; i++) {
			apply(m, batch[i]);
			req_free(batch[i]);
		}
		done += n;
	}
	fprintf(stderr, "%s: %d requests (%d writes), direct %d, block %u, %.2f s\n",
		m->what, done, nwrites, m->info.direct, m->info.logical_block,
		now_s() - t0);
}

/* The whole image read back through the driver and through the kernel. */
static void verify_image(struct model *m, const char *path)
{
	const uint64_t step = 1 << 20;
	unsigned char *buf = malloc(step);
	int fd = open(path, O_RDONLY);

	REQUIRE(buf && fd >= 0);
	for (uint64_t off = 0; off < m->size; off += step) {
		uint64_t len = m->size - off < step ? m->size - off : step;

		CHECK_EQ(sync_rw(m->priv, m->q, OP_READ, off, len, buf, 0), 0);
		CHECK(model_same(m, buf, off, len));
		CHECK_EQ(pread(fd, buf, len, (off_t)off), (ssize_t)len);
		if (!model_same(m, buf, off, len)) {
			fprintf(stderr, "%s: the image differs at %llu+%llu\n", m->what,
				(unsigned long long)off, (unsigned long long)len);
			test_failures++;
		}
	}
	close(fd);
	free(buf);
}

/* Random model run on a file in dir (or a block device path). */
static void test_model_on(const char *what, const char *path, bool make,
			  uint64_t size, enum vd_cache cache, struct tqueue *q, int nreq)
{
	struct model m = { .what = what, .q = q, .size = size, .is_dev = !make };
	int err;

	m.bytes = malloc(size);
	m.unknown = calloc(1, size);
	REQUIRE(m.bytes && m.unknown);
	fill(m.bytes, size);
	/* Some zero stretches, so holes and zeroes meet data. */
	memset(m.bytes + size / 4, 0, size / 8);
	if (make) {
		make_file(path, size, m.bytes);
	} else {
		int fd = open(path, O_WRONLY);

		REQUIRE(fd >= 0);
		REQUIRE(pwrite(fd, m.bytes, size, 0) == (ssize_t)size);
		REQUIRE(fsync(fd) == 0);
		close(fd);
	}
	err = open_raw(path, q, cache, false, &m.info, &m.priv);
	REQUIRE(err == 0);
	CHECK_EQ(m.info.size, size);
	CHECK(m.info.logical_block >= 512);
	CHECK(m.info.physical_block >= m.info.logical_block);
	CHECK(m.info.can_flush && m.info.can_fua);
	if (cache == VD_CACHE_WRITEBACK)
		CHECK(!m.info.direct);
	run_model(&m, nreq);
	verify_image(&m, path);
	drv->close(m.priv);
	free(m.bytes);
	free(m.unknown);
}

/* ---- Neighbouring unaligned writes ------------------------------------ */

/* Many small unaligned writes sharing blocks, all in flight at once: the
 * read-modify-writes must not lose each other's bytes. */
static void test_neighbours(const char *path, enum vd_cache cache, struct tqueue *q)
{
	const uint64_t size = 64 * 1024;
	unsigned char *model = calloc(1, size), *back = malloc(size);
	struct req *batch[64];
	struct vd_info info;
	void *priv;

	REQUIRE(model && back);
	make_file(path, size, model);
	REQUIRE(open_raw(path, q, cache, false, &info, &priv) == 0);
	for (int round = 0; round < 120 && test_failures < 20; round++) {
		uint64_t pos = rnd(4096), base_blk = rnd(size / 8192) * 4096;
		int n = 0;

		/* Consecutive pieces of 1..700 bytes from a random start:
		 * disjoint, but sharing 512- and 4096-byte blocks. */
		while (n < 64) {
			uint64_t len = 1 + rnd(rnd(4) ? 300 : 700);
			uint64_t off = base_blk + pos;

			if (off + len > size)
				break;
			batch[n] = req_new(OP_WRITE, off, len, rnd(20) ? 0 : VD_IO_FUA);
			fill(batch[n]->io.buf, len);
			n++;
			pos += len + (rnd(4) == 0 ? rnd(100) : 0);
			if (pos > 8192)
				break;
		}
		for (int i = 0; i < n; i++)
			req_start(priv, batch[i]);
		wait_all(q, batch, n);
		for (int i = 0; i < n; i++) {
			CHECK_EQ(batch[i]->err, 0);
			memcpy(model + batch[i]->io.offset, batch[i]->io.buf,
			       batch[i]->io.len);
			req_free(batch[i]);
		}
		/* Trims and zeroes of odd ranges join in now and then. */
		if (round % 10 == 9) {
			uint64_t off = base_blk + rnd(4096), len = 1 + rnd(3000);
			struct req *mix[3] = {
				req_new(OP_ZERO, off, len, 0),
				req_new(OP_WRITE, off + len, 100, 0),
				req_new(OP_TRIM, off + len + 100, 200, 0),
			};

			fill(mix[1]->io.buf, 100);
			for (int i = 0; i < 3; i++)
				req_start(priv, mix[i]);
			wait_all(q, mix, 3);
			CHECK_EQ(mix[0]->err, 0);
			CHECK_EQ(mix[1]->err, 0);
			CHECK_EQ(mix[2]->err, 0);
			memset(model + off, 0, len);
			memcpy(model + off + len, mix[1]->io.buf, 100);
			if (info.can_trim)
				memset(model + off + len + 100, 0, 200);
			for (int i = 0; i < 3; i++)
				req_free(mix[i]);
		}
		CHECK_EQ(sync_rw(priv, q, OP_READ, 0, size, back, 0), 0);
		if (memcmp(back, model, size)) {
			for (uint64_t b = 0; b < size; b++) {
				if (back[b] != model[b]) {
					fprintf(stderr, "neighbours (cache %d): round %d: "
						"byte %llu is %u, want %u\n", cache, round,
						(unsigned long long)b, back[b], model[b]);
					break;
				}
			}
			test_failures++;
		}
	}
	drv->close(priv);
	unlink(path);
	free(model);
	free(back);
}

/* ---- Trim, zeroes, block status ---------------------------------------- */

static void status(void *priv, struct tqueue *q, uint64_t off, uint64_t len,
		   unsigned flags, unsigned max, struct req **out)
{
	struct req *r = req_new(OP_STATUS, off, len, flags);

	r->io.max_extents = max;
	CHECK_EQ(run1(priv, q, r), 0);
	*out = r;
}

/* Returns SKIP (having said why) when the filesystem cannot punch holes. */
static int test_status(const char *path, enum vd_cache cache, struct tqueue *q)
{
	int ret = 0;

	const uint32_t H = VD_EXTENT_HOLE | VD_EXTENT_ZERO;
	const uint64_t MiB = 1 << 20, size = 8 * MiB;
	unsigned char *buf = malloc(MiB);
	struct vd_info info;
	struct req *r;
	void *priv;

	REQUIRE(buf);
	make_file(path, size, NULL);	/* sparse */
	REQUIRE(open_raw(path, q, cache, false, &info, &priv) == 0);
	CHECK(info.can_block_status);
	if (!info.can_trim) {
		fprintf(stderr, "test-raw-status: skipped: no hole punching on %s\n", path);
		ret = SKIP;
		goto out;
	}
	status(priv, q, 0, size, 0, 32, &r);
	CHECK_EQ(r->io.nr_extents, 1);
	CHECK_EQ(r->ext[0].length, size);
	CHECK_EQ(r->ext[0].flags, H);
	req_free(r);

	/* Data at 1-2 MiB and 4 MiB + 64 KiB. */
	memset(buf, 0xab, MiB);
	CHECK_EQ(sync_rw(priv, q, OP_WRITE, MiB, MiB, buf, 0), 0);
	CHECK_EQ(sync_rw(priv, q, OP_WRITE, 4 * MiB, 65536, buf, VD_IO_FUA), 0);
	status(priv, q, 0, size, 0, 32, &r);
	CHECK_EQ(r->io.nr_extents, 5);
	CHECK_EQ(r->ext[0].length, MiB);
	CHECK_EQ(r->ext[0].flags, H);
	CHECK_EQ(r->ext[1].length, MiB);
	CHECK_EQ(r->ext[1].flags, 0);
	CHECK_EQ(r->ext[2].length, 2 * MiB);
	CHECK_EQ(r->ext[2].flags, H);
	CHECK_EQ(r->ext[3].length, 65536);
	CHECK_EQ(r->ext[3].flags, 0);
	CHECK_EQ(r->ext[4].flags, H);
	req_free(r);
	/* A prefix: max_extents, REQ_ONE, a range starting inside data. */
	status(priv, q, 0, size, 0, 2, &r);
	CHECK_EQ(r->io.nr_extents, 2);
	req_free(r);
	status(priv, q, MiB / 2, size - MiB, VD_IO_REQ_ONE, 32, &r);
	CHECK_EQ(r->io.nr_extents, 1);
	CHECK_EQ(r->ext[0].length, MiB / 2);
	CHECK_EQ(r->ext[0].flags, H);
	req_free(r);
	status(priv, q, MiB + 4096, 4096, 0, 32, &r);
	CHECK_EQ(r->io.nr_extents, 1);
	CHECK_EQ(r->ext[0].length, 4096);
	CHECK_EQ(r->ext[0].flags, 0);
	req_free(r);

	/* Trim punches: 1 MiB + 64 KiB .. 2 MiB becomes a hole again. */
	CHECK_EQ(sync_op(priv, q, OP_TRIM, MiB + 65536, MiB - 65536, 0), 0);
	status(priv, q, MiB, MiB, 0, 32, &r);
	CHECK_EQ(r->io.nr_extents, 2);
	CHECK_EQ(r->ext[0].length, 65536);
	CHECK_EQ(r->ext[0].flags, 0);
	CHECK_EQ(r->ext[1].flags, H);
	req_free(r);
	/* Zeroes, without NO_HOLE: a hole too.  With it: reads zero. */
	CHECK_EQ(sync_op(priv, q, OP_ZERO, 4 * MiB, 65536, 0), 0);
	status(priv, q, 3 * MiB, 2 * MiB, 0, 32, &r);
	CHECK_EQ(r->io.nr_extents, 1);
	CHECK_EQ(r->ext[0].flags, H);
	req_free(r);
	CHECK_EQ(sync_rw(priv, q, OP_WRITE, 6 * MiB, MiB, buf, 0), 0);
	CHECK_EQ(sync_op(priv, q, OP_ZERO, 6 * MiB + 1000, 70000, VD_IO_NO_HOLE), 0);
	CHECK_EQ(sync_rw(priv, q, OP_READ, 6 * MiB, 72000, buf, 0), 0);
	CHECK_EQ(buf[999], 0xab);
	CHECK_EQ(buf[1000], 0);
	CHECK_EQ(buf[70999], 0);
	CHECK_EQ(buf[71000], 0xab);
	/* FAST_ZERO either works or says ENOTSUP and changes nothing. */
	{
		int err = sync_op(priv, q, OP_ZERO, 6 * MiB + 200003, 4000,
				  VD_IO_FAST_ZERO | VD_IO_NO_HOLE);

		CHECK(err == 0 || err == -ENOTSUP);
		CHECK_EQ(sync_rw(priv, q, OP_READ, 6 * MiB + 200000, 8192, buf, 0), 0);
		CHECK_EQ(buf[2], 0xab);
		CHECK_EQ(buf[3], err ? 0xab : 0);
		CHECK_EQ(buf[4002], err ? 0xab : 0);
		CHECK_EQ(buf[4003], 0xab);
	}
out:
	drv->close(priv);
	unlink(path);
	free(buf);
	return ret;
}

/* ---- Where the model runs ---------------------------------------------- */

static bool fs_is(const char *dir, long magic)
{
	struct statfs s;

	return statfs(dir, &s) == 0 && s.f_type == magic;
}

/* The model, neighbouring writes and (with_status) block status in dir. */
static int model_suite(const char *dir, const char *label, int nreq, bool with_status)
{
	int ret = 0;

	char path[4300], what[128];

	snprintf(path, sizeof(path), "%s/model", dir);
	for (int fast = 0; fast < 2; fast++) {
		for (int cache = 0; cache < 2; cache++) {
			struct tqueue *q = queue_new(fast);

			snprintf(what, sizeof(what), "%s cache=%s%s", label,
				 cache == VD_CACHE_NONE ? "none" : "writeback",
				 fast ? " slow-queue" : "");
			test_model_on(what, path, true, 6 << 20, cache, q, nreq);
			unlink(path);
			test_neighbours(path, cache, q);
			if (with_status && test_status(path, cache, q) == SKIP)
				ret = SKIP;
			tq_destroy(q);
		}
	}
	return ret;
}

/* Block status on files in dir: needs hole punching. */
static int status_suite(const char *dir)
{
	char path[4200];
	int ret = 0;

	snprintf(path, sizeof(path), "%s/status", dir);
	for (int fast = 0; fast < 2 && ret == 0; fast++) {
		for (int cache = 0; cache < 2 && ret == 0; cache++) {
			struct tqueue *q = queue_new(fast);

			ret = test_status(path, cache, q);
			tq_destroy(q);
		}
	}
	return ret;
}

/* The model on a loop device over a file: block device paths (BLKDISCARD,
 * BLKZEROOUT, sizes by ioctl).  Needs root and loop devices. */
static int loop_suite(void)
{
	/* Detached by the kernel when the last descriptor closes, also when
	 * a failed REQUIRE ends the test. */
	struct loop_info64 autoclear = { .lo_flags = LO_FLAGS_AUTOCLEAR };
	char file[4200], dev[64];
	int ctl, fd, lfd = -1, nr, ret = 0;

	if (geteuid() != 0) {
		fprintf(stderr, "test-raw-loop: skipped: loop devices need root\n");
		return SKIP;
	}
	snprintf(file, sizeof(file), "%s/loop-backing", tmpdir);
	make_file(file, 8 << 20, NULL);
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	nr = ctl >= 0 ? ioctl(ctl, LOOP_CTL_GET_FREE) : -1;
	if (ctl >= 0)
		close(ctl);
	if (nr < 0) {
		fprintf(stderr, "test-raw-loop: skipped: no free loop device\n");
		ret = SKIP;
		goto out;
	}
	snprintf(dev, sizeof(dev), "/dev/loop%d", nr);
	fd = open(file, O_RDWR | O_CLOEXEC);
	lfd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0 || lfd < 0 || ioctl(lfd, LOOP_SET_FD, fd) < 0 ||
	    ioctl(lfd, LOOP_SET_STATUS64, &autoclear) < 0) {
		fprintf(stderr, "test-raw-loop: skipped: cannot attach %s: %s\n",
			dev, strerror(errno));
		ret = SKIP;
		if (fd >= 0)
			close(fd);
		if (lfd >= 0) {
			ioctl(lfd, LOOP_CLR_FD, 0);
			close(lfd);
		}
		lfd = -1;
		goto out;
	}
	close(fd);
	for (int cache = 0; cache < 2; cache++) {
		struct tqueue *q = queue_new(false);
		struct vd_info info;
		void *priv;
		struct req *r;
		char what[64];

		snprintf(what, sizeof(what), "loop cache=%s",
			 cache == VD_CACHE_NONE ? "none" : "writeback");
		test_model_on(what, dev, false, 8 << 20, cache, q, 1500);
		/* Devices answer block status with one data extent. */
		REQUIRE(open_raw(dev, q, cache, false, &info, &priv) == 0);
		CHECK(!info.can_block_status);
		status(priv, q, 4096, 1 << 20, 0, 32, &r);
		CHECK_EQ(r->io.nr_extents, 1);
		CHECK_EQ(r->ext[0].length, 1 << 20);
		CHECK_EQ(r->ext[0].flags, 0);
		req_free(r);
		drv->close(priv);
		tq_destroy(q);
	}
out:
	if (lfd >= 0) {
		ioctl(lfd, LOOP_CLR_FD, 0);
		close(lfd);
	}
	unlink(file);
	return ret;
}

int main(void)
{
	const char *t = getenv("TESTS_TMP");
	struct timeval tv = { 0, 100000 };
	struct tqueue *q;
	char shm[4200];

	log_init("test-raw", LOG_LVL_INFO, LOG_SINK_STDERR);
	srandom(4242);
	snprintf(tmpdir, sizeof(tmpdir), "%s/test-raw.XXXXXX", t && *t ? t : "/tmp");
	REQUIRE(mkdtemp(tmpdir));
	base = event_base_new();
	REQUIRE(base);
	/* A tick so a lost completion ends in a message, not a hang. */
	tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
	REQUIRE(tick && event_add(tick, &tv) == 0);

	int ret = 0;
	switch (RAW_SUITE) {
	case RAW_SUITE_FILE:
		q = queue_new(false);
		test_open_errors(q);
		test_read_only(q);
		test_odd_size(q);
		test_close_unlocks(q);
		tq_destroy(q);
		model_suite(tmpdir, "tmp", 3000, false);
		break;
	case RAW_SUITE_STATUS:
		ret = status_suite(tmpdir);
		break;
	case RAW_SUITE_TMPFS:
		/* tmpfs: O_DIRECT without alignment rules, no ZERO_RANGE. */
		snprintf(shm, sizeof(shm), "/dev/shm/test-raw.XXXXXX");
		if (fs_is("/dev/shm", TMPFS_MAGIC) && mkdtemp(shm)) {
			/* tmpfs punches holes: a skip here is a failure. */
			if (model_suite(shm, "tmpfs", 1000, true) == SKIP)
				test_failures++;
			rmdir(shm);
		} else {
			fprintf(stderr, "test-raw-tmpfs: skipped: no writable tmpfs at /dev/shm\n");
			ret = SKIP;
		}
		break;
	case RAW_SUITE_LOOP:
		ret = loop_suite();
		break;
	case RAW_SUITE_EACCES:
		ret = test_eacces();
		break;
	}
	event_free(tick);
	event_base_free(base);
	rmdir(tmpdir);
	if (ret == SKIP)
		return SKIP;
	if (ret)
		test_failures++;
	return test_done(RAW_SUITE == RAW_SUITE_FILE ? "test-raw" : "test-raw part");
}
