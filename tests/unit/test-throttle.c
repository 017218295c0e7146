/* Bucket arithmetic of core/throttle.c against what a token bucket must
 * do, on a fake clock.  The checks do not restate the predicate: a
 * client that always has requests waiting ("greedy") is run in small
 * time steps and the requests it got through are counted per window, to
 * be compared with rate x time plus the documented allowance. */
#include <errno.h>
#include <stdint.h>

#include "core/throttle.h"
#include "tests/lib/test.h"

#define MS 1000000ull
#define S 1000000000ull

/* At every step from `from` up to (not including) `to`, send requests
 * until one is refused; returns how many went. */
static uint64_t greedy(struct thr_state *st, const struct thr_limits *l,
		       enum thr_op op, uint64_t bytes, uint64_t from,
		       uint64_t to, uint64_t step)
{
	uint64_t n = 0;

	for (uint64_t t = from; t < to; t += step)
		while (thr_admit(st, l, op, bytes, t) == 0)
			n++;
	return n;
}

/* |got - want| <= want / 100 (and at least `slack`) */
static int within_1pc(uint64_t got, uint64_t want, uint64_t slack)
{
	uint64_t tol = want / 100 > slack ? want / 100 : slack;
	uint64_t d = got > want ? got - want : want - got;

	if (d > tol)
		fprintf(stderr, "  got %llu, want %llu +- %llu\n",
			(unsigned long long)got, (unsigned long long)want,
			(unsigned long long)tol);
	return d <= tol;
}

static void test_no_limits(void)
{
	struct thr_limits l = { .burst_seconds = 5, .iops_size = 4096 };
	struct thr_state st;

	thr_init(&st);
	CHECK(!thr_active(&l));
	for (uint64_t i = 0; i < 1000; i++)
		CHECK_EQ(thr_admit(&st, &l, THR_OP_READ, UINT64_MAX, 0), 0);
	l.write_bps = 1;
	CHECK(thr_active(&l));
}

/* Long-run rate, and the first window's allowance (rate / 10). */
static void test_iops_rate(void)
{
	struct thr_limits l = { .iops = 1000 };
	struct thr_state st;
	uint64_t n;

	thr_init(&st);
	n = greedy(&st, &l, THR_OP_READ, 4096, 0, 1 * S, 100000);
	CHECK(n >= 1000 && n <= 1000 + 100 + 1);
	for (uint64_t w = 1; w < 100; w++) {
		n = greedy(&st, &l, THR_OP_READ, 4096, w * S, (w + 1) * S, 100000);
		CHECK(within_1pc(n, 1000, 1));
	}
	/* a slow rate, large steps: 7 ops/s over 100 s */
	l.iops = 7;
	thr_init(&st);
	n = greedy(&st, &l, THR_OP_WRITE, 512, 0, 100 * S, 3 * MS);
	CHECK(within_1pc(n, 700, 1));
}

static void test_bps_rate(void)
{
	struct thr_limits l = { .bps = 20ull << 20 };
	struct thr_state st;
	uint64_t n;

	thr_init(&st);
	greedy(&st, &l, THR_OP_READ, 1 << 20, 0, 1 * S, MS);
	n = greedy(&st, &l, THR_OP_READ, 1 << 20, 1 * S, 11 * S, MS);
	CHECK(within_1pc(n, 200, 2));
	/* a request larger than the whole bucket still goes, then waits */
	l.bps = 1000;
	thr_init(&st);
	CHECK_EQ(thr_admit(&st, &l, THR_OP_WRITE, 10000, 0), 0);
	CHECK_EQ(thr_admit(&st, &l, THR_OP_WRITE, 1, 0), (10000 - 100) * MS);
	CHECK_EQ(thr_admit(&st, &l, THR_OP_WRITE, 1, 9900 * MS), 0);
}

/* iops=100, burst-iops=1000 for 2 s: a quiet disk runs at ~1000/s until
 * the bucket (2000 ops) is full, never above 1000/s (+ its 0.1 s slack),
 * then settles at 100/s; a long quiet spell gives the burst back. */
