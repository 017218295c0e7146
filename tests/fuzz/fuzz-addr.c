/* vd_addr_parse (common/addr.h): any string.  On success the fields are
 * NUL-terminated strings within their arrays. */
#include "common/addr.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strdup(data, size);
	struct vd_addr a;
	int r;

	if (!s)
		return 0;
	memset(&a, 0x5a, sizeof(a));
	r = vd_addr_parse(s, &a);
	FUZZ_ASSERT(r <= 0);
	if (r == 0) {
		FUZZ_ASSERT(memchr(a.path, '\0', sizeof(a.path)) != NULL);
		FUZZ_ASSERT(memchr(a.host, '\0', sizeof(a.host)) != NULL);
		FUZZ_ASSERT(memchr(a.port, '\0', sizeof(a.port)) != NULL);
		if (a.is_unix)
			FUZZ_ASSERT(a.path[0] != '\0');
		else
			FUZZ_ASSERT(a.port[0] != '\0');
	}
	free(s);
	return 0;
}
