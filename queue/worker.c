/* The worker thread: calls that can block (fallocate, ioctl, lseek) and
 * fdatasync when the kernel does not take IOCB_CMD_FDSYNC.  Results go to
 * the done list and the main loop is woken through the eventfd. */
#include <errno.h>
#include <unistd.h>

#include "queue/queue-int.h"

void *tq_worker_main(void *arg)
{
	struct tqueue *q = arg;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->work.head && !q->stop)
			pthread_cond_wait(&q->worker_cond, &q->lock);
		if (!q->work.head)
			break;
		struct tiocb *t = tq_list_pop(&q->work);
		pthread_mutex_unlock(&q->lock);

		long res;
		if (t->op == TIOCB_FLUSH)
			res = fdatasync(t->fd) < 0 ? -errno : 0;
		else
			res = t->call(t);

		t->res = res;
		pthread_mutex_lock(&q->lock);
		q->worker_calls++;
		pthread_mutex_unlock(&q->lock);
		tq_push_done(q, t);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}
