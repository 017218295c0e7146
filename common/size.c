/* Sizes as operators write them: digits with an optional K/M/G/T/P
 * suffix (powers of 1024). */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "common/size.h"

/* Shift of a unit suffix: "" or "B" (bytes), or K/M/G/T/P alone, with
 * "B" or with "iB", case-insensitive.  -1 for anything else. */
static int size_suffix_shift(const char *p)
{
	static const char units[] = "KMGTP";
	const char *u;

	if (!*p || !strcasecmp(p, "B"))
		return 0;
	u = strchr(units, toupper((unsigned char)*p));
	if (!u)
		return -1;
	p++;
	if (*p && strcasecmp(p, "B") && strcasecmp(p, "iB"))
		return -1;
	return 10 * (int)(u - units + 1);
}

int vd_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;
	int shift;

	if (!s || !isdigit((unsigned char)*p))
		return -EINVAL;	/* empty, sign, blank, junk */
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	shift = size_suffix_shift(p);
	if (shift < 0 || v == 0)
		return -EINVAL;
	if (v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}