static void test_burst(void)
{
	struct thr_limits l = { .iops = 100, .burst_iops = 1000, .burst_seconds = 2 };
	struct thr_state st;
	uint64_t n, total = 0;

	thr_init(&st);
	n = greedy(&st, &l, THR_OP_READ, 4096, 0, 100 * MS, MS);
	CHECK(n >= 100 && n <= 100 + 100 + 1);
	total += n;
	for (uint64_t w = 1; w < 20; w++) {
		n = greedy(&st, &l, THR_OP_READ, 4096, w * 100 * MS, (w + 1) * 100 * MS, MS);
		CHECK(within_1pc(n, 100, 1));	/* 1000/s in 0.1 s */
		total += n;
	}
	total += greedy(&st, &l, THR_OP_READ, 4096, 2 * S, 5 * S, MS);
	n = greedy(&st, &l, THR_OP_READ, 4096, 5 * S, 15 * S, MS);
	CHECK(within_1pc(n, 1000, 1));	/* settled: 100/s */
	total += n;
	/* everything: rate x 15 s + the bucket (2000) + the one overshoot */
	CHECK(within_1pc(total, 100 * 15 + 2000 + 1, 2));
	/* quiet for 30 s (the bucket drains in 20), then the burst again */
	n = greedy(&st, &l, THR_OP_READ, 4096, 45 * S, 46 * S, MS);
	CHECK(within_1pc(n, 1100, 5));
	/* burst rate == rate is allowed: a 1 s bucket, no faster than rate */
	l = (struct thr_limits){ .bps = 1000, .burst_bps = 1000 };
	thr_init(&st);
	n = greedy(&st, &l, THR_OP_READ, 10, 0, 10 * S, MS);
	CHECK(within_1pc(n, 1000 + 11, 2));	/* 11 fit the 0.1 s slack */
}

static void test_iops_size(void)
{
	struct thr_limits l = { .iops = 100, .iops_size = 4096 };
	struct thr_state st;

	thr_init(&st);
	greedy(&st, &l, THR_OP_READ, 16384, 0, S, MS);
	CHECK(within_1pc(greedy(&st, &l, THR_OP_READ, 16384, S, 41 * S, MS), 1000, 1));
	greedy(&st, &l, THR_OP_READ, 4097, 41 * S, 42 * S, MS);	/* 2 ops each */
	CHECK(within_1pc(greedy(&st, &l, THR_OP_READ, 4097, 42 * S, 62 * S, MS), 1000, 1));
	greedy(&st, &l, THR_OP_READ, 4096, 62 * S, 63 * S, MS);	/* 1 op each */
	CHECK(within_1pc(greedy(&st, &l, THR_OP_READ, 4096, 63 * S, 73 * S, MS), 1000, 1));
	/* TRIM of any length is one op, whatever iops-size says */
	CHECK(within_1pc(greedy(&st, &l, THR_OP_TRIM, 1 << 30, 74 * S, 84 * S, MS),
			 1000 + 10 + 1, 2));
}

/* A held direction does not hold the other; totals cover both. */
static void test_directions(void)
{
	struct thr_limits l = { .read_iops = 10 };
	struct thr_state st;
	uint64_t r = 0, w = 0;

	thr_init(&st);
	for (uint64_t t = 0; t < 10 * S; t += MS) {
		r += greedy(&st, &l, THR_OP_READ, 4096, t, t + 1, 1);
		for (int i = 0; i < 5; i++)
			w += thr_admit(&st, &l, THR_OP_WRITE, 1 << 20, t) == 0;
	}
	CHECK(within_1pc(r, 100 + 1, 1));
	CHECK_EQ(w, 5 * 10000);

	l = (struct thr_limits){ .iops = 100, .read_iops = 10 };
	thr_init(&st);
	r = w = 0;
	for (uint64_t t = 0; t < 100 * S; t += MS) {
		r += greedy(&st, &l, THR_OP_READ, 4096, t, t + 1, 1);
		w += greedy(&st, &l, THR_OP_WRITE, 4096, t, t + 1, 1);
	}
	CHECK(within_1pc(r, 1000, 2));
	CHECK(within_1pc(r + w, 10000, 2));

	/* bps: TRIM/WRITE_ZEROES move no bytes, FLUSH nothing at all */
	l = (struct thr_limits){ .write_bps = 1, .read_iops = 1 };
	thr_init(&st);
	for (int i = 0; i < 100; i++) {
		CHECK_EQ(thr_admit(&st, &l, THR_OP_TRIM, 1 << 30, 0), 0);
		CHECK_EQ(thr_admit(&st, &l, THR_OP_ZERO, 1 << 30, 0), 0);
		CHECK_EQ(thr_admit(&st, &l, THR_OP_FLUSH, 1 << 30, 0), 0);
	}
	CHECK_EQ(thr_admit(&st, &l, THR_OP_READ, 0, 0), 0);
	CHECK(thr_admit(&st, &l, THR_OP_READ, 0, 0) > 0);
	CHECK_EQ(thr_admit(&st, &l, THR_OP_FLUSH, 0, 0), 0);
	CHECK_EQ(thr_admit(&st, &l, THR_OP_WRITE, 0, 0), 0);	/* no bytes */
	CHECK(thr_admit(&st, &l, THR_OP_WRITE, 1, 0) == 0);	/* empty: goes */
	CHECK(thr_admit(&st, &l, THR_OP_WRITE, 1, 0) > 0);
	CHECK_EQ(thr_admit(&st, &l, THR_OP_TRIM, 4096, 0), 0);	/* bps full */
	CHECK_EQ(thr_admit(&st, &l, THR_OP_WRITE, 0, 0), 0);
}

