/* thr_limits_parse / _check / _format: the accepted spellings, every kind
 * of bad input (clear message, nothing changed), and the round trip. */
#include <errno.h>
#include <stdint.h>

#include "core/throttle.h"
#include "tests/lib/test.h"

/* Limits every case starts from: parsing changes only the keys named. */
static const struct thr_limits base = {
	.iops = 2000, .write_bps = 1 << 20, .burst_iops = 5000,
};

struct lim_case {
	const char *spec;
	int err;
	struct thr_limits want;		/* when err == 0 */
};

/* base, with some fields overridden: a later designator wins (C11 6.7.9) */
#define B(...) { .iops = 2000, .write_bps = 1 << 20, .burst_iops = 5000, __VA_ARGS__ }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"

static const struct lim_case cases[] = {
	{ "iops=3000", 0, B(.iops = 3000) },
	{ "bps=50M", 0, B(.bps = 50ull << 20) },
	{ "iops=2500,bps=50M,read-iops=none", 0, B(.iops = 2500, .bps = 50ull << 20) },
	{ "read-bps=1k,write-bps=2KiB", 0, B(.read_bps = 1024, .write_bps = 2048) },
	{ "read-bps=3g,bps=1T,burst-bps=2PB", 0,
	  B(.read_bps = 3ull << 30, .bps = 1ull << 40, .burst_bps = 2ull << 50) },
	{ "bps=15E", 0, B(.bps = 15ull << 60) },
	{ "bps=18446744073709551615", 0, B(.bps = UINT64_MAX) },
	{ "bps=512B", 0, B(.bps = 512) },
	{ "write-bps=0", 0, B(.write_bps = 0) },
	{ "write-bps=NONE", 0, B(.write_bps = 0) },
	{ "iops=none,burst-iops=none", 0, B(.iops = 0, .burst_iops = 0) },
	{ "iops=none", 0, B(.iops = 0) },	/* a burst alone is kept, inert */
	{ "burst-iops=2000", 0, B(.burst_iops = 2000) },	/* == rate: fine */
	{ "burst-seconds=10", 0, B(.burst_seconds = 10) },
	{ "burst-seconds=4294967295", 0, B(.burst_seconds = 4294967295u) },
	{ "iops-size=4K", 0, B(.iops_size = 4096) },
	{ "write-iops=100,read-iops=50", 0, B(.write_iops = 100, .read_iops = 50) },
	{ "none", 0, { 0 } },
	/* empty, missing parts */
	{ "", -EINVAL, { 0 } },
	{ "iops=", -EINVAL, { 0 } },
	{ "=5", -EINVAL, { 0 } },
	{ "=", -EINVAL, { 0 } },
	{ "iops", -EINVAL, { 0 } },
	{ ",", -EINVAL, { 0 } },
	{ "iops=5,", -EINVAL, { 0 } },
	{ ",iops=5", -EINVAL, { 0 } },
	{ "iops=5,,bps=1", -EINVAL, { 0 } },
	{ "none,iops=5", -EINVAL, { 0 } },
	/* unknown, misspelt, repeated keys */
	{ "foo=1", -EINVAL, { 0 } },
	{ "IOPS=5", -EINVAL, { 0 } },
	{ "iops-total=5", -EINVAL, { 0 } },
	{ " iops=5", -EINVAL, { 0 } },
	{ "iops =5", -EINVAL, { 0 } },
	{ "iops=5,iops=6", -EINVAL, { 0 } },
	/* negative, non-numeric, junk */
	{ "iops=-1", -EINVAL, { 0 } },
	{ "bps=-1M", -EINVAL, { 0 } },
	{ "iops=abc", -EINVAL, { 0 } },
	{ "iops=+5", -EINVAL, { 0 } },
	{ "iops= 5", -EINVAL, { 0 } },
	{ "iops=5 ", -EINVAL, { 0 } },
	{ "iops=5x", -EINVAL, { 0 } },
	{ "iops=1.5", -EINVAL, { 0 } },
	{ "iops=0x10", -EINVAL, { 0 } },
	{ "iops=1e3", -EINVAL, { 0 } },
	{ "iops=2K", -EINVAL, { 0 } },		/* a count takes no unit */
	{ "burst-seconds=1M", -EINVAL, { 0 } },
	{ "bps=5Q", -EINVAL, { 0 } },
	{ "bps=5MM", -EINVAL, { 0 } },
	{ "bps=5Mi", -EINVAL, { 0 } },
	{ "bps=M", -EINVAL, { 0 } },
	{ "bps=none5", -EINVAL, { 0 } },
	{ "iops=5=6", -EINVAL, { 0 } },
	{ "iops=5\n", -EINVAL, { 0 } },
	/* overflow, in the digits and in the unit */
	{ "iops=18446744073709551616", -ERANGE, { 0 } },
	{ "bps=99999999999999999999999", -ERANGE, { 0 } },
	{ "bps=16E", -ERANGE, { 0 } },
	{ "bps=18446744073709551615K", -ERANGE, { 0 } },
	{ "burst-seconds=4294967296", -ERANGE, { 0 } },
	/* a burst below the rate it bursts */
	{ "burst-iops=1999", -EINVAL, { 0 } },
	{ "read-iops=6000", -EINVAL, { 0 } },
	{ "write-iops=5001", -EINVAL, { 0 } },
	{ "burst-bps=1K", -EINVAL, { 0 } },
	{ "bps=1G,burst-bps=512M", -EINVAL, { 0 } },
	/* a good item does not survive a bad one after it */
	{ "iops=1,bogus=2", -EINVAL, { 0 } },
};
#pragma GCC diagnostic pop

