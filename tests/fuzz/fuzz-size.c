/* vd_parse_size (common/size.h): any string, any bytes. */
#include <errno.h>

#include "common/size.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strdup(data, size);
	uint64_t v = 12345;
	int r;

	if (!s)
		return 0;
	r = vd_parse_size(s, &v);
	/* "Rejects 0, negatives, junk and overflow." */
	FUZZ_ASSERT(r == 0 || r < 0);
	if (r == 0)
		FUZZ_ASSERT(v > 0);
	free(s);
	return 0;
}
