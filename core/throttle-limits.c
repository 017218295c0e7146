/* I/O limits as text: "iops=2000,bps=50M" in, the same out, and the
 * consistency rules between the values (see throttle.h). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/errmsg.h"
#include "core/throttle.h"

/* User text quoted in a message is cut here: a 10 KiB value must not
 * push the reason out of a caller's buffer. */
#define QUOTE_MAX 40
#define QLEN(n) ((int)((n) < QUOTE_MAX ? (n) : QUOTE_MAX))

enum key_kind { KEY_COUNT, KEY_SIZE };

struct thr_key {
	const char *name;
	size_t off;		/* of a uint64_t in struct thr_limits */
	enum key_kind kind;
	uint64_t max;
};

#define KEY(n, f, k, m) { n, offsetof(struct thr_limits, f), k, m }
static const struct thr_key thr_keys[] = {
	KEY("iops", iops, KEY_COUNT, UINT64_MAX),
	KEY("read-iops", read_iops, KEY_COUNT, UINT64_MAX),
	KEY("write-iops", write_iops, KEY_COUNT, UINT64_MAX),
	KEY("bps", bps, KEY_SIZE, UINT64_MAX),
	KEY("read-bps", read_bps, KEY_SIZE, UINT64_MAX),
	KEY("write-bps", write_bps, KEY_SIZE, UINT64_MAX),
	KEY("burst-iops", burst_iops, KEY_COUNT, UINT64_MAX),
	KEY("burst-bps", burst_bps, KEY_SIZE, UINT64_MAX),
	KEY("burst-seconds", burst_seconds, KEY_COUNT, THR_BURST_SECONDS_MAX),
	KEY("iops-size", iops_size, KEY_SIZE, UINT64_MAX),
};
#define NR_KEYS (sizeof(thr_keys) / sizeof(thr_keys[0]))
#define KNOWN_KEYS "iops, read-iops, write-iops, bps, read-bps, write-bps, " \
	"burst-iops, burst-bps, burst-seconds, iops-size"

static uint64_t *field(struct thr_limits *l, const struct thr_key *k)
{
	return (uint64_t *)((char *)l + k->off);
}

static uint64_t value_of(const struct thr_limits *l, const struct thr_key *k)
{
	return *(const uint64_t *)((const char *)l + k->off);
}

/* K..E as a shift, with an optional B or iB after it; a lone B is bytes.
 * -1 for anything else. */
static int suffix_shift(const char *s, size_t n)
{
	static const char units[] = "kmgtpe";
	const char *u;
	int shift;

	if (n == 0)
		return 0;
	if (n == 1 && (*s == 'b' || *s == 'B'))
		return 0;
	u = strchr(units, tolower((unsigned char)*s));
	if (!u || !*s)
		return -1;
	shift = 10 * (int)(u - units + 1);
	if (n == 1 || (n == 2 && tolower((unsigned char)s[1]) == 'b') ||
	    (n == 3 && tolower((unsigned char)s[1]) == 'i' &&
	     tolower((unsigned char)s[2]) == 'b'))
		return shift;
	return -1;
}

static int parse_value(const struct thr_key *k, const char *s, size_t n,
		       uint64_t *out, char *msg, size_t msglen)
{
	uint64_t v = 0;
	size_t i = 0;
	int shift;

	if (n == 4 && strncasecmp(s, "none", 4) == 0) {
		*out = 0;
		return 0;
	}
	if (*s == '-')
		return vd_errmsg(msg, msglen, -EINVAL, "%s: negative value \"%.*s\"",
			    k->name, QLEN(n), s);
	if (!isdigit((unsigned char)*s))
		return vd_errmsg(msg, msglen, -EINVAL,
			    "%s: \"%.*s\" is not a number (or none)",
			    k->name, QLEN(n), s);
	for (; i < n && isdigit((unsigned char)s[i]); i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			goto too_large;
		v = v * 10 + d;
	}
	shift = k->kind == KEY_SIZE ? suffix_shift(s + i, n - i) : (i == n ? 0 : -1);
	if (shift < 0)
		return vd_errmsg(msg, msglen, -EINVAL, "%s: junk after the number in \"%.*s\"%s",
			    k->name, QLEN(n), s,
			    k->kind == KEY_SIZE ? " (units: K, M, G, T, P, E)" :
			    " (want a plain number)");
	if (v > (UINT64_MAX >> shift) || (v << shift) > k->max)
		goto too_large;
	*out = v << shift;
	return 0;
too_large:
	return vd_errmsg(msg, msglen, -ERANGE, "%s: \"%.*s\" is too large (at most %" PRIu64 ")",
		    k->name, QLEN(n), s, k->max);
}

static const struct thr_key *find_key(const char *s, size_t n)
{
	for (size_t i = 0; i < NR_KEYS; i++)
		if (strlen(thr_keys[i].name) == n && memcmp(thr_keys[i].name, s, n) == 0)
			return &thr_keys[i];
	return NULL;
}

