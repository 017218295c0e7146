/* Queue life cycle, queuing and kicking, probing, statistics. */
#include <errno.h>
#include <event2/event.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "queue/queue-int.h"

void tq_list_init(struct tq_list *l)
{
	l->head = NULL;
	l->tail = &l->head;
	l->count = 0;
}

void tq_list_append(struct tq_list *l, struct tiocb *t)
{
	t->next = NULL;
	*l->tail = t;
	l->tail = &t->next;
	l->count++;
}

void tq_list_splice(struct tq_list *dst, struct tq_list *src)
{
	if (!src->head)
		return;
	*dst->tail = src->head;
	dst->tail = src->tail;
	dst->count += src->count;
	tq_list_init(src);
}

void tq_list_splice_front(struct tq_list *dst, struct tq_list *src)
{
	if (!src->head)
		return;
	*src->tail = dst->head;
	if (!dst->head)
		dst->tail = src->tail;
	dst->head = src->head;
	dst->count += src->count;
	tq_list_init(src);
}

struct tiocb *tq_list_pop(struct tq_list *l)
{
	struct tiocb *t = l->head;

	if (!t)
		return NULL;
	l->head = t->next;
	if (!l->head)
		l->tail = &l->head;
	l->count--;
	t->next = NULL;
	return t;
}

void tq_options_default(struct tq_options *o)
{
	memset(o, 0, sizeof(*o));
	o->depth = 128;
	o->max_merge_iov = 64;
	o->max_merge_bytes = 1024 * 1024;
	o->submit_batch = TQ_SUBMIT_BATCH;
}

void tq_notify_main(struct tqueue *q)
{
	uint64_t one = 1;

	/* Cannot fail short of a bug: the counter never nears overflow. */
	if (write(q->efd, &one, sizeof(one)) != sizeof(one))
		log_errno(LOG_LVL_ERR, errno, "queue: eventfd write");
}

static int tq_start_threads(struct tqueue *q)
{
	int r = pthread_create(&q->submit_thread, NULL, tq_submit_main, q);
	if (r)
		return -r;
	q->submit_started = true;
	/* Named so that top -H and /proc/PID/task tell the threads apart. */
	pthread_setname_np(q->submit_thread, "vdiskd-submit");
	r = pthread_create(&q->worker_thread, NULL, tq_worker_main, q);
	if (r)
		return -r;
	q->worker_started = true;
	pthread_setname_np(q->worker_thread, "vdiskd-worker");
	return 0;
}

int tq_create(struct event_base *base, const struct tq_options *o,
	      struct tqueue **out)
{
	struct tqueue *q;
	int r;

	if (o->depth == 0 || o->depth > 65536 || o->submit_batch > TQ_SUBMIT_BATCH_MAX)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->base = base;
	q->opt = *o;
	q->efd = -1;
	q->lim.max_iov = o->max_merge_iov ? o->max_merge_iov : 64;
	if (q->lim.max_iov > TQ_SLOT_IOV_MAX)
		q->lim.max_iov = TQ_SLOT_IOV_MAX;
	q->lim.max_bytes = o->max_merge_bytes ? o->max_merge_bytes : 1024 * 1024;
	if (o->no_merge)
		q->lim.max_iov = 0;
	q->poll_ns = (uint64_t)o->poll_us * 1000;
	q->submit_cpu = -1;
	if (!q->opt.submit_batch)
		q->opt.submit_batch = TQ_SUBMIT_BATCH;
	tq_list_init(&q->waiting);
	tq_list_init(&q->work);
	tq_list_init(&q->done);
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->worker_cond, NULL);

	q->slots = calloc(o->depth, sizeof(*q->slots));
	q->events = calloc(o->depth, sizeof(*q->events));
	if (!q->slots || !q->events) {
		r = -ENOMEM;
		goto err;
	}
	for (unsigned i = 0; i < o->depth; i++) {
		q->slots[i].next = q->free_slots;
		q->free_slots = &q->slots[i];
	}

	r = io_setup((int)o->depth, &q->ctx);
	if (r < 0) {
		log_errno(LOG_LVL_ERR, r, "queue: io_setup(%u)", o->depth);
		q->ctx = 0;
		goto err;
	}
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0) {
		r = -errno;
		goto err;
	}
	if (base) {
		/* Edge-triggered, the eventfd need never be read: epoll reports
		 * every write to it, and the events are in the ring anyway.
		 * One read(2) per wake saved. */
		q->efd_edge = event_base_get_features(base) & EV_FEATURE_ET;
		q->ev = event_new(base, q->efd,
				  EV_READ | EV_PERSIST | (q->efd_edge ? EV_ET : 0),
				  tq_reap_cb, q);
		if (!q->ev || event_add(q->ev, NULL) < 0) {
			r = -ENOMEM;
			goto err;
		}
	}
	r = tq_start_threads(q);
	if (r < 0)
		goto err;
	*out = q;
	return 0;
