/* LD_PRELOAD shim: an io_submit that blocks after the kernel has the iocbs.
 *
 * io_submit() calls libaio's real io_submit (dlsym(RTLD_NEXT)), so the I/O
 * is under way, and then, when armed, sleeps STALL_SUBMIT_MS milliseconds
 * before returning: the way io_submit can block under memory pressure.
 * Nothing stalls unless STALL_SUBMIT_MS is set.  A call stalls when
 *   - stall_shim_armed > 0 (a test sets it; each stall uses one), or
 *   - STALL_SUBMIT_AFTER=N is set and N calls have already been made, or
 *   - STALL_SUBMIT_FILE=PATH is set and PATH exists.
 * With STALL_SUBMIT_BEFORE=1 the sleep comes before the real call instead,
 * so the iocbs stay out of the kernel (and in flight) for the stall.
 * A test finds the variables below with dlsym(RTLD_DEFAULT, "stall_shim_...")
 * and reads them with __atomic loads; stall_shim_release = 1 ends a stall
 * early.
 *
 * Fault injection (independent of stalls): with stall_shim_fault_pct (or
 * env SUBMIT_FAULT_PCT) at N > 0, N% of calls misbehave the way the kernel
 * may: half return -EAGAIN without submitting anything, half submit only
 * a random prefix of the iocbs and return that count (a short submit). */
#include <dlfcn.h>
#include <errno.h>
#include <libaio.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int stall_shim_armed;			/* stalls still to do (tests set it) */
int stall_shim_stalled;			/* 1 while a call sleeps */
int stall_shim_release;			/* set to 1 to end a stall now */
unsigned long stall_shim_calls;		/* io_submit calls seen */
unsigned long stall_shim_stalls;	/* calls that stalled */
long stall_shim_last_ret;		/* what the real io_submit returned */
uint64_t stall_shim_enter_ns;		/* last stalled call: entered */
uint64_t stall_shim_submitted_ns;	/*   real io_submit returned */
uint64_t stall_shim_return_ns;		/*   returned to its caller */
int stall_shim_fault_pct;		/* % of calls that misbehave */
unsigned long stall_shim_eagains;	/* calls answered -EAGAIN */
unsigned long stall_shim_shorts;	/* calls that submitted a prefix */

typedef int io_submit_fn(io_context_t ctx, long nr, struct iocb *ios[]);

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long env_long(const char *name, long def)
{
	const char *s = getenv(name);
	return s && *s ? strtol(s, NULL, 10) : def;
}

/* A fault for this call: 0 none, -EAGAIN, or k > 0 (submit k of nr). */
static long pick_fault(unsigned long call, long nr)
{
	int pct = __atomic_load_n(&stall_shim_fault_pct, __ATOMIC_ACQUIRE);
	if (pct <= 0)
		pct = (int)env_long("SUBMIT_FAULT_PCT", 0);
	if (pct <= 0 || nr <= 0)
		return 0;
	/* splitmix64 of the call number: reproducible, no shared state */
	uint64_t z = call * 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	if ((long)(z % 100) >= pct)
		return 0;
	if ((z >> 8) % 2 == 0 || nr == 1)
		return -EAGAIN;
	return 1 + (long)((z >> 16) % (uint64_t)(nr - 1));
}

static bool should_stall(unsigned long call)
{
	int armed = __atomic_load_n(&stall_shim_armed, __ATOMIC_ACQUIRE);
	while (armed > 0) {
		if (__atomic_compare_exchange_n(&stall_shim_armed, &armed, armed - 1,
						false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return true;
	}
	long after = env_long("STALL_SUBMIT_AFTER", -1);
	if (after >= 0 && call > (unsigned long)after)
		return true;
	const char *file = getenv("STALL_SUBMIT_FILE");
	return file && *file && access(file, F_OK) == 0;
}

int io_submit(io_context_t ctx, long nr, struct iocb *ios[])
{
	static io_submit_fn *real;
	io_submit_fn *fn = __atomic_load_n(&real, __ATOMIC_ACQUIRE);

	if (!fn) {
		fn = (io_submit_fn *)dlsym(RTLD_NEXT, "io_submit");
		if (!fn)
			abort();
		__atomic_store_n(&real, fn, __ATOMIC_RELEASE);
	}
	unsigned long call = __atomic_add_fetch(&stall_shim_calls, 1, __ATOMIC_ACQ_REL);
	long fault = pick_fault(call, nr);
	if (fault == -EAGAIN) {
		__atomic_add_fetch(&stall_shim_eagains, 1, __ATOMIC_ACQ_REL);
		return -EAGAIN;
	}
	if (fault > 0) {
		__atomic_add_fetch(&stall_shim_shorts, 1, __ATOMIC_ACQ_REL);
		nr = fault;
	}
	long ms = env_long("STALL_SUBMIT_MS", 0);
	if (ms <= 0 || !should_stall(call))
		return fn(ctx, nr, ios);

	uint64_t enter = now_ns();
	bool before = env_long("STALL_SUBMIT_BEFORE", 0) > 0;
	int r = 0;
	/* Stalled after the real call: completions can run before it returns. */
	__atomic_store_n(&stall_shim_release, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&stall_shim_enter_ns, enter, __ATOMIC_RELEASE);
	__atomic_store_n(&stall_shim_stalled, 1, __ATOMIC_RELEASE);
	if (!before) {
		r = fn(ctx, nr, ios);
		__atomic_store_n(&stall_shim_last_ret, (long)r, __ATOMIC_RELEASE);
		__atomic_store_n(&stall_shim_submitted_ns, now_ns(), __ATOMIC_RELEASE);
	}

	uint64_t until = enter + (uint64_t)ms * 1000000u;
	while (now_ns() < until && !__atomic_load_n(&stall_shim_release, __ATOMIC_ACQUIRE)) {
		struct timespec ts = { 0, 1000000 };	/* 1 ms steps */
		nanosleep(&ts, NULL);
	}
	if (before) {
		r = fn(ctx, nr, ios);
		__atomic_store_n(&stall_shim_last_ret, (long)r, __ATOMIC_RELEASE);
		__atomic_store_n(&stall_shim_submitted_ns, now_ns(), __ATOMIC_RELEASE);
	}
	__atomic_add_fetch(&stall_shim_stalls, 1, __ATOMIC_ACQ_REL);
	__atomic_store_n(&stall_shim_return_ns, now_ns(), __ATOMIC_RELEASE);
	__atomic_store_n(&stall_shim_stalled, 0, __ATOMIC_RELEASE);
	return r;
}
