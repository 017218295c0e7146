/* test-raw part: an unreadable image is -EACCES, also as root (capabilities dropped).
 * Skipped (exit 77, saying why) when the machine cannot run it. */
#define RAW_SUITE RAW_SUITE_EACCES
#include "tests/unit/test-raw.c"
