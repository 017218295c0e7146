/* vd_parse_size: the accepted spellings and every kind of bad input. */
#include <errno.h>
#include <stdint.h>

#include "common/size.h"
#include "tests/lib/test.h"

struct size_case {
	const char *in;
	int err;		/* expected return */
	uint64_t val;		/* expected value when err == 0 */
};

static const struct size_case cases[] = {
	/* plain bytes */
	{ "1", 0, 1 },
	{ "512", 0, 512 },
	{ "512B", 0, 512 },
	{ "512b", 0, 512 },
	{ "007", 0, 7 },
	{ "18446744073709551615", 0, UINT64_MAX },
	/* units, powers of 1024, any case, with B or iB */
	{ "1K", 0, 1024 },
	{ "1k", 0, 1024 },
	{ "1KB", 0, 1024 },
	{ "1kb", 0, 1024 },
	{ "1KiB", 0, 1024 },
	{ "1kib", 0, 1024 },
	{ "64M", 0, 64ull << 20 },
	{ "64MiB", 0, 64ull << 20 },
	{ "1G", 0, 1ull << 30 },
	{ "3g", 0, 3ull << 30 },
	{ "1GB", 0, 1ull << 30 },
	{ "16T", 0, 16ull << 40 },
	{ "16TiB", 0, 16ull << 40 },
	{ "1P", 0, 1ull << 50 },
	{ "1pib", 0, 1ull << 50 },
	{ "16383P", 0, 16383ull << 50 },
	{ "17179869183G", 0, 17179869183ull << 30 },
	/* empty, zero, signs, blanks */
	{ "", -EINVAL, 0 },
	{ "0", -EINVAL, 0 },
	{ "00", -EINVAL, 0 },
	{ "0K", -EINVAL, 0 },
	{ "0B", -EINVAL, 0 },
	{ "-1", -EINVAL, 0 },
	{ "-1G", -EINVAL, 0 },
	{ "+1", -EINVAL, 0 },
	{ " 1", -EINVAL, 0 },
	{ "1 ", -EINVAL, 0 },
	{ "1 G", -EINVAL, 0 },
	{ "\t1", -EINVAL, 0 },
	/* junk */
	{ "1Q", -EINVAL, 0 },
	{ "12abc", -EINVAL, 0 },
	{ "abc", -EINVAL, 0 },
	{ "G", -EINVAL, 0 },
	{ "K1", -EINVAL, 0 },
	{ "1.5G", -EINVAL, 0 },
	{ "1e9", -EINVAL, 0 },
	{ "0x10", -EINVAL, 0 },
	{ "1GG", -EINVAL, 0 },
	{ "1GiBB", -EINVAL, 0 },
	{ "1Gi", -EINVAL, 0 },
	{ "1iB", -EINVAL, 0 },
	{ "1BB", -EINVAL, 0 },
	{ "1KBi", -EINVAL, 0 },
	{ "1E", -EINVAL, 0 },	/* exabytes: not a supported unit */
	{ "1\n", -EINVAL, 0 },
	/* overflow: in the digits, and in the unit */
	{ "18446744073709551616", -ERANGE, 0 },
	{ "99999999999999999999", -ERANGE, 0 },
	{ "999999999999999999999999999999", -ERANGE, 0 },
	{ "16384P", -ERANGE, 0 },
	{ "16777216P", -ERANGE, 0 },
	{ "17179869184G", -ERANGE, 0 },
	{ "18446744073709551615K", -ERANGE, 0 },
};

int main(void)
{
	uint64_t v;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct size_case *c = &cases[i];
		int err;

		v = 0xdeadbeef;
		err = vd_parse_size(c->in, &v);
		if (err != c->err || (err == 0 && v != c->val)) {
			fprintf(stderr, "vd_parse_size(\"%s\") = %d, %llu; want %d, %llu\n",
				c->in, err, (unsigned long long)v, c->err,
				(unsigned long long)c->val);
			test_failures++;
		}
		/* Failures leave the output alone. */
		if (err)
			CHECK_EQ(v, 0xdeadbeef);
	}
	CHECK_EQ(vd_parse_size(NULL, &v), -EINVAL);
	return test_done("test-size");
}