err:
	tq_destroy(q);
	return r;
}

void tq_drain(struct tqueue *q)
{
	if (q->outstanding && q->staged_count)
		tq_kick(q);
	while (q->outstanding > 0 && q->submit_started)
		tq_wait(q);
}

void tq_destroy(struct tqueue *q)
{
	if (!q)
		return;
	tq_drain(q);

	pthread_mutex_lock(&q->lock);
	__atomic_store_n(&q->stop, true, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&q->worker_cond);
	pthread_mutex_unlock(&q->lock);
	tq_wake_submitter(q, false);
	if (q->submit_started)
		pthread_join(q->submit_thread, NULL);
	if (q->worker_started)
		pthread_join(q->worker_thread, NULL);

	if (q->ev)
		event_free(q->ev);
	if (q->ctx)
		io_destroy(q->ctx);
	if (q->efd >= 0)
		close(q->efd);
	pthread_cond_destroy(&q->worker_cond);
	pthread_mutex_destroy(&q->lock);
	free(q->events);
	free(q->slots);
	free(q);
}

/* Main thread only: nothing shared until the kick (QEMU's plug). */
void tq_queue(struct tqueue *q, struct tiocb *t)
{
	t->queued_ns = vd_now_ns();
	t->next = q->staged;
	q->staged = t;
	if (!q->staged_oldest)
		q->staged_oldest = t;
	q->staged_count++;
	q->outstanding++;
}

void tq_push_inbox(struct tqueue *q, struct tiocb *first, struct tiocb *last, unsigned n)
{
	struct tiocb *old = __atomic_load_n(&q->inbox, __ATOMIC_RELAXED);

	tq_count(q, n, 0);
	do
		last->next = old;
	while (!__atomic_compare_exchange_n(&q->inbox, &old, first, true, __ATOMIC_SEQ_CST,
					    __ATOMIC_RELAXED));
	tq_wake_submitter(q, false);
}

void tq_kick(struct tqueue *q)
{
	if (!q->staged_count)
		return;
	if (q->follow)
		tq_follow_main(q);
	tq_push_inbox(q, q->staged, q->staged_oldest, q->staged_count);
	q->staged = q->staged_oldest = NULL;
	q->staged_count = 0;
}

void tq_push_done(struct tqueue *q, struct tiocb *t)
{
	pthread_mutex_lock(&q->lock);
	tq_list_append(&q->done, t);
	__atomic_store_n(&q->done_ready, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&q->lock);
	tq_notify_main(q);
}

unsigned tq_outstanding(struct tqueue *q)
{
	return q->outstanding;
}

