/* test-ram part: out of memory is an -ENOMEM completion, never a crash.
 * Skipped (exit 77) in sanitizer builds. */
#define RAM_ENOMEM 1
#include "tests/unit/test-ram.c"