/* One "KEY=VALUE" of n bytes at s into *l; seen guards repeats. */
static int parse_item(const char *s, size_t n, struct thr_limits *l,
		      unsigned *seen, char *msg, size_t msglen)
{
	const char *eq = memchr(s, '=', n);
	const struct thr_key *k;
	size_t klen;

	if (n == 0)
		return vd_errmsg(msg, msglen, -EINVAL, "empty item in the limits (stray comma?)");
	if (!eq)
		return vd_errmsg(msg, msglen, -EINVAL, "\"%.*s\": expected KEY=VALUE",
			    QLEN(n), s);
	klen = (size_t)(eq - s);
	if (klen == 0)
		return vd_errmsg(msg, msglen, -EINVAL, "\"%.*s\": missing key before '='",
			    QLEN(n), s);
	k = find_key(s, klen);
	if (!k)
		return vd_errmsg(msg, msglen, -EINVAL, "unknown limit \"%.*s\" (known: %s)",
			    QLEN(klen), s, KNOWN_KEYS);
	if (*seen & (1u << (k - thr_keys)))
		return vd_errmsg(msg, msglen, -EINVAL, "%s given twice", k->name);
	*seen |= 1u << (k - thr_keys);
	if (klen + 1 == n)
		return vd_errmsg(msg, msglen, -EINVAL, "%s: missing value", k->name);
	return parse_value(k, eq + 1, n - klen - 1, field(l, k), msg, msglen);
}

int thr_limits_parse(const char *spec, struct thr_limits *inout,
		     char *msg, size_t msglen)
{
	struct thr_limits l = *inout;
	unsigned seen = 0;
	const char *p = spec;
	int err;

	if (!spec || !*spec)
		return vd_errmsg(msg, msglen, -EINVAL,
			    "empty limits (want KEY=VALUE,... or none)");
	if (strcmp(spec, "none") == 0) {
		*inout = (struct thr_limits){ 0 };
		return 0;
	}
	for (;;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		err = parse_item(p, n, &l, &seen, msg, msglen);
		if (err)
			return err;
		if (!end)
			break;
		p = end + 1;
	}
	err = thr_limits_check(&l, msg, msglen);
	if (err)
		return err;
	*inout = l;
	return 0;
}

static int check_burst(const char *bname, uint64_t burst, const char *name,
		       uint64_t rate, char *msg, size_t msglen)
{
	if (!burst || !rate || burst >= rate)
		return 0;
	return vd_errmsg(msg, msglen, -EINVAL,
		    "%s %" PRIu64 " is below %s %" PRIu64
		    " (a burst is the rate a quiet disk may reach: at least the limit)",
		    bname, burst, name, rate);
}

int thr_limits_check(const struct thr_limits *l, char *msg, size_t msglen)
{
	int err = 0;

	if (!err)
		err = check_burst("burst-iops", l->burst_iops, "iops", l->iops, msg, msglen);
	if (!err)
		err = check_burst("burst-iops", l->burst_iops, "read-iops", l->read_iops,
				  msg, msglen);
	if (!err)
		err = check_burst("burst-iops", l->burst_iops, "write-iops", l->write_iops,
				  msg, msglen);
	if (!err)
		err = check_burst("burst-bps", l->burst_bps, "bps", l->bps, msg, msglen);
	if (!err)
		err = check_burst("burst-bps", l->burst_bps, "read-bps", l->read_bps,
				  msg, msglen);
	if (!err)
		err = check_burst("burst-bps", l->burst_bps, "write-bps", l->write_bps,
				  msg, msglen);
	if (!err && l->burst_seconds > THR_BURST_SECONDS_MAX)
		err = vd_errmsg(msg, msglen, -ERANGE, "burst-seconds %" PRIu64
			   " is too large (at most %u)", l->burst_seconds,
			   (unsigned)THR_BURST_SECONDS_MAX);
	return err;
}

int thr_limits_format(const struct thr_limits *l, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	size_t used = 0;
	int n;

	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < NR_KEYS; i++) {
		const struct thr_key *k = &thr_keys[i];
		uint64_t v = value_of(l, k);
		int u = 0;

		if (!v)
			continue;
		/* the largest unit that divides v exactly */
		while (k->kind == KEY_SIZE && u < 6 && (v & ((1ull << (10 * (u + 1))) - 1)) == 0)
			u++;
		n = snprintf(used < len ? buf + used : NULL, used < len ? len - used : 0,
			     "%s%s=%" PRIu64 "%.*s",
			     used ? "," : "", k->name, v >> (10 * u), u ? 1 : 0,
			     u ? &units[u - 1] : "");
		used += (size_t)n;
	}
	if (!used)
		used = (size_t)snprintf(buf, len, "none");
	return used < len ? 0 : -ENOSPC;
}
