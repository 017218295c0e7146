/* A futex word for a thread that sleeps until another hands it work.
 * glibc has no futex(); the two calls below are all vdiskd needs.  The
 * pattern (queue/submit.c, drivers/rbd-io.c): the sleeper stores 1,
 * re-checks its lists and waits while the word is 1; a producer pushes,
 * then wakes only when an exchange takes the word from 1 to 0.  Both
 * sides use sequentially consistent atomics, so one sees the other. */
#ifndef VD_FUTEX_H
#define VD_FUTEX_H

#include <linux/futex.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static inline void vd_futex_wait(int *word, int val, const struct timespec *timeout)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, timeout, NULL, 0);
}

/* Wakes the sleeper on word if it sleeps; true when it did. */
static inline bool vd_futex_wake_sleeper(int *word)
{
	if (!__atomic_load_n(word, __ATOMIC_SEQ_CST) ||
	    !__atomic_exchange_n(word, 0, __ATOMIC_SEQ_CST))
		return false;
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	return true;
}

#endif
