/* Tiny assertion helpers for the C unit tests.  A test program exits 0
 * when every check passed, 1 otherwise, 77 to say it was skipped (after
 * printing why). */
#ifndef VD_TEST_H
#define VD_TEST_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int test_failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		test_failures++; \
	} \
} while (0)

#define CHECK_EQ(a, b) do { \
	long long a_ = (long long)(a), b_ = (long long)(b); \
	if (a_ != b_) { \
		fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n", \
			__FILE__, __LINE__, #a, #b, a_, b_); \
		test_failures++; \
	} \
} while (0)

#define REQUIRE(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: required: %s\n", __FILE__, __LINE__, #cond); \
		exit(1); \
	} \
} while (0)

static inline int test_done(const char *name)
{
	if (test_failures)
		fprintf(stderr, "%s: %d check(s) failed\n", name, test_failures);
	return test_failures ? 1 : 0;
}

static const char *test_name_for_alarm = "test";

static inline void test_on_alarm(int sig)
{
	const char *n = test_name_for_alarm;
	static const char msg[] = ": timed out\n";
	ssize_t r;

	(void)sig;
	/* Only async-signal-safe calls here: no stdio. */
	r = write(2, n, strlen(n));
	if (r >= 0)
		r = write(2, msg, sizeof(msg) - 1);
	(void)r;	/* exiting either way */
	_exit(1);
}

/* A hung test (a queue that never completes) fails after secs seconds
 * with a message instead of waiting for the runner's timeout.  secs 0
 * only installs the handler, for tests that arm alarm() part by part. */
static inline void test_timeout(const char *name, unsigned secs)
{
	test_name_for_alarm = name;
	signal(SIGALRM, test_on_alarm);
	alarm(secs);
}

#endif
