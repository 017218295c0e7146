/* Coalescing of adjacent tiocbs into one iocb, and splitting its result
 * back.  Pure list and arithmetic code, no threads or syscalls, so that
 * the unit tests can drive it against a model. */
#ifndef VD_MERGE_H
#define VD_MERGE_H

#include <libaio.h>
#include <stdbool.h>

#include "queue/tiocb.h"

enum { TQ_SLOT_IOV_MAX = 256 };	/* hard cap on iovecs in one slot */

/* One iocb in flight and the tiocbs riding in it, in offset order. */
struct tq_slot {
	struct iocb iocb;	/* iocb.data points back at the slot */
	struct tiocb *head, *tail;
	unsigned count;
	unsigned iovcnt;
	size_t len;
	struct tq_slot *next;	/* free list */
	struct iovec iov[TQ_SLOT_IOV_MAX];
};

struct tq_merge_limits {
	unsigned max_iov;	/* <= TQ_SLOT_IOV_MAX */
	size_t max_bytes;
};

/* Starts a slot with t as its first tiocb. */
void tq_slot_start(struct tq_slot *s, struct tiocb *t);
/* True when t continues s: same fd, same op (READ/WRITE), same flags,
 * neither NOMERGE, t->offset == end of s, and the limits hold. */
bool tq_slot_can_append(const struct tq_slot *s, const struct tiocb *t,
			const struct tq_merge_limits *lim);
void tq_slot_append(struct tq_slot *s, struct tiocb *t);

/* Fills s->iocb for the kernel.  A single tiocb uses its own iovec array;
 * several use the slot's copy.  resfd < 0: no eventfd.  rwf_dsync: FUA
 * writes carry RWF_DSYNC (else the caller emulates FUA). */
void tq_slot_prep(struct tq_slot *s, int resfd, bool rwf_dsync);

/* Splits the result of s's iocb back to its tiocbs:
 *   res < 0, one tiocb:     it completes with res;
 *   res < 0, several:       each is retried alone (TIOCB_NOMERGE), so that
 *                           the error lands on the tiocb that caused it;
 *   res >= 0:               tiocbs covered in full complete with their
 *                           length; the first one not covered and those
 *                           after it are retried once, then fail with -EIO.
 * Completed tiocbs are appended to *done (t->res set), retried ones to
 * *retry, both in order, through t->next.  Returns the count completed. */
unsigned tq_slot_split(struct tq_slot *s, long res,
		       struct tiocb ***done_tail, struct tiocb ***retry_tail);

#endif
