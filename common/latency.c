/* Latency histogram. */
#include "common/latency.h"

static unsigned lat_bucket(uint64_t v)
{
	if (v < 16)
		return (unsigned)v;
	unsigned e = 63 - (unsigned)__builtin_clzll(v);	/* e >= 4 */
	unsigned sub = (unsigned)(v >> (e - 3)) & 7;
	unsigned idx = 16 + (e - 4) * 8 + sub;
	return idx < LAT_BUCKETS ? idx : LAT_BUCKETS - 1;
}

static uint64_t lat_bucket_upper(unsigned idx)
{
	if (idx < 16)
		return idx;
	unsigned e = (idx - 16) / 8 + 4, sub = (idx - 16) % 8;
	return ((8ull + sub + 1) << (e - 3)) - 1;
}

void lat_record(struct lat_hist *h, uint64_t us)
{
	h->buckets[lat_bucket(us)]++;
	h->count++;
}

void lat_record_shared(struct lat_hist *h, uint64_t us)
{
	__atomic_fetch_add(&h->buckets[lat_bucket(us)], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
}

void lat_copy_shared(struct lat_hist *dst, const struct lat_hist *src)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < LAT_BUCKETS; i++) {
		dst->buckets[i] = __atomic_load_n(&src->buckets[i], __ATOMIC_RELAXED);
		n += dst->buckets[i];
	}
	dst->count = n;	/* what the buckets say, so percentiles add up */
}

uint64_t lat_percentile(const struct lat_hist *h, double p)
{
	if (!h->count)
		return 0;
	uint64_t want = (uint64_t)((double)h->count * p / 100.0 + 0.5), seen = 0;
	if (want == 0)
		want = 1;
	for (unsigned i = 0; i < LAT_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= want)
			return lat_bucket_upper(i);
	}
	return lat_bucket_upper(LAT_BUCKETS - 1);
}
