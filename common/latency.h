/* Latency histogram: log-linear buckets (8 per power of two), constant
 * time to record, percentiles by walking the counts. */
#ifndef VD_LATENCY_H
#define VD_LATENCY_H

#include <stdint.h>

enum { LAT_BUCKETS = 16 + 8 * 40 };

struct lat_hist {
	uint64_t count;
	uint64_t buckets[LAT_BUCKETS];
};

void lat_record(struct lat_hist *h, uint64_t us);
/* For a histogram one thread records into while another reads it: both
 * sides use these (relaxed atomics: a count may trail a bucket by one). */
void lat_record_shared(struct lat_hist *h, uint64_t us);
void lat_copy_shared(struct lat_hist *dst, const struct lat_hist *src);
/* The value at percentile p (0..100], in microseconds; 0 when empty.
 * Reports the upper bound of the bucket: within 12.5% of the truth. */
uint64_t lat_percentile(const struct lat_hist *h, double p);

#endif
