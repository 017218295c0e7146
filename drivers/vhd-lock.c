/* The vhd driver's locked ranges.  A write of partial sectors reads the
 * old contents of its edge sectors and writes them back whole: no other
 * write may change those sectors in between, or its bytes would be lost.
 * A TRIM changes bitmaps and the BAT under writes in flight.  So whole-
 * sector writes hold their range shared (they never wait for each other),
 * and read-modify-writes and TRIMs exclusive; reads take no lock (they see
 * the old or the new contents of a sector, whole).
 *
 * Cost when nothing is exclusive: a list append and unlink per write. */
#include "drivers/vhd-drv-int.h"

static bool lock_conflict(const struct vhd_lock *a, const struct vhd_lock *b)
{
	return (a->excl || b->excl) && a->start < b->end && b->start < a->end;
}

/* True when no request ahead of l in the list is in its way. */
static bool lock_free(const struct vhd_lock *l)
{
	for (const struct vhd_lock *e = l->prev; e; e = e->prev)
		if (lock_conflict(e, l))
			return false;
	return true;
}

bool vhd_lock_acquire(struct vhd *v, struct vhd_lock *l)
{
	l->next = NULL;
	l->prev = v->locks_tail;
	if (v->locks_tail)
		v->locks_tail->next = l;
	else
		v->locks = l;
	v->locks_tail = l;
	if (l->excl)
		v->locks_excl++;
	l->granted = (!l->excl && v->locks_excl == 0) || lock_free(l);
	if (!l->granted)
		v->locks_waiting++;
	return l->granted;
}

void vhd_lock_release(struct vhd *v, struct vhd_lock *l)
{
	struct vhd_lock *run = NULL, **tail = &run;

	if (l->prev)
		l->prev->next = l->next;
	else
		v->locks = l->next;
	if (l->next)
		l->next->prev = l->prev;
	else
		v->locks_tail = l->prev;
	if (l->excl)
		v->locks_excl--;
	if (!v->locks_waiting)
		return;
	/* Grant first, run after: a run() may complete its request, and so
	 * release (and walk the list), before it returns. */
	for (struct vhd_lock *w = v->locks; w; w = w->next) {
		if (w->granted || !lock_free(w))
			continue;
		w->granted = true;
		v->locks_waiting--;
		*tail = w;
		tail = &w->run_next;
	}
	*tail = NULL;
	while (run) {
		struct vhd_lock *n = run->run_next;

		run->run(run);
		run = n;
	}
}
