/* thr_limits_parse (core/throttle.h): any spec.  Accepted limits are
 * consistent, format without truncation, and format -> parse gives the
 * same limits back. */
#include "core/throttle.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strdup(data, size);
	struct thr_limits l, back;
	char msg[256], fmt[THR_LIMITS_FMT_MAX];
	int r;

	if (!s)
		return 0;
	memset(&l, 0, sizeof(l));
	msg[0] = '\0';
	r = thr_limits_parse(s, &l, msg, sizeof(msg));
	FUZZ_ASSERT(r <= 0);
	if (r < 0) {
		FUZZ_ASSERT(msg[0] != '\0');		/* every error says why */
	} else {
		FUZZ_ASSERT(thr_limits_check(&l, msg, sizeof(msg)) == 0);
		FUZZ_ASSERT(thr_limits_format(&l, fmt, sizeof(fmt)) == 0);
		memset(&back, 0, sizeof(back));
		FUZZ_ASSERT(thr_limits_parse(fmt, &back, msg, sizeof(msg)) == 0);
		FUZZ_ASSERT(memcmp(&l, &back, sizeof(l)) == 0);
	}
	free(s);
	return 0;
}
