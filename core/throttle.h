/* Per-disk I/O limits: token buckets over a caller's clock.
 *
 * Pure policy: no clock reads, no locks, no allocation, no logging.  The
 * request path asks one question, "may this request go now, and if not,
 * in how many nanoseconds should I ask again?", and keeps its held
 * requests (in order) itself.  The arithmetic is exact integer arithmetic
 * in 128 bits, so no rate, request size or clock value can overflow it.
 *
 * Buckets (each present only when its rate is set):
 *   iops, read-iops, write-iops   cost: operations (see iops-size)
 *   bps,  read-bps,  write-bps    cost: bytes
 * A read is charged to iops, read-iops, bps and read-bps; a write to the
 * total and the write buckets.  A direction limit thus applies on top of
 * the total one, and never holds up the other direction.
 *
 * A bucket fills by the cost of each admitted request and drains at its
 * rate.  A request may go when every bucket it is charged to is at or
 * below its capacity (so a request larger than a whole bucket still goes,
 * once the bucket has drained); it is then charged in full, which may take
 * the bucket above capacity and makes later requests wait.  Capacity:
 *   no burst        rate / 10: a tenth of a second of the rate, so that
 *                   short clusters of requests are not spaced out;
 *   burst B, for L  B * L (L = burst-seconds, default 1), and a second
 *                   bucket of capacity B / 10 draining at B holds the
 *                   rate during the burst to B.
 * So a disk that was quiet long enough may run at B until the bucket is
 * full (L * B / (B - rate) seconds at most), then settles at the rate.
 * burst-iops is the burst rate of every iops bucket that is set, burst-bps
 * of every bps bucket; each must be >= the rates it bursts.  A burst with
 * no rate of its kind, burst-seconds without a burst and iops-size without
 * an iops limit are kept but have no effect.
 *
 * Operation kinds (enum thr_op): FLUSH is no I/O (always admitted, charged
 * nothing).  TRIM and WRITE_ZEROES count as writes of one operation and
 * zero bytes, whatever their length: they move no data, but each costs
 * the device an operation.  Other commands (e.g. NBD CACHE) are mapped by
 * the caller.
 */
#ifndef VD_THROTTLE_H
#define VD_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum thr_op {
	THR_OP_READ,
	THR_OP_WRITE,
	THR_OP_FLUSH,		/* no I/O: never held */
	THR_OP_TRIM,		/* a write of one operation, zero bytes */
	THR_OP_ZERO,		/* WRITE_ZEROES: as TRIM */
};

/* The values, 0 = no limit.  A zeroed struct is "no limits". */
struct thr_limits {
	uint64_t iops, read_iops, write_iops;	/* operations per second */
	uint64_t bps, read_bps, write_bps;	/* bytes per second */
	uint64_t burst_iops, burst_bps;		/* burst rates (per second) */
	uint64_t burst_seconds;			/* 0 = the default, 1 */
	uint64_t iops_size;	/* a larger request counts as ceil(len / iops_size) */
};

enum {
	THR_BURST_SECONDS_MAX = 0xffffffffu,
	THR_LIMITS_FMT_MAX = 384,	/* thr_limits_format never needs more */
};

enum thr_bucket {
	THR_B_IOPS, THR_B_IOPS_READ, THR_B_IOPS_WRITE,
	THR_B_BPS, THR_B_BPS_READ, THR_B_BPS_WRITE,
	THR_NR_BUCKETS,
};

/* Bucket levels, in unit-nanoseconds (units x 10^9) so that draining
 * "rate x elapsed ns" is exact.  Private to throttle.c; complete here so
 * that it can live in a vbd or in a shared-memory segment. */
struct thr_state {
	uint64_t last_ns;			/* clock at the last drain */
	unsigned __int128 level[THR_NR_BUCKETS];
	unsigned __int128 burst[THR_NR_BUCKETS];
};

/* True when any rate is set.  With no limits the request path pays this
 * one branch and never calls thr_admit. */
static inline bool thr_active(const struct thr_limits *l)
{
	return (l->iops | l->read_iops | l->write_iops |
		l->bps | l->read_bps | l->write_bps) != 0;
}

/* Applies "KEY=VALUE,..." to *inout: iops, read-iops, write-iops,
 * burst-iops, burst-seconds take plain integers; bps, read-bps,
 * write-bps, burst-bps and iops-size also take a K, M, G, T, P or E suffix
 * (powers of 1024, any case, optional B or iB).  VALUE 0 or "none" removes
 * the limit (burst-seconds: back to the default).  The whole spec "none"
 * removes every limit.  Keys not named keep their value.  Returns 0, or
 * -EINVAL (syntax, unknown or repeated key, negative value, burst below a
 * rate) / -ERANGE (too large) with a message in msg and *inout untouched. */
int thr_limits_parse(const char *spec, struct thr_limits *inout,
		     char *msg, size_t msglen);

/* 0 when l is consistent (each burst >= the rates it bursts,
 * burst_seconds <= THR_BURST_SECONDS_MAX), else -EINVAL/-ERANGE + msg. */
int thr_limits_check(const struct thr_limits *l, char *msg, size_t msglen);

/* Writes l in the syntax thr_limits_parse reads ("iops=2000,bps=50M"),
 * keys in a fixed order, sizes with the largest exact suffix; "none" when
 * nothing is set.  0, or -ENOSPC when buf is too small (then truncated). */
int thr_limits_format(const struct thr_limits *l, char *buf, size_t len);

/* Empty buckets: a new disk starts with its full burst allowance. */
void thr_init(struct thr_state *st);

/* The decision.  op/bytes describe the request; now_ns is the caller's
 * monotonic clock.  Returns 0 when the request may go now: its cost has
 * been charged.  Otherwise returns the nanoseconds (>= 1, at most
 * UINT64_MAX) after which the same request would be admitted if nothing
 * else were charged meanwhile; nothing has been charged.  A clock that
 * goes back by up to THR_CLOCK_SLACK_NS (members of a group reading
 * their clocks before taking the lock) drains nothing and is waited out;
 * a larger jump back restarts the drain from the new time. */
uint64_t thr_admit(struct thr_state *st, const struct thr_limits *l,
		   enum thr_op op, uint64_t bytes, uint64_t now_ns);

#define THR_CLOCK_SLACK_NS 1000000000ull

/* Changes from old to new at now_ns, taking effect at once: drains at the
 * old rates up to now, then limits each level to the new capacity (no
 * backlog from a lowered limit, no free refill from a change) and empties
 * the buckets new does not limit.  new should have passed
 * thr_limits_check; the arithmetic stays safe if it has not. */
void thr_set_limits(struct thr_state *st, const struct thr_limits *old,
		    const struct thr_limits *new, uint64_t now_ns);

/* Limits every level to its capacity under l: after a crash mid-update
 * (see throttle-group.c) the levels may be anything. */
void thr_clamp(struct thr_state *st, const struct thr_limits *l);

#endif
