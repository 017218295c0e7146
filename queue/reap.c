/* Completion reaping on the main thread.
 *
 * The AIO context handle is the address of the kernel's completion ring,
 * mapped into our memory.  When its header has the known layout, events
 * between head and tail are read and head advanced without a system call
 * (as QEMU's linux-aio does); otherwise io_getevents does the same job. */
#include <errno.h>
#include <event2/event.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "queue/queue-int.h"

enum { AIO_RING_MAGIC = 0xa10a10a1 };

/* The kernel's struct aio_ring (fs/aio.c); stable ABI since 2.6. */
struct aio_ring {
	unsigned id;
	unsigned nr;
	unsigned head;
	unsigned tail;
	unsigned magic;
	unsigned compat_features;
	unsigned incompat_features;
	unsigned header_length;
	struct io_event io_events[];
};

static bool tq_ring_usable(const struct tqueue *q)
{
	const struct aio_ring *ring = (const struct aio_ring *)q->ctx;

	return !q->opt.no_user_ring && ring->magic == AIO_RING_MAGIC &&
	       ring->incompat_features == 0;
}

static int tq_ring_reap(struct tqueue *q, struct io_event *ev, int max)
{
	struct aio_ring *ring = (struct aio_ring *)q->ctx;
	unsigned head = ring->head, nr = ring->nr;
	/* Acquire: the events are written before the kernel moves tail. */
	unsigned tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
	int n = 0;

	while (head != tail && n < max) {
		ev[n++] = ring->io_events[head];
		head = (head + 1) % nr;
	}
	/* Release: our copies are done before the kernel may reuse them. */
	__atomic_store_n(&ring->head, head, __ATOMIC_RELEASE);
	return n;
}

static int tq_getevents_reap(struct tqueue *q, struct io_event *ev, int max)
{
	struct timespec zero = { 0, 0 };
	int r = io_getevents(q->ctx, 0, max, ev, &zero);

	if (r < 0 && r != -EINTR)
		log_errno(LOG_LVL_ERR, r, "queue: io_getevents");
	return r < 0 ? 0 : r;
}

/* FUA without RWF_DSYNC is write + flush: a FUA write the kernel
 * completed continues as a flush (stage 1) instead of completing. */
static bool tq_fua_followup(struct tqueue *q, struct tiocb *t)
{
	if (t->op != TIOCB_WRITE || !(t->flags & TIOCB_FUA) || q->caps.rwf_dsync ||
	    t->res < 0 || t->fua_stage != 0)
		return false;
	t->fua_stage = 1;
	t->op = TIOCB_FLUSH;
	return true;
}

/* The flush of an emulated FUA write (kernel or worker) reports the
 * write's result. */
static void tq_fua_finish(struct tiocb *t)
{
	if (t->fua_stage != 1)
		return;
	t->op = TIOCB_WRITE;
	if (t->res >= 0)
		t->res = (long)t->len;
}

/* Splits the slots of n reaped events onto done and retry, and chains
 * the slots for the free stack. */
static void tq_split_events(struct tqueue *q, int n, struct tq_list *done,
			    struct tq_list *retry, struct tq_slot **freed,
			    struct tq_slot **freed_last, unsigned *left_kernel)
{
	for (int i = 0; i < n; i++) {
		struct tq_slot *s = q->events[i].data;
		struct tiocb **dt = done->tail, **rt = retry->tail;

		*left_kernel += s->count;
		tq_slot_split(s, (long)q->events[i].res, &dt, &rt);
		done->tail = dt;
		retry->tail = rt;
		s->next = *freed;
		*freed = s;
		if (!*freed_last)
			*freed_last = s;
	}
}

static int tq_reap_some(struct tqueue *q, bool ring)
{
	int depth = (int)q->opt.depth;

	return ring ? tq_ring_reap(q, q->events, depth)
		    : tq_getevents_reap(q, q->events, depth);
}

