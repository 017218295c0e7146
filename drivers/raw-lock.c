/* The raw driver's locked ranges: slow-path requests (RMW writes,
 * unaligned zeroing and trim under O_DIRECT) hold the blocks they cover,
 * first come, first served. */
#include <stdlib.h>

#include "drivers/raw-int.h"
#include "queue/queue.h"

static bool raw_overlaps(const struct raw_lock *a, const struct raw_lock *b)
{
	return a->start < b->end && b->start < a->end;
}

/* True when l overlaps a range in list, up to (not including) stop. */
static bool raw_lock_conflict(const struct raw_lock *list, const struct raw_lock *stop,
			      const struct raw_lock *l)
{
	for (; list && list != stop; list = list->next) {
		if (raw_overlaps(list, l))
			return true;
	}
	return false;
}

/* Takes the range, or queues it behind the holders and earlier waiters
 * (first come, first served).  True when l may run now. */
bool raw_lock_acquire(struct raw *r, struct raw_lock *l)
{
	if (!raw_lock_conflict(r->held, NULL, l) &&
	    !raw_lock_conflict(r->waiting, NULL, l)) {
		l->next = r->held;
		r->held = l;
		return true;
	}
	l->next = NULL;
	*r->waiting_tail = l;
	r->waiting_tail = &l->next;
	return false;
}

/* Drops l and starts the waiters it was holding up.  Runs inside a
 * completion callback, so what they queue is kicked here. */
static void raw_lock_release(struct raw *r, struct raw_lock *l)
{
	struct raw_lock **pp, *granted = NULL, **gt = &granted;

	for (pp = &r->held; *pp != l; pp = &(*pp)->next)
		;
	*pp = l->next;

	pp = &r->waiting;
	while (*pp) {
		struct raw_lock *w = *pp;

		if (raw_lock_conflict(r->held, NULL, w) ||
		    raw_lock_conflict(r->waiting, w, w)) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		if (r->waiting_tail == &w->next)
			r->waiting_tail = pp;
		w->next = r->held;
		r->held = w;
		w->run_next = NULL;
		*gt = w;
		gt = &w->run_next;
	}
	if (!granted)
		return;
	for (struct raw_lock *w = granted, *next; w; w = next) {
		next = w->run_next;
		w->run(w);
	}
	tq_kick(r->q);
}

struct raw_slow *raw_slow_new(struct raw *r, struct vd_io *io,
			      void (*run)(struct raw_lock *l))
{
	struct raw_slow *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->r = r;
	s->io = io;
	s->lock.start = align_down(io->offset, r->align);
	s->lock.end = align_up(io->offset + io->len, r->align);
	s->lock.run = run;
	return s;
}

/* Releases the range, frees the request's state and completes it. */
void raw_slow_finish(struct raw_slow *s, int err)
{
	struct vd_io *io = s->io;

	raw_lock_release(s->r, &s->lock);
	free(s->bounce);
	free(s);
	vd_io_complete(io, err);
}
