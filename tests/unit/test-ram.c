/* The ram driver against a byte model: random reads, writes, trims and
 * zeroes at any alignment, block status, bad sizes, a huge sparse disk.
 * test-ram-enomem (RAM_ENOMEM, including this file) runs out of memory:
 * its own program, because a sanitizer build cannot run it (exit 77). */
#include <errno.h>
#include <stdint.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "drivers/driver.h"
#include "tests/lib/test.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

#ifndef RAM_ENOMEM
#define RAM_ENOMEM 0
#endif

enum { CHUNK = 64 * 1024 };

static int completions;
static int last_err;

static void on_complete(struct vd_io *io, int err)
{
	completions++;
	last_err = err;
}

enum op { OP_READ, OP_WRITE, OP_FLUSH, OP_TRIM, OP_ZERO, OP_STATUS };

/* Runs one op; ram completes synchronously, exactly once. */
static int run_op(void *priv, enum op op, struct vd_io *io)
{
	const struct vd_driver *d = &vd_ram_driver;
	int before = completions, ret = -1;

	io->complete = on_complete;
	switch (op) {
	case OP_READ:	ret = d->read(priv, io); break;
	case OP_WRITE:	ret = d->write(priv, io); break;
	case OP_FLUSH:	ret = d->flush(priv, io); break;
	case OP_TRIM:	ret = d->trim(priv, io); break;
	case OP_ZERO:	ret = d->write_zeroes(priv, io); break;
	case OP_STATUS:	ret = d->block_status(priv, io); break;
	}
	if (ret)
		return ret;
	REQUIRE(completions == before + 1);
	return last_err;
}

static int do_rw(void *priv, enum op op, uint64_t off, uint64_t len, void *buf)
{
	struct vd_io io = { .offset = off, .len = len, .buf = buf };

	return run_op(priv, op, &io);
}

static int do_zero(void *priv, enum op op, uint64_t off, uint64_t len, unsigned flags)
{
	struct vd_io io = { .offset = off, .len = len, .flags = flags };

	return run_op(priv, op, &io);
}

static int do_status(void *priv, uint64_t off, uint64_t len, unsigned flags,
		     struct vd_extent *ext, unsigned max, unsigned *nr)
{
	struct vd_io io = {
		.offset = off, .len = len, .flags = flags,
		.extents = ext, .max_extents = max,
	};
	int err = run_op(priv, OP_STATUS, &io);

	*nr = io.nr_extents;
	return err;
}

static void *open_ram(const char *size, struct vd_info *info)
{
	struct vd_open_opts o = { .cache = VD_CACHE_WRITEBACK };
	void *priv = NULL;
	int err = vd_ram_driver.open(size, &o, NULL, info, &priv);

	if (err) {
		fprintf(stderr, "open ram %s: %d\n", size, err);
		exit(1);
	}
	return priv;
}

static void test_bad_sizes(void)
{
	static const char *const bad[] = {
		"0", "-1", "1Q", "", " 1", "12abc", "99999999999999999999",
		"16777216P", "65T", "1P", "70368744177665",
	};
	struct vd_open_opts o = { .cache = VD_CACHE_NONE };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vd_info info;
		void *priv = (void *)1;
		int err = vd_ram_driver.open(bad[i], &o, NULL, &info, &priv);

		if (err >= 0)
			fprintf(stderr, "ram open \"%s\" succeeded\n", bad[i]);
		CHECK(err < 0);
		CHECK(priv == (void *)1);
	}
}

static void test_info(void)
{
	struct vd_info info;
	void *priv = open_ram("64T", &info);	/* the limit itself is fine */

	CHECK_EQ(info.size, 64ull << 40);
	CHECK_EQ(info.logical_block, 512);
	CHECK_EQ(info.physical_block, 4096);
	CHECK(info.can_flush && info.can_fua && info.can_trim && info.can_zero);
	CHECK(info.can_fast_zero && info.can_block_status);
	CHECK(!info.read_only && !info.direct);
	CHECK_EQ(do_zero(priv, OP_FLUSH, 0, 0, 0), 0);
	vd_ram_driver.close(priv);
}

/* Checks a block-status answer against the model: a non-empty prefix of
 * the range, neighbours of different kinds, holes read as zeroes. */