static int same(const struct thr_limits *a, const struct thr_limits *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

static void test_cases(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct lim_case *c = &cases[i];
		struct thr_limits l = base;
		char msg[256] = "";
		int err = thr_limits_parse(c->spec, &l, msg, sizeof(msg));

		if (err != c->err)
			fprintf(stderr, "parse(\"%s\") = %d (%s), want %d\n",
				c->spec, err, msg, c->err);
		CHECK_EQ(err, c->err);
		if (err) {
			CHECK(same(&l, &base));
			CHECK(msg[0] != '\0');
		} else {
			CHECK(same(&l, &c->want));
		}
	}
	CHECK_EQ(thr_limits_parse(NULL, &(struct thr_limits){ 0 }, NULL, 0), -EINVAL);
}

/* 10 KiB of anything: an error, a bounded message, no overrun. */
static void test_long(void)
{
	static char spec[10 * 1024 + 64];
	struct thr_limits l = base;
	char msg[128];

	memset(spec, '9', sizeof(spec) - 1);
	memcpy(spec, "bps=", 4);
	CHECK_EQ(thr_limits_parse(spec, &l, msg, sizeof(msg)), -ERANGE);
	CHECK(strlen(msg) < sizeof(msg) && strstr(msg, "too large"));
	memset(spec, 'k', sizeof(spec) - 1);
	CHECK_EQ(thr_limits_parse(spec, &l, msg, sizeof(msg)), -EINVAL);
	memset(spec, ',', sizeof(spec) - 1);
	CHECK_EQ(thr_limits_parse(spec, &l, msg, sizeof(msg)), -EINVAL);
	memset(spec, '=', sizeof(spec) - 1);
	CHECK_EQ(thr_limits_parse(spec, &l, msg, 1), -EINVAL);
	CHECK(same(&l, &base));
	/* many good items are fine: 10 KiB of "iops=1," ends in a repeat */
	for (size_t i = 0; i + 8 < sizeof(spec); i += 7)
		memcpy(spec + i, "iops=1,", 7);
	CHECK_EQ(thr_limits_parse(spec, &l, msg, sizeof(msg)), -EINVAL);
	CHECK(strstr(msg, "twice") != NULL);
}

