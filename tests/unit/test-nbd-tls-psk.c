/* The PSK file parser: what psktool writes, and what it never would. */
#include <errno.h>
#include <string.h>

#include "frontends/nbd-tls-psk.h"
#include "tests/lib/test.h"

static int parse(const char *text, struct nbd_psk_table *t, char *err, size_t errlen)
{
	return nbd_psk_parse(text, strlen(text), "k.psk", t, err, errlen);
}

static void bad(const char *text, const char *want)
{
	struct nbd_psk_table t;
	char err[256] = "";
	int r = parse(text, &t, err, sizeof(err));

	CHECK_EQ(r, -EINVAL);
	CHECK_EQ(t.n, 0);
	if (!strstr(err, want))
		fprintf(stderr, "message '%s' lacks '%s'\n", err, want);
	CHECK(strstr(err, want) != NULL);
}

int main(void)
{
	struct nbd_psk_table t;
	char err[256], *big;
	const struct nbd_psk_entry *e;

	CHECK_EQ(parse("alice:00ff10\n# a comment\n\nbob:ABCDEF0123456789\r\n", &t, err,
		       sizeof(err)), 0);
	CHECK_EQ(t.n, 2);
	e = nbd_psk_find(&t, "alice");
	REQUIRE(e);
	CHECK_EQ(e->key_len, 3);
	CHECK(e->key[0] == 0x00 && e->key[1] == 0xff && e->key[2] == 0x10);
	e = nbd_psk_find(&t, "bob");
	REQUIRE(e);
	CHECK_EQ(e->key_len, 8);
	CHECK_EQ(e->key[0], 0xab);
	CHECK(nbd_psk_find(&t, "carol") == NULL);
	CHECK(nbd_psk_find(&t, "alic") == NULL);
	nbd_psk_free(&t);
	CHECK_EQ(t.n, 0);

	/* No newline at the end; a colon inside the key part is not hex. */
	CHECK_EQ(parse("u:0102", &t, err, sizeof(err)), 0);
	CHECK_EQ(t.n, 1);
	nbd_psk_free(&t);

	bad("", "no username:hexkey line");
	bad("# only a comment\n\n", "no username:hexkey line");
	bad("alice\n", "k.psk:1: no ':'");
	bad(":0011\n", "empty username");
	bad("alice:\n", "empty key");
	bad("alice:abc\n", "odd number");
	bad("alice:zz\n", "not hexadecimal");
	bad("alice:00:1\n", "not hexadecimal");
	bad("alice:0011\nalice:2233\n", "k.psk:2: username 'alice' given twice");
	bad("al\x01ice:0011\n", "control character");
	bad("ok:00\nbad line\n", "k.psk:2:");

	/* Oversized: a username, a key, a line, the file. */
	big = malloc(NBD_PSK_MAX_FILE + 2);
	REQUIRE(big);
	memset(big, 'a', NBD_PSK_MAX_IDENTITY + 1);
	strcpy(big + NBD_PSK_MAX_IDENTITY + 1, ":00\n");
	bad(big, "username longer than");
	strcpy(big, "u:");
	memset(big + 2, '0', 2 * NBD_PSK_MAX_KEY + 2);
	big[2 * NBD_PSK_MAX_KEY + 4] = 0;
	bad(big, "key longer than");
	memset(big, 'a', NBD_PSK_MAX_LINE + 1);
	big[NBD_PSK_MAX_LINE + 1] = 0;
	bad(big, "line longer than");
	memset(big, '\n', NBD_PSK_MAX_FILE + 1);
	CHECK_EQ(nbd_psk_parse(big, NBD_PSK_MAX_FILE + 1, "k.psk", &t, err, sizeof(err)),
		 -EINVAL);
	CHECK(strstr(err, "larger than") != NULL);
	/* A NUL inside a line (a binary file). */
	CHECK_EQ(nbd_psk_parse("a:00\0b:11\n", 10, "k.psk", &t, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "NUL") != NULL);
	free(big);

	/* Loading: a missing file says so. */
	CHECK(nbd_psk_load("/nonexistent/k.psk", &t, err, sizeof(err)) == -ENOENT);
	CHECK(strstr(err, "cannot open") != NULL);
	return test_done("test-nbd-tls-psk");
}