static void check_status(const unsigned char *model, uint64_t off, uint64_t len,
			 const struct vd_extent *ext, unsigned nr, unsigned max)
{
	uint64_t pos = off;

	CHECK(nr >= 1 && nr <= max);
	for (unsigned i = 0; i < nr; i++) {
		CHECK(ext[i].length > 0);
		CHECK(ext[i].flags == 0 ||
		      ext[i].flags == (VD_EXTENT_HOLE | VD_EXTENT_ZERO));
		if (i)
			CHECK(ext[i].flags != ext[i - 1].flags);
		if (ext[i].flags) {
			for (uint64_t b = pos; b < pos + ext[i].length && b < off + len; b++) {
				if (model[b]) {
					fprintf(stderr, "hole at %llu reads %u\n",
						(unsigned long long)b, model[b]);
					test_failures++;
					return;
				}
			}
		}
		pos += ext[i].length;
	}
	CHECK(pos <= off + len);
	if (nr < max)
		CHECK(pos == off + len);	/* room left: must cover it all */
}

static uint64_t rnd(uint64_t n)
{
	return ((uint64_t)random() << 31 ^ (uint64_t)random()) % n;
}

/* Offsets and lengths: mostly aligned, often not, often chunk-sized. */
static uint64_t pick_len(uint64_t max)
{
	switch (rnd(4)) {
	case 0: return 1 + rnd(4096);
	case 1: return 512 * (1 + rnd(64));
	case 2: return CHUNK * (1 + rnd(3)) + rnd(2) * rnd(CHUNK);
	default: return 1 + rnd(max);
	}
}

/* Non-zero random bytes, cheaply. */
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

static void test_model(void)
{
	const uint64_t size = 8 * 1024 * 1024 + 4096 + 512; /* not chunk-aligned */
	const uint64_t maxio = 512 * 1024;
	unsigned char *model = calloc(1, size);
	unsigned char *buf = malloc(maxio), *rbuf = malloc(maxio);
	struct vd_extent ext[64];
	struct vd_info info;
	void *priv;
	char spec[32];

	REQUIRE(model && buf && rbuf);
	snprintf(spec, sizeof(spec), "%llu", (unsigned long long)size);
	priv = open_ram(spec, &info);
	CHECK_EQ(info.size, size);

	for (int i = 0; i < 4000; i++) {
		uint64_t len = pick_len(maxio), off;
		unsigned nr, max, flags;
		int op = (int)rnd(10), err;

		if (len > maxio)
			len = maxio;
		if (len > size)
			len = size;
		off = rnd(4) ? rnd(size - len + 1) : (rnd(size / CHUNK) * CHUNK);
		if (off + len > size)
			off = size - len;
		switch (op) {
		case 0: case 1: case 2: case 3:
			fill(buf, len);
			CHECK_EQ(do_rw(priv, OP_WRITE, off, len, buf), 0);
			memcpy(model + off, buf, len);
			break;
		case 4:
			CHECK_EQ(do_zero(priv, OP_TRIM, off, len, 0), 0);
			memset(model + off, 0, len);
			break;
		case 5:
			err = do_zero(priv, OP_ZERO, off, len,
				      rnd(2) ? VD_IO_NO_HOLE : VD_IO_FAST_ZERO);
			CHECK_EQ(err, 0);
			memset(model + off, 0, len);
			break;
		case 6:
			max = 1 + (unsigned)rnd(64);
			flags = rnd(4) ? 0 : VD_IO_REQ_ONE;
			CHECK_EQ(do_status(priv, off, len, flags, ext, max, &nr), 0);
			check_status(model, off, len, ext, nr, flags ? 1 : max);
			break;
		default:
			memset(rbuf, 0xa5, len);
			CHECK_EQ(do_rw(priv, OP_READ, off, len, rbuf), 0);
			if (memcmp(rbuf, model + off, len)) {
				fprintf(stderr, "step %d: read %llu+%llu differs\n", i,
					(unsigned long long)off, (unsigned long long)len);
				test_failures++;
			}
			break;
		}
		if (test_failures > 20)
			break;
	}
	for (uint64_t off = 0; off < size; off += maxio) {
		uint64_t len = size - off < maxio ? size - off : maxio;

		CHECK_EQ(do_rw(priv, OP_READ, off, len, rbuf), 0);
		CHECK(memcmp(rbuf, model + off, len) == 0);
	}
	vd_ram_driver.close(priv);
	free(model);
	free(buf);
	free(rbuf);
}