/* Slots back to the submit thread (a stack it empties in one go). */
static void tq_push_freed(struct tqueue *q, struct tq_slot *first, struct tq_slot *last)
{
	struct tq_slot *old = __atomic_load_n(&q->freed, __ATOMIC_RELAXED);

	do
		last->next = old;
	while (!__atomic_compare_exchange_n(&q->freed, &old, first, true, __ATOMIC_SEQ_CST,
					    __ATOMIC_RELAXED));
	tq_wake_submitter(q, true);
}

/* A newest-first chain of l's tiocbs, for the inbox. */
static void tq_push_list(struct tqueue *q, struct tq_list *l)
{
	struct tiocb *rev = NULL, *last = l->head, *next;
	unsigned n = 0;

	for (struct tiocb *t = l->head; t; t = next) {
		next = t->next;
		t->next = rev;
		rev = t;
		n++;
	}
	if (n)
		tq_push_inbox(q, rev, last, n);
	tq_list_init(l);
}

int tq_poll(struct tqueue *q)
{
	struct tq_list done, retry, followup, finished;
	struct tq_slot *freed = NULL, *freed_last = NULL;
	unsigned left_kernel = 0, nreaped = 0;
	bool ring = tq_ring_usable(q);
	int depth = (int)q->opt.depth, n;
	uint64_t now;

	tq_list_init(&done);
	tq_list_init(&retry);
	tq_list_init(&followup);
	tq_list_init(&finished);

	/* The slot hand-off.  The submit thread fills a slot, then calls
	 * io_submit; the kernel's completion is what tells this thread the
	 * slot is back.  That ordering (io_submit, the kernel's write of the
	 * event, our acquire-load of the ring's tail) is outside the C memory
	 * model and invisible to ThreadSanitizer, so the submit thread also
	 * bumps q->published (release) before io_submit and this thread loads
	 * it (acquire) before touching a reaped slot. */
	do {
		n = tq_reap_some(q, ring);
		if (n <= 0)
			break;
		(void)__atomic_load_n(&q->published, __ATOMIC_ACQUIRE);
		tq_split_events(q, n, &done, &retry, &freed, &freed_last, &left_kernel);
		nreaped += (unsigned)n;
	} while (n == depth);

	if (__atomic_load_n(&q->done_ready, __ATOMIC_ACQUIRE)) {
		struct tq_list d;

		pthread_mutex_lock(&q->lock);
		d = q->done;
		if (!d.head)
			d.tail = &d.head;
		tq_list_init(&q->done);
		__atomic_store_n(&q->done_ready, false, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&q->lock);
		/* Worker results and refused submissions leave pending here. */
		left_kernel += d.count;
		tq_list_splice(&done, &d);
	}
	if (!nreaped && !done.head)
		return 0;

	/* Pick out FUA writes that continue as a flush. */
	now = vd_now_ns();
	for (struct tiocb *t = done.head, *next; t; t = next) {
		next = t->next;
		lat_record(&q->lat_queue, (t->taken_ns - t->queued_ns) / 1000);
		lat_record(&q->lat_device, (now - t->taken_ns) / 1000);
		if (tq_fua_followup(q, t))
			tq_list_append(&followup, t);
		else
			tq_list_append(&finished, t);
	}
	/* retry.count is stale (the split linked it by hand): tq_push_list
	 * counts for itself. */
	tq_count(q, 0, -(int64_t)left_kernel);
	if (freed)
		tq_push_freed(q, freed, freed_last);
	tq_list_splice(&retry, &followup);
	tq_push_list(q, &retry);
	if (ring)
		q->ring_reaps += nreaped;
	else
		q->getevents_reaps += nreaped;

	int ncalled = 0;
	q->outstanding -= finished.count;
	for (struct tiocb *t = finished.head, *next; t; t = next) {
		next = t->next;	/* the callback may reuse t */
		tq_fua_finish(t);
		t->done(t, t->res);
		ncalled++;
	}
	/* Callbacks that queued follow-up I/O are batched into one kick. */
	tq_kick(q);
	return ncalled;
}

void tq_reap_cb(int fd, short what, void *arg)
{
	struct tqueue *q = arg;
	uint64_t cnt;

	if (!q->efd_edge && read(fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		log_errno(LOG_LVL_ERR, errno, "queue: eventfd read");
	tq_poll(q);
}