/* Changes take effect at once, without a backlog or a free refill. */
static void test_set_limits(void)
{
	struct thr_limits l = { .iops = 100 }, up = { .iops = 1000 },
		down = { .iops = 10 };
	struct thr_state st;
	uint64_t n, w;

	thr_init(&st);
	greedy(&st, &l, THR_OP_READ, 4096, 0, 10 * S, MS);
	thr_set_limits(&st, &l, &up, 10 * S);
	n = greedy(&st, &up, THR_OP_READ, 4096, 10 * S, 11 * S, MS);
	CHECK(n >= 1000 - 10 && n <= 1000 + 100 + 1);
	CHECK(within_1pc(greedy(&st, &up, THR_OP_READ, 4096, 11 * S, 21 * S, MS), 10000, 1));

	thr_set_limits(&st, &up, &down, 21 * S);
	n = greedy(&st, &down, THR_OP_READ, 4096, 21 * S, 31 * S, MS);
	CHECK(within_1pc(n, 100, 2));
	/* removing the limit: everything goes; adding one: starts empty */
	thr_set_limits(&st, &down, &(struct thr_limits){ 0 }, 31 * S);
	l = (struct thr_limits){ .write_iops = 10 };
	thr_set_limits(&st, &(struct thr_limits){ 0 }, &l, 32 * S);
	CHECK_EQ(greedy(&st, &l, THR_OP_WRITE, 1, 32 * S, 32 * S + 1, 1), 2);
	w = thr_admit(&st, &l, THR_OP_WRITE, 1, 32 * S);
	CHECK(w > 0 && w <= 100 * MS);
}

/* The wait is exact: one ns earlier is still refused, then it goes.
 * Checked on copies, so that asking does not change the story. */
static void test_wait_exact(void)
{
	const struct thr_limits ls[] = {
		{ .iops = 3 }, { .bps = 1000, .read_bps = 333 },
		{ .iops = 1000, .burst_iops = 5000, .burst_seconds = 3 },
		{ .write_iops = 7, .write_bps = 12345, .iops_size = 100 },
	};

	for (size_t i = 0; i < sizeof(ls) / sizeof(ls[0]); i++) {
		struct thr_state st;
		uint64_t t = 0, checked = 0, attempt = 0;

		thr_init(&st);
		while (checked < 200) {
			struct thr_state a = st, b = st;
			enum thr_op op = attempt++ % 3 ? THR_OP_READ : THR_OP_WRITE;
			uint64_t w = thr_admit(&st, &ls[i], op, 777, t);

			if (!w)
				continue;
			CHECK(thr_admit(&a, &ls[i], op, 777, t + w - 1) > 0);
			CHECK_EQ(thr_admit(&b, &ls[i], op, 777, t + w), 0);
			t += w / 2 + 1;
			checked++;
		}
	}
}

