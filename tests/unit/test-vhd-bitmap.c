/* Sector bitmaps (drivers/vhd-bitmap.c) against a bit-by-bit model on
 * random bitmaps: test, set/clear ranges, "all equal" ranges, and the
 * runs that split a request, which must cover it exactly. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "drivers/vhd-format.h"
#include "tests/lib/test.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void test_bitmap(void)
{
	uint8_t bm[64], model[512];

	CHECK_EQ(vhd_bitmap_bytes(512), 512);
	CHECK_EQ(vhd_bitmap_bytes(2 << 20), 512);
	CHECK_EQ(vhd_bitmap_bytes(4 << 20), 1024);
	CHECK_EQ(vhd_bitmap_bytes(256u << 20), 65536);
	memset(bm, 0, sizeof(bm));
	vhd_bitmap_set_range(bm, 0, 1, true);
	vhd_bitmap_set_range(bm, 9, 1, true);
	CHECK(bm[0] == 0x80 && bm[1] == 0x40);	/* MSB first */
	for (int iter = 0; iter < 20000; iter++) {
		uint32_t first, count, n, want;
		bool v;

		/* Random bitmap with long runs sometimes, noise other times. */
		for (int i = 0; i < 512; i++)
			model[i] = iter % 3 ? (rnd() % 16 == 0) ^ (i > 0 && model[i - 1])
					    : rnd() & 1;
		memset(bm, 0, sizeof(bm));
		for (int i = 0; i < 512; i++)
			if (model[i])
				vhd_bitmap_set_range(bm, (uint32_t)i, 1, true);
		for (int i = 0; i < 512; i++)
			if (vhd_bitmap_test(bm, (uint32_t)i) != model[i])
				CHECK(!"set/test disagree with the model");
		first = (uint32_t)(rnd() % 512);
		count = (uint32_t)(rnd() % (512 - first + 1));
		for (want = 0; want < count && model[first + want] == model[first]; want++)
			;
		n = vhd_bitmap_run(bm, first, count, &v);
		if (n != want || (count && v != model[first])) {
			fprintf(stderr, "run(%u, %u) = %u/%d, model %u/%d\n", first, count, n, v,
				want, model[first]);
			test_failures++;
		}
		for (int val = 0; val < 2; val++) {
			bool all = true;

			for (uint32_t i = 0; i < count; i++)
				all = all && model[first + i] == val;
			CHECK(vhd_bitmap_range_is(bm, first, count, val) == all);
		}
		/* set_range against the model. */
		v = rnd() & 1;
		vhd_bitmap_set_range(bm, first, count, v);
		memset(model + first, v, count);
		for (int i = 0; i < 512; i++)
			if (vhd_bitmap_test(bm, (uint32_t)i) != model[i]) {
				fprintf(stderr, "set_range(%u, %u, %d) wrong at %d\n", first,
					count, v, i);
				test_failures++;
				break;
			}
	}
	/* Splitting a request into runs covers it exactly. */
	memset(bm, 0, sizeof(bm));
	vhd_bitmap_set_range(bm, 3, 10, true);
	vhd_bitmap_set_range(bm, 100, 200, true);
	{
		uint32_t s = 0, runs = 0;
		bool v, last = true;

		while (s < 512) {
			uint32_t n = vhd_bitmap_run(bm, s, 512 - s, &v);

			CHECK(n > 0 && v != last);
			last = v;
			s += n;
			runs++;
		}
		CHECK_EQ(runs, 5);
	}
	CHECK_EQ(vhd_bitmap_run(bm, 5, 0, &(bool){ 0 }), 0);
}

int main(void)
{
	test_bitmap();
	return test_done("test-vhd-bitmap");
}
