/* Coalescing adjacent tiocbs into one iocb and splitting the result. */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "queue/merge.h"

void tq_slot_start(struct tq_slot *s, struct tiocb *t)
{
	t->next = NULL;
	s->head = s->tail = t;
	s->count = 1;
	s->iovcnt = (unsigned)t->iovcnt;
	s->len = t->len;
}

bool tq_slot_can_append(const struct tq_slot *s, const struct tiocb *t,
			const struct tq_merge_limits *lim)
{
	const struct tiocb *h = s->head;

	if (h->op != TIOCB_READ && h->op != TIOCB_WRITE)
		return false;
	if (t->op != h->op || t->fd != h->fd || t->flags != h->flags)
		return false;
	if ((h->flags | t->flags) & TIOCB_NOMERGE)
		return false;
	if (t->offset != h->offset + s->len)
		return false;
	if (s->iovcnt + (unsigned)t->iovcnt > lim->max_iov ||
	    s->iovcnt + (unsigned)t->iovcnt > TQ_SLOT_IOV_MAX)
		return false;
	return s->len + t->len <= lim->max_bytes;
}

void tq_slot_append(struct tq_slot *s, struct tiocb *t)
{
	/* A lone tiocb rides on its own iovec array (no copy); the first
	 * merge copies the head's iovecs into the slot. */
	if (s->count == 1)
		memcpy(s->iov, s->head->iov, sizeof(struct iovec) * s->head->iovcnt);
	memcpy(s->iov + s->iovcnt, t->iov, sizeof(struct iovec) * t->iovcnt);
	s->iovcnt += (unsigned)t->iovcnt;
	s->len += t->len;
	s->count++;
	t->next = NULL;
	s->tail->next = t;
	s->tail = t;
}

void tq_slot_prep(struct tq_slot *s, int resfd, bool rwf_dsync)
{
	struct tiocb *t = s->head;
	struct iovec *iov = s->count == 1 ? (struct iovec *)t->iov : s->iov;
	int iovcnt = (int)s->iovcnt;

	switch (t->op) {
	case TIOCB_READ:
		io_prep_preadv(&s->iocb, t->fd, iov, iovcnt, (long long)t->offset);
		break;
	case TIOCB_WRITE:
		io_prep_pwritev2(&s->iocb, t->fd, iov, iovcnt, (long long)t->offset,
				 (rwf_dsync && (t->flags & TIOCB_FUA)) ? RWF_DSYNC : 0);
		break;
	case TIOCB_FLUSH:
	case TIOCB_CALL:	/* never reaches the kernel; keeps -Wswitch quiet */
		io_prep_fdsync(&s->iocb, t->fd);
		break;
	}
	if (resfd >= 0)
		io_set_eventfd(&s->iocb, resfd);
	s->iocb.data = s;
}

static void tq_list_add(struct tiocb ***tail, struct tiocb *t)
{
	t->next = NULL;
	**tail = t;
	*tail = &t->next;
}

unsigned tq_slot_split(struct tq_slot *s, long res,
		       struct tiocb ***done_tail, struct tiocb ***retry_tail)
{
	struct tiocb *t = s->head, *next;
	unsigned ndone = 0;
	bool short_seen = false;

	if (res < 0 && s->count == 1) {
		t->res = res;
		tq_list_add(done_tail, t);
		return 1;
	}
	if (res < 0) {
		/* Which tiocb failed is unknown: retry each alone so the error
		 * lands where it belongs. */
		for (; t; t = next) {
			next = t->next;
			t->flags |= TIOCB_NOMERGE;
			tq_list_add(retry_tail, t);
		}
		return 0;
	}
	if (t->op == TIOCB_FLUSH) {
		t->res = 0;
		tq_list_add(done_tail, t);
		return 1;
	}

	size_t left = (size_t)res;
	for (; t; t = next) {
		next = t->next;
		if (!short_seen && left >= t->len) {
			left -= t->len;
			t->res = (long)t->len;
			tq_list_add(done_tail, t);
			ndone++;
			continue;
		}
		/* Short: never report it as success.  Retry once (a short
		 * transfer is usually transient), then give up with EIO. */
		short_seen = true;
		if (t->retries == 0) {
			t->retries++;
			tq_list_add(retry_tail, t);
		} else {
			t->res = -EIO;
			tq_list_add(done_tail, t);
			ndone++;
		}
	}
	return ndone;
}