/* Extreme rates, sizes and clocks: nothing wraps, nothing sticks. */
static void test_overflow(void)
{
	struct thr_limits l = { .bps = UINT64_MAX, .burst_bps = UINT64_MAX,
				.burst_seconds = THR_BURST_SECONDS_MAX };
	struct thr_state st;
	uint64_t w;

	/* 2^64 B at 2^64 B/s: the burst bucket (0.1 s) holds one, then 0.9 s */
	thr_init(&st);
	CHECK_EQ(thr_admit(&st, &l, THR_OP_READ, UINT64_MAX, 5), 0);
	w = thr_admit(&st, &l, THR_OP_READ, UINT64_MAX, 5);
	CHECK(w >= 899 * MS && w <= 901 * MS);
	CHECK_EQ(thr_admit(&st, &l, THR_OP_READ, UINT64_MAX, 5 + w), 0);
	/* the same in operations, through iops-size = 1 */
	l = (struct thr_limits){ .iops = UINT64_MAX, .iops_size = 1 };
	thr_init(&st);
	CHECK_EQ(thr_admit(&st, &l, THR_OP_WRITE, UINT64_MAX, 0), 0);
	w = thr_admit(&st, &l, THR_OP_WRITE, UINT64_MAX, 0);
	CHECK(w >= 899 * MS && w <= 901 * MS);
	/* 1 B/s and a 2^64 B request: the wait is longer than a uint64 */
	l = (struct thr_limits){ .bps = 1 };
	thr_init(&st);
	CHECK_EQ(thr_admit(&st, &l, THR_OP_READ, UINT64_MAX, 0), 0);
	CHECK_EQ(thr_admit(&st, &l, THR_OP_READ, 1, 0), UINT64_MAX);
	CHECK(thr_admit(&st, &l, THR_OP_READ, 1, UINT64_MAX) > 0);	/* 584 years */
	/* 10^9 ops/s, asked every ns near the end of the clock */
	l = (struct thr_limits){ .iops = 1000000000 };
	thr_init(&st);
	for (uint64_t t = UINT64_MAX - 100000; t < UINT64_MAX; t++)
		CHECK_EQ(thr_admit(&st, &l, THR_OP_READ, 1, t), 0);
	/* a huge gap empties the bucket and no more */
	l = (struct thr_limits){ .iops = 10 };
	thr_init(&st);
	CHECK_EQ(greedy(&st, &l, THR_OP_READ, 1, 0, 1, 1), 2);
	CHECK_EQ(greedy(&st, &l, THR_OP_READ, 1, UINT64_MAX - 1, UINT64_MAX, 1), 2);
}

static void test_clock_backwards(void)
{
	struct thr_limits l = { .iops = 10 };
	struct thr_state st;
	uint64_t n = 0, w;

	thr_init(&st);
	n = greedy(&st, &l, THR_OP_READ, 1, 10 * S, 10 * S + 1, 1);
	CHECK_EQ(n, 2);
	/* going back and forth within the slack drains nothing twice */
	for (uint64_t i = 0; i < 1000; i++) {
		uint64_t t = 10 * S + i * MS;

		n += greedy(&st, &l, THR_OP_READ, 1, t, t + 1, 1);
		n += greedy(&st, &l, THR_OP_READ, 1, t - 500 * MS, t - 500 * MS + 1, 1);
	}
	CHECK(n <= 2 + 10 + 1);
	/* a small step back is waited out */
	w = thr_admit(&st, &l, THR_OP_READ, 1, 11 * S - 10 * MS);
	CHECK(w > 9 * MS && w <= 110 * MS);	/* 9 ms behind + <= 0.1 s */
	/* a jump back by hours: a new time base, not hours of stall */
	thr_admit(&st, &l, THR_OP_READ, 1, 11 * S);
	w = thr_admit(&st, &l, THR_OP_READ, 1, 1 * S);
	CHECK(w > 0 && w <= 100 * MS);
	n = greedy(&st, &l, THR_OP_READ, 1, 1 * S, 11 * S, MS);
	CHECK(within_1pc(n, 100, 1));
}

int main(void)
{
	test_no_limits();
	test_iops_rate();
	test_bps_rate();
	test_burst();
	test_iops_size();
	test_directions();
	test_set_limits();
	test_wait_exact();
	test_overflow();
	test_clock_backwards();
	return test_done("test-throttle");
}
