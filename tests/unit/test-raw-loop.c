/* test-raw part: the raw driver's model on a loop device (BLKDISCARD, BLKZEROOUT, ioctl sizes).
 * Skipped (exit 77, saying why) when the machine cannot run it. */
#define RAW_SUITE RAW_SUITE_LOOP
#include "tests/unit/test-raw.c"