static void test_block_status(void)
{
	const uint32_t H = VD_EXTENT_HOLE | VD_EXTENT_ZERO;
	unsigned char *buf = malloc(2 * CHUNK);
	struct vd_extent ext[16];
	struct vd_info info;
	unsigned nr;
	void *priv = open_ram("16M", &info);

	REQUIRE(buf);
	memset(buf, 7, 2 * CHUNK);
	/* Fresh disk: one hole. */
	CHECK_EQ(do_status(priv, 0, 16 << 20, 0, ext, 16, &nr), 0);
	CHECK_EQ(nr, 1);
	CHECK_EQ(ext[0].length, 16 << 20);
	CHECK_EQ(ext[0].flags, H);

	/* Data in chunks 2-3 (two writes, merged) and a byte in chunk 10. */
	CHECK_EQ(do_rw(priv, OP_WRITE, 2 * CHUNK, CHUNK, buf), 0);
	CHECK_EQ(do_rw(priv, OP_WRITE, 3 * CHUNK, CHUNK, buf), 0);
	CHECK_EQ(do_rw(priv, OP_WRITE, 10 * CHUNK + 5, 1, buf), 0);
	CHECK_EQ(do_status(priv, 0, 16 << 20, 0, ext, 16, &nr), 0);
	CHECK_EQ(nr, 5);
	CHECK_EQ(ext[0].length, 2 * CHUNK);
	CHECK_EQ(ext[0].flags, H);
	CHECK_EQ(ext[1].length, 2 * CHUNK);
	CHECK_EQ(ext[1].flags, 0);
	CHECK_EQ(ext[2].length, 6 * CHUNK);
	CHECK_EQ(ext[2].flags, H);
	CHECK_EQ(ext[3].length, CHUNK);
	CHECK_EQ(ext[3].flags, 0);
	CHECK_EQ(ext[4].length, (16 << 20) - 11 * CHUNK);
	CHECK_EQ(ext[4].flags, H);

	/* max_extents and REQ_ONE cut the answer to a prefix. */
	CHECK_EQ(do_status(priv, 0, 16 << 20, 0, ext, 2, &nr), 0);
	CHECK_EQ(nr, 2);
	CHECK_EQ(ext[1].length, 2 * CHUNK);
	CHECK_EQ(do_status(priv, CHUNK, (16 << 20) - CHUNK, VD_IO_REQ_ONE, ext, 16, &nr), 0);
	CHECK_EQ(nr, 1);
	CHECK_EQ(ext[0].length, CHUNK);
	CHECK_EQ(ext[0].flags, H);
	/* A range starting and ending inside chunks. */
	CHECK_EQ(do_status(priv, 3 * CHUNK + 100, CHUNK, 0, ext, 16, &nr), 0);
	CHECK_EQ(nr, 2);
	CHECK_EQ(ext[0].length, CHUNK - 100);
	CHECK_EQ(ext[0].flags, 0);
	CHECK_EQ(ext[1].length, 100);
	CHECK_EQ(ext[1].flags, H);

	/* A partial trim keeps the chunk, a whole one frees it. */
	CHECK_EQ(do_zero(priv, OP_TRIM, 2 * CHUNK + 512, CHUNK, 0), 0);
	CHECK_EQ(do_status(priv, 2 * CHUNK, 2 * CHUNK, 0, ext, 16, &nr), 0);
	CHECK_EQ(nr, 1);
	CHECK_EQ(ext[0].flags, 0);
	CHECK_EQ(do_zero(priv, OP_TRIM, 2 * CHUNK, 2 * CHUNK, 0), 0);
	CHECK_EQ(do_status(priv, 0, 10 * CHUNK, 0, ext, 16, &nr), 0);
	CHECK_EQ(nr, 1);
	CHECK_EQ(ext[0].flags, H);
	/* Zeroing without NO_HOLE punches; with it, allocates. */
	CHECK_EQ(do_zero(priv, OP_ZERO, 10 * CHUNK, CHUNK, VD_IO_FAST_ZERO), 0);
	CHECK_EQ(do_zero(priv, OP_ZERO, 20 * CHUNK, CHUNK, VD_IO_NO_HOLE), 0);
	CHECK_EQ(do_status(priv, 0, 32 * CHUNK, 0, ext, 16, &nr), 0);
	CHECK_EQ(nr, 3);
	CHECK_EQ(ext[0].length, 20 * CHUNK);
	CHECK_EQ(ext[0].flags, H);
	CHECK_EQ(ext[1].length, CHUNK);
	CHECK_EQ(ext[1].flags, 0);
	CHECK_EQ(do_rw(priv, OP_READ, 20 * CHUNK, CHUNK, buf), 0);
	CHECK_EQ(buf[0], 0);
	CHECK_EQ(buf[CHUNK - 1], 0);

	vd_ram_driver.close(priv);
	free(buf);
}