int tq_wait(struct tqueue *q)
{
	struct pollfd pfd = { .fd = q->efd, .events = POLLIN };
	uint64_t cnt;
	int n;

	/* The loop may leave the counter up (edge-triggered): reset it, look,
	 * and only then sleep on it. */
	if (read(q->efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return -errno;
	n = tq_poll(q);
	if (n)
		return n;
	if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
		return -errno;
	if (read(q->efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return -errno;
	return tq_poll(q);
}

/* Main thread (it owns the main-thread counters and histograms). */
void tq_get_stats(struct tqueue *q, struct tq_stats *s)
{
	const struct tq_submit_stats *ss = &q->sstats;

	uint64_t counts = __atomic_load_n(&q->counts, __ATOMIC_RELAXED);

	s->waiting = (counts >> 32) + q->staged_count;
	s->pending = counts & 0xffffffffu;
	s->iocbs_submitted = __atomic_load_n(&ss->iocbs_submitted, __ATOMIC_RELAXED);
	s->io_submit_calls = __atomic_load_n(&ss->io_submit_calls, __ATOMIC_RELAXED);
	s->merged = __atomic_load_n(&ss->merged, __ATOMIC_RELAXED);
	s->wakeups = __atomic_load_n(&ss->wakeups, __ATOMIC_RELAXED);
	s->polled = __atomic_load_n(&ss->polled, __ATOMIC_RELAXED);
	s->moves = q->moves;
	s->ring_reaps = q->ring_reaps;
	s->getevents_reaps = q->getevents_reaps;
	pthread_mutex_lock(&q->lock);
	s->worker_calls = q->worker_calls;
	pthread_mutex_unlock(&q->lock);
	s->lat_queue = q->lat_queue;
	s->lat_device = q->lat_device;
	lat_copy_shared(&s->lat_submit, &q->lat_submit);
}

const struct tq_fd_caps *tq_caps(struct tqueue *q)
{
	return &q->caps;
}

/* Submits one iocb on a private context and waits for it. */
static long tq_probe_one(struct iocb *cb)
{
	io_context_t ctx = 0;
	struct iocb *cbs[1] = { cb };
	struct io_event ev;
	long r;

	r = io_setup(1, &ctx);
	if (r < 0)
		return r;
	r = io_submit(ctx, 1, cbs);
	if (r == 1) {
		r = io_getevents(ctx, 1, 1, &ev, NULL);
		r = r == 1 ? (long)ev.res : (r < 0 ? r : -EIO);
	} else if (r >= 0) {
		r = -EIO;
	}
	io_destroy(ctx);
	return r;
}

int tq_probe_fd(struct tqueue *q, int fd, struct tq_fd_caps *caps)
{
	struct iocb cb;
	struct iovec iov = { NULL, 0 };
	struct stat st;
	bool have_dev = fstat(fd, &st) == 0;
	long r;

	/* The probe blocks (FDSYNC flushes the file) and a reopen runs on the
	 * main loop: the answer is the filesystem's, so ask once per device. */
	if (have_dev && q->caps_probed && st.st_dev == q->caps_dev) {
		*caps = q->caps;
		return 0;
	}
	io_prep_fdsync(&cb, fd);
	r = tq_probe_one(&cb);
	caps->fdsync = r == 0 && !q->opt.no_fdsync;
	if (r < 0 && r != -EINVAL && r != -EOPNOTSUPP && r != -EBADF)
		log_errno(LOG_LVL_DEBUG, (int)r, "queue: FDSYNC probe on fd %d", fd);

	/* A zero-length read carrying RWF_DSYNC: old kernels reject the
	 * non-zero flags word with EINVAL. */
	io_prep_preadv2(&cb, fd, &iov, 0, 0, RWF_DSYNC);
	r = tq_probe_one(&cb);
	caps->rwf_dsync = r >= 0 && !q->opt.no_rwf_dsync;

	log_msg(LOG_LVL_DEBUG, "queue: fd %d: FDSYNC %s, RWF_DSYNC %s", fd,
		caps->fdsync ? "yes" : "no (fdatasync on the worker)",
		caps->rwf_dsync ? "yes" : "no (write + flush)");
	q->caps = *caps;
	/* Without a device to key it on, the answer is not reused. */
	q->caps_dev = have_dev ? st.st_dev : 0;
	q->caps_probed = have_dev;
	return 0;
}
