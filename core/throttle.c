/* Token-bucket arithmetic for I/O limits (see throttle.h).
 *
 * Levels are kept in unit-nanoseconds: charging c units adds c * 10^9,
 * draining for d ns at r units/s removes r * d, and the wait for an
 * excess e is e / r ns.  Every quantity is exact; the bounds that keep
 * it inside 128 bits are noted where they matter. */
#include <string.h>

#include "core/throttle.h"

typedef unsigned __int128 thr_u128;

#define NS_PER_S 1000000000u

static uint64_t bucket_rate(const struct thr_limits *l, enum thr_bucket b)
{
	switch (b) {
	case THR_B_IOPS: return l->iops;
	case THR_B_IOPS_READ: return l->read_iops;
	case THR_B_IOPS_WRITE: return l->write_iops;
	case THR_B_BPS: return l->bps;
	case THR_B_BPS_READ: return l->read_bps;
	case THR_B_BPS_WRITE: return l->write_bps;
	default: return 0;
	}
}

/* The burst rate of bucket b, 0 for none.  Never below the rate, so that
 * limits that skipped thr_limits_check cannot throttle below the rate. */
static uint64_t bucket_burst(const struct thr_limits *l, enum thr_bucket b)
{
	uint64_t rate = bucket_rate(l, b);
	uint64_t burst = b < THR_B_BPS ? l->burst_iops : l->burst_bps;

	if (!rate || !burst)
		return 0;
	return burst > rate ? burst : rate;
}

/* Main capacity: B * L s or rate / 10.  B, L < 2^64, 2^32 and 10^9 <
 * 2^30: below 2^126, leaving room for one charge (< 2^94) on top. */
static thr_u128 cap_main(const struct thr_limits *l, enum thr_bucket b)
{
	uint64_t burst = bucket_burst(l, b);
	uint64_t len = l->burst_seconds ? l->burst_seconds : 1;

	if (len > THR_BURST_SECONDS_MAX)
		len = THR_BURST_SECONDS_MAX;
	if (!burst)
		return (thr_u128)bucket_rate(l, b) * (NS_PER_S / 10);
	return (thr_u128)burst * len * NS_PER_S;
}

static thr_u128 cap_burst(const struct thr_limits *l, enum thr_bucket b)
{
	return (thr_u128)bucket_burst(l, b) * (NS_PER_S / 10);
}

static void drain(thr_u128 *level, thr_u128 amount)
{
	*level = *level > amount ? *level - amount : 0;
}

/* ns until level is back at cap when draining at rate (> 0): rounded up,
 * so that asking again after it finds room. */
static uint64_t over(thr_u128 level, thr_u128 cap, uint64_t rate)
{
	thr_u128 w;

	if (level <= cap)
		return 0;
	w = (level - cap + rate - 1) / rate;
	return w > UINT64_MAX ? UINT64_MAX : (uint64_t)w;
}

/* Drains every bucket up to now; returns how far now is behind the
 * state's clock when that is within the slack (0 otherwise).  Draining
 * for a backwards step would hand out tokens twice, once for each pass
 * over the same time, so a small step back drains nothing; a large one
 * means a new time base and the drain restarts from it. */
static uint64_t thr_drain(struct thr_state *st, const struct thr_limits *l,
			  uint64_t now)
{
	uint64_t delta;

	if (now < st->last_ns) {
		uint64_t behind = st->last_ns - now;

		if (behind <= THR_CLOCK_SLACK_NS)
			return behind;
		st->last_ns = now;
		return 0;
	}
	delta = now - st->last_ns;
	st->last_ns = now;
	if (!delta)
		return 0;
	for (int b = 0; b < THR_NR_BUCKETS; b++) {
		/* rate, delta < 2^64: the product fits in 128 bits */
		drain(&st->level[b], (thr_u128)bucket_rate(l, b) * delta);
		drain(&st->burst[b], (thr_u128)bucket_burst(l, b) * delta);
	}
	return 0;
}

void thr_init(struct thr_state *st)
{
	memset(st, 0, sizeof(*st));
}

void thr_clamp(struct thr_state *st, const struct thr_limits *l)
{
	for (int b = 0; b < THR_NR_BUCKETS; b++) {
		thr_u128 cm = cap_main(l, b), cb = cap_burst(l, b);

		/* A bucket without a rate has capacity 0: emptied. */
		if (st->level[b] > cm)
			st->level[b] = cm;
		if (st->burst[b] > cb)
			st->burst[b] = cb;
	}
}

void thr_set_limits(struct thr_state *st, const struct thr_limits *old,
		    const struct thr_limits *new, uint64_t now_ns)
{
	thr_drain(st, old, now_ns);
	thr_clamp(st, new);
}

uint64_t thr_admit(struct thr_state *st, const struct thr_limits *l,
		   enum thr_op op, uint64_t bytes, uint64_t now_ns)
{
	enum thr_bucket dir_iops, dir_bps;
	enum thr_bucket which[4];
	uint64_t cost[4], ops = 1, wait = 0, behind;

	switch (op) {
	case THR_OP_READ:
		dir_iops = THR_B_IOPS_READ;
		dir_bps = THR_B_BPS_READ;
		break;
	case THR_OP_WRITE:
		dir_iops = THR_B_IOPS_WRITE;
		dir_bps = THR_B_BPS_WRITE;
		break;
	case THR_OP_TRIM:
	case THR_OP_ZERO:
		dir_iops = THR_B_IOPS_WRITE;
		dir_bps = THR_B_BPS_WRITE;
		bytes = 0;	/* one operation, no data */
		break;
	default:
		return 0;	/* FLUSH: no I/O */
	}
	if (!thr_active(l))
		return 0;
	if (op != THR_OP_TRIM && op != THR_OP_ZERO && l->iops_size &&
	    bytes > l->iops_size)
		ops = bytes / l->iops_size + (bytes % l->iops_size != 0);

	which[0] = THR_B_IOPS, cost[0] = ops;
	which[1] = dir_iops, cost[1] = ops;
	which[2] = THR_B_BPS, cost[2] = bytes;
	which[3] = dir_bps, cost[3] = bytes;

	behind = thr_drain(st, l, now_ns);
	for (int i = 0; i < 4; i++) {
		enum thr_bucket b = which[i];
		uint64_t rate = bucket_rate(l, b), burst = bucket_burst(l, b);
		uint64_t w;

		/* A bucket a request costs nothing in does not hold it. */
		if (!rate || !cost[i])
			continue;
		w = over(st->level[b], cap_main(l, b), rate);
		if (w > wait)
			wait = w;
		if (burst) {
			w = over(st->burst[b], cap_burst(l, b), burst);
			if (w > wait)
				wait = w;
		}
	}
	if (wait)
		return wait > UINT64_MAX - behind ? UINT64_MAX : wait + behind;

	for (int i = 0; i < 4; i++) {
		enum thr_bucket b = which[i];
		/* cost < 2^64, so a charge is < 2^94 */
		thr_u128 charge = (thr_u128)cost[i] * NS_PER_S;

		if (!bucket_rate(l, b) || !cost[i])
			continue;
		st->level[b] += charge;
		if (bucket_burst(l, b))
			st->burst[b] += charge;
	}
	return 0;
}
