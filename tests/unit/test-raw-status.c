/* test-raw part: block status of the raw driver on sparse files (needs hole punching).
 * Skipped (exit 77, saying why) when the machine cannot run it. */
#define RAW_SUITE RAW_SUITE_STATUS
#include "tests/unit/test-raw.c"