static void test_messages(void)
{
	struct thr_limits l = base;
	char msg[256];

	thr_limits_parse("burst-iops=100", &l, msg, sizeof(msg));
	CHECK(strstr(msg, "burst-iops 100 is below iops 2000") != NULL);
	thr_limits_parse("frob=1", &l, msg, sizeof(msg));
	CHECK(strstr(msg, "unknown limit \"frob\"") != NULL);
	thr_limits_parse("iops=-3", &l, msg, sizeof(msg));
	CHECK(strstr(msg, "negative") != NULL);
	thr_limits_parse("iops=", &l, msg, sizeof(msg));
	CHECK(strstr(msg, "iops: missing value") != NULL);
}

static void test_check(void)
{
	char msg[128];

	CHECK_EQ(thr_limits_check(&(struct thr_limits){ 0 }, msg, sizeof(msg)), 0);
	CHECK_EQ(thr_limits_check(&(struct thr_limits){ .read_bps = 10, .burst_bps = 9 },
				  msg, sizeof(msg)), -EINVAL);
	CHECK_EQ(thr_limits_check(&(struct thr_limits){ .burst_seconds = 1ull << 32 },
				  msg, sizeof(msg)), -ERANGE);
}

static void test_format(void)
{
	const struct thr_limits ls[] = {
		{ 0 }, base,
		{ .iops = 1, .read_iops = 2, .write_iops = 3, .bps = 4 << 10,
		  .read_bps = 5ull << 20, .write_bps = 6ull << 30, .burst_iops = 7,
		  .burst_bps = 15ull << 60, .burst_seconds = 9, .iops_size = 4097 },
		{ .iops = UINT64_MAX, .read_iops = UINT64_MAX, .write_iops = UINT64_MAX,
		  .bps = UINT64_MAX, .read_bps = UINT64_MAX, .write_bps = UINT64_MAX,
		  .burst_iops = UINT64_MAX, .burst_bps = UINT64_MAX,
		  .burst_seconds = THR_BURST_SECONDS_MAX, .iops_size = UINT64_MAX },
	};
	char buf[THR_LIMITS_FMT_MAX], small[12];

	CHECK_EQ(thr_limits_format(&ls[0], buf, sizeof(buf)), 0);
	CHECK(strcmp(buf, "none") == 0);
	CHECK_EQ(thr_limits_format(&base, buf, sizeof(buf)), 0);
	CHECK(strcmp(buf, "iops=2000,write-bps=1M,burst-iops=5000") == 0);
	CHECK_EQ(thr_limits_format(&ls[2], buf, sizeof(buf)), 0);
	CHECK(strcmp(buf, "iops=1,read-iops=2,write-iops=3,bps=4K,read-bps=5M,"
		     "write-bps=6G,burst-iops=7,burst-bps=15E,burst-seconds=9,"
		     "iops-size=4097") == 0);
	for (size_t i = 0; i < sizeof(ls) / sizeof(ls[0]); i++) {
		struct thr_limits back = { .iops = 42, .burst_seconds = 3 };
		char msg[128];

		CHECK_EQ(thr_limits_format(&ls[i], buf, sizeof(buf)), 0);
		if (i != 0)	/* "none" must clear what was there */
			back = (struct thr_limits){ 0 };
		CHECK_EQ(thr_limits_parse(buf, &back, msg, sizeof(msg)), 0);
		CHECK(same(&back, &ls[i]));
	}
	CHECK_EQ(thr_limits_format(&ls[3], small, sizeof(small)), -ENOSPC);
	CHECK(strlen(small) == sizeof(small) - 1);
	CHECK_EQ(thr_limits_format(&ls[3], NULL, 0), -ENOSPC);
}

int main(void)
{
	test_cases();
	test_long();
	test_messages();
	test_check();
	test_format();
	return test_done("test-throttle-limits");
}
