/* The submit thread follows the main thread's CPU (--submit-cpu follow).
 *
 * The pair hands work back and forth many times a request.  Split over
 * two CPUs, each hand-off wakes the other CPU, which on a VM is often a
 * halted vCPU the host must run again (tens of µs); on one CPU, the
 * submit thread runs as soon as the main thread goes back to sleep.  So
 * the main thread, on each kick, checks where it runs (sched_getcpu reads
 * the rseq area or the vDSO: no system call) and, when that changed,
 * moves the submit thread there: one system call per migration, none per
 * request.  The scheduler keeps placing the main thread; only the pair is
 * kept together.  A CPU outside what the process may use is never
 * chosen, since the main thread runs only on those.
 *
 * The pair can also chase each other: a submit thread still running
 * where the main thread slept makes the scheduler wake the main thread
 * on the other CPU, and the next kick moves the submit thread after it.
 * At QD1 that was a move for most requests, so the thread moves at most
 * once per TQ_FOLLOW_GAP_NS: a real migration is followed within it, a
 * chase costs at most a thousand system calls a second.
 *
 * This pays only while io_submit merely queues (O_DIRECT).  Buffered,
 * io_submit copies the data on the submit thread, which then wants a CPU
 * of its own: the owner decides (tq_set_follow). */
#include <errno.h>
#include <sched.h>

#include "common/clock.h"
#include "common/log.h"
#include "queue/queue-int.h"

enum { TQ_FOLLOW_GAP_NS = 1000 * 1000 };	/* 1 ms */

/* Turns following off after a failure or on request: the thread gets
 * its own CPUs back if it was moved. */
static void affinity_release(struct tqueue *q)
{
	int r;

	q->follow = false;
	if (q->submit_cpu < 0)
		return;
	r = pthread_setaffinity_np(q->submit_thread, sizeof(q->start_cpus), &q->start_cpus);
	if (r)
		log_errno(LOG_LVL_WARN, r, "queue: cannot give the submit thread its CPUs back;"
			  " it stays on CPU %d", q->submit_cpu);
	q->submit_cpu = -1;
}

void tq_follow_main(struct tqueue *q)
{
	int cpu = sched_getcpu();
	cpu_set_t set;
	uint64_t now;
	int r;

	if (cpu < 0 || cpu == q->submit_cpu || cpu >= CPU_SETSIZE)
		return;
	now = vd_now_ns();
	if (q->submit_cpu >= 0 && now - q->moved_ns < TQ_FOLLOW_GAP_NS)
		return;
	if (q->submit_cpu < 0) {
		r = pthread_getaffinity_np(q->submit_thread, sizeof(q->start_cpus),
					   &q->start_cpus);
		if (r) {
			log_errno(LOG_LVL_WARN, r, "queue: cannot read the submit thread's CPUs;"
				  " it runs free");
			q->follow = false;
			return;
		}
	}
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	r = pthread_setaffinity_np(q->submit_thread, sizeof(set), &set);
	if (r) {
		/* A cpuset that changed under us (EINVAL) or a sandbox (EPERM):
		 * say so once and leave the thread where the scheduler puts it. */
		log_errno(LOG_LVL_WARN, r, "queue: cannot move the submit thread to CPU %d;"
			  " it runs free from now on", cpu);
		affinity_release(q);
		return;
	}
	q->submit_cpu = cpu;
	q->moved_ns = now;
	q->moves++;
}

void tq_set_follow(struct tqueue *q, bool follow)
{
	if (follow)
		q->follow = true;
	else
		affinity_release(q);
}
