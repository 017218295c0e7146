/* test-raw part: the raw driver's model on tmpfs (O_DIRECT without alignment rules, no ZERO_RANGE).
 * Skipped (exit 77, saying why) when the machine cannot run it. */
#define RAW_SUITE RAW_SUITE_TMPFS
#include "tests/unit/test-raw.c"