static long rss_kib(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
		rss = -1;
	fclose(f);
	return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* 16 TiB opens, reads, writes and reports holes in a blink, in little
 * memory. */
static void test_huge(void)
{
	const uint64_t size = 16ull << 40;
	unsigned char *buf = malloc(CHUNK);
	struct vd_extent ext[4];
	struct vd_info info;
	unsigned nr;
	long rss0 = rss_kib(), rss1;
	double t0 = now_s(), t;
	void *priv = open_ram("16TiB", &info);

	REQUIRE(buf);
	CHECK_EQ(info.size, size);
	for (uint64_t k = 0; k < 7; k++) {
		memset(buf, 1, CHUNK);
		CHECK_EQ(do_rw(priv, OP_READ, (k * (size / 7)) & ~4095ull, CHUNK, buf), 0);
		CHECK_EQ(buf[0] | buf[CHUNK - 1], 0);
	}
	CHECK_EQ(do_rw(priv, OP_READ, size - CHUNK, CHUNK, buf), 0);
	CHECK_EQ(buf[CHUNK - 1], 0);
	memset(buf, 0x5a, 4096);
	CHECK_EQ(do_rw(priv, OP_WRITE, size - 4096, 4096, buf), 0);
	memset(buf, 0, 4096);
	CHECK_EQ(do_rw(priv, OP_READ, size - 4096, 4096, buf), 0);
	CHECK_EQ(buf[0], 0x5a);
	CHECK_EQ(buf[4095], 0x5a);

	/* The largest NBD range: one hole, then data at the very end. */
	CHECK_EQ(do_status(priv, 0, UINT32_MAX & ~511u, 0, ext, 4, &nr), 0);
	CHECK_EQ(nr, 1);
	CHECK_EQ(ext[0].length, UINT32_MAX & ~511u);
	CHECK_EQ(ext[0].flags, VD_EXTENT_HOLE | VD_EXTENT_ZERO);
	CHECK_EQ(do_status(priv, size - (1ull << 30), 1ull << 30, 0, ext, 4, &nr), 0);
	CHECK_EQ(nr, 2);
	CHECK_EQ(ext[0].length, (1u << 30) - CHUNK);	/* the chunk is data */
	CHECK_EQ(ext[1].flags, 0);

	t = now_s() - t0;
	rss1 = rss_kib();
	fprintf(stderr, "16 TiB ram disk: %.3f s, rss %ld -> %ld KiB\n", t, rss0, rss1);
	CHECK(t < 2.0);
	if (rss0 > 0 && rss1 > 0)
		CHECK(rss1 - rss0 < 8 * 1024);
	vd_ram_driver.close(priv);
	free(buf);
}

/* Out of memory is an -ENOMEM completion, never a crash.  An address-space
 * limit makes malloc fail; sanitizers reserve terabytes, so not there. */
static int test_enomem(void)
{
#ifdef UNDER_SANITIZER
	fprintf(stderr, "test-ram-enomem: skipped: a sanitizer build reserves more "
		"address space than RLIMIT_AS can leave room for\n");
	return 77;
#else
	const uint64_t step = 1 << 20;
	unsigned char *buf = calloc(1, step);
	struct rlimit old, lim;
	long pages = 0;
	struct vd_info info;
	void *priv = open_ram("1T", &info);
	FILE *f = fopen("/proc/self/statm", "r");
	int err = 0;
	uint64_t off;

	REQUIRE(buf && f);
	REQUIRE(fscanf(f, "%ld", &pages) == 1);
	fclose(f);
	REQUIRE(getrlimit(RLIMIT_AS, &old) == 0);
	lim = old;
	lim.rlim_cur = (rlim_t)pages * sysconf(_SC_PAGESIZE) + (64 << 20);
	REQUIRE(setrlimit(RLIMIT_AS, &lim) == 0);
	for (off = 0; off < (1ull << 30); off += step) {
		err = do_rw(priv, OP_WRITE, off, step, buf);
		if (err)
			break;
	}
	REQUIRE(setrlimit(RLIMIT_AS, &old) == 0);
	CHECK_EQ(err, -ENOMEM);
	/* What was written before stays readable. */
	CHECK_EQ(do_rw(priv, OP_READ, 0, step, buf), 0);
	vd_ram_driver.close(priv);
	free(buf);
	return 0;
#endif
}

int main(void)
{
	srandom(12345);
	if (RAM_ENOMEM) {
		if (test_enomem() == 77)
			return 77;
		return test_done("test-ram-enomem");
	}
	test_bad_sizes();
	test_info();
	test_model();
	test_block_status();
	test_huge();
	return test_done("test-ram");
}
