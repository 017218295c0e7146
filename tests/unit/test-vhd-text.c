/* Text in VHD metadata (drivers/vhd-utf.c): UTF-8 <-> UTF-16 in both byte
 * orders with every kind of malformed input and exact capacity limits, the
 * parent's unicode name, and the parent locators' encodings. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "drivers/vhd-format.h"
#include "tests/lib/test.h"

static void round_trip(const char *s, size_t units)
{
	uint8_t u16[256];
	char back[256];
	size_t len = 0;

	for (int be = 0; be < 2; be++) {
		CHECK_EQ(vhd_utf8_to_utf16(s, u16, sizeof(u16), be, &len), 0);
		CHECK_EQ(len, units * 2);
		CHECK_EQ(vhd_utf16_to_utf8(u16, len, be, back, sizeof(back)), 0);
		CHECK(strcmp(back, s) == 0);
	}
}

static void test_utf8_to_utf16(void)
{
	static const char *bad[] = {
		"\xc0\x80", "\xc1\xbf",			/* overlong 2 bytes */
		"\xe0\x80\x80", "\xe0\x9f\xbf",		/* overlong 3 bytes */
		"\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf",	/* overlong 4 bytes */
		"\xed\xa0\x80", "\xed\xbf\xbf",		/* surrogates */
		"\xf4\x90\x80\x80", "\xf5\x80\x80\x80",	/* past U+10FFFF */
		"\x80", "a\xbf", "\xe2\x82", "\xe2\x82x", "\xf8\x88\x80\x80\x80",
		"\xfe", "\xff", "ok\xc3",
	};
	uint8_t out[16];
	size_t len;

	round_trip("", 0);
	round_trip("parent.vhd", 10);
	round_trip("caf\xc3\xa9", 4);			/* é */
	round_trip("\xe2\x82\xac/\xef\xbf\xbd", 3);	/* € / U+FFFD */
	round_trip("\xf0\x9f\x92\xbe.vhd", 6);		/* 💾: a surrogate pair */
	round_trip("\xf4\x8f\xbf\xbf", 2);		/* U+10FFFF */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (vhd_utf8_to_utf16(bad[i], out, sizeof(out), true, &len) != -EILSEQ) {
			fprintf(stderr, "bad UTF-8 #%zu accepted\n", i);
			test_failures++;
		}
	/* Byte order. */
	CHECK_EQ(vhd_utf8_to_utf16("A\xc3\xa9", out, sizeof(out), true, &len), 0);
	CHECK(len == 4 && out[0] == 0 && out[1] == 'A' && out[2] == 0 && out[3] == 0xe9);
	CHECK_EQ(vhd_utf8_to_utf16("A\xc3\xa9", out, sizeof(out), false, &len), 0);
	CHECK(len == 4 && out[0] == 'A' && out[1] == 0 && out[2] == 0xe9 && out[3] == 0);
	CHECK_EQ(vhd_utf8_to_utf16("\xf0\x9f\x92\xbe", out, sizeof(out), true, &len), 0);
	CHECK(out[0] == 0xd8 && out[1] == 0x3d && out[2] == 0xdc && out[3] == 0xbe);
	/* Capacity: exact fit, one unit short, a pair that does not fit. */
	CHECK_EQ(vhd_utf8_to_utf16("abcd", out, 8, true, &len), 0);
	CHECK_EQ(vhd_utf8_to_utf16("abcde", out, 8, true, &len), -ENAMETOOLONG);
	CHECK_EQ(vhd_utf8_to_utf16("abc\xf0\x9f\x92\xbe", out, 8, true, &len), -ENAMETOOLONG);
	CHECK_EQ(vhd_utf8_to_utf16("a", out, 1, true, &len), -ENAMETOOLONG);
	CHECK_EQ(vhd_utf8_to_utf16("", out, 0, true, &len), 0);
}

static void test_utf16_to_utf8(void)
{
	static const struct { uint8_t b[8]; size_t len; } bad[] = {
		{ { 0xd8, 0x3d }, 2 },			/* high surrogate at the end */
		{ { 0xdc, 0xbe, 0, 'a' }, 4 },		/* lone low surrogate */
		{ { 0xd8, 0x3d, 0, 'a' }, 4 },		/* high then not-low */
		{ { 0xd8, 0x3d, 0xd8, 0x3d }, 4 },	/* high then high */
		{ { 0, 'a', 0 }, 3 },			/* odd length */
	};
	uint8_t in[8] = { 0, 'h', 0, 'i', 0, 0, 0, 'x' };
	char out[8];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (vhd_utf16_to_utf8(bad[i].b, bad[i].len, true, out, sizeof(out)) != -EILSEQ) {
			fprintf(stderr, "bad UTF-16 #%zu accepted\n", i);
			test_failures++;
		}
	/* Stops at the first NUL unit: padding is not text. */
	CHECK_EQ(vhd_utf16_to_utf8(in, 8, true, out, sizeof(out)), 0);
	CHECK(strcmp(out, "hi") == 0);
	CHECK_EQ(vhd_utf16_to_utf8(in, 0, true, out, sizeof(out)), 0);
	CHECK(strcmp(out, "") == 0);
	/* Room for the text and its NUL, and not one byte less. */
	CHECK_EQ(vhd_utf16_to_utf8(in, 4, true, out, 3), 0);
	CHECK_EQ(vhd_utf16_to_utf8(in, 4, true, out, 2), -ENAMETOOLONG);
	CHECK_EQ(vhd_utf16_to_utf8(in, 4, true, out, 0), -ENAMETOOLONG);
	{
		uint8_t euro[2] = { 0x20, 0xac };	/* 3 bytes of UTF-8 */

		CHECK_EQ(vhd_utf16_to_utf8(euro, 2, true, out, 4), 0);
		CHECK(strcmp(out, "\xe2\x82\xac") == 0);
		CHECK_EQ(vhd_utf16_to_utf8(euro, 2, true, out, 3), -ENAMETOOLONG);
	}
	/* Every BMP unit that is not a surrogate survives a round trip. */
	for (uint32_t u = 1; u < 0x10000; u++) {
		uint8_t b[2] = { (uint8_t)(u >> 8), (uint8_t)u }, again[4];
		char s[8];
		size_t len;

		if (u >= 0xd800 && u <= 0xdfff)
			continue;
		if (vhd_utf16_to_utf8(b, 2, true, s, sizeof(s)) ||
		    vhd_utf8_to_utf16(s, again, sizeof(again), true, &len) || len != 2 ||
		    memcmp(again, b, 2)) {
			fprintf(stderr, "U+%04X does not round-trip\n", u);
			test_failures++;
			break;
		}
	}
}

static void test_parent_name(void)
{
	struct vhd_header h;
	char name[600], out[600];

	memset(&h, 0x55, sizeof(h));
	CHECK_EQ(vhd_header_set_parent_name(&h, "base.vhd"), 0);
	CHECK(h.parent_name[0] == 0 && h.parent_name[1] == 'b');
	CHECK(h.parent_name[16] == 0 && h.parent_name[511] == 0);	/* padded */
	CHECK_EQ(vhd_header_parent_name(&h, out, sizeof(out)), 0);
	CHECK(strcmp(out, "base.vhd") == 0);
	memset(name, 'n', 256);
	name[256] = 0;
	CHECK_EQ(vhd_header_set_parent_name(&h, name), 0);	/* 512 bytes: fits */
	CHECK_EQ(vhd_header_parent_name(&h, out, sizeof(out)), 0);
	CHECK(strcmp(out, name) == 0);
	CHECK_EQ(vhd_header_parent_name(&h, out, 256), -ENAMETOOLONG);
	name[256] = 'n', name[257] = 0;
	CHECK_EQ(vhd_header_set_parent_name(&h, name), -ENAMETOOLONG);
	/* A name from a hostile header: unpaired surrogate. */
	h.parent_name[0] = 0xdc;
	CHECK_EQ(vhd_header_parent_name(&h, out, sizeof(out)), -EILSEQ);
}

static void test_locators(void)
{
	static const uint32_t codes[] = { VHD_PLAT_W2RU, VHD_PLAT_W2KU, VHD_PLAT_MACX };
	uint8_t buf[256];
	char out[256], msg[256];
	size_t len;

	for (int i = 0; i < 3; i++) {
		const char *p = "/srv/images/b\xc3\xa4se.vhd";

		CHECK_EQ(vhd_locator_encode(codes[i], p, buf, sizeof(buf), &len, msg, 256), 0);
		CHECK_EQ(vhd_locator_decode(codes[i], buf, len, out, sizeof(out), msg, 256), 0);
		CHECK(strcmp(out, p) == 0);
		CHECK_EQ(vhd_locator_encode(codes[i], p, buf, 10, &len, msg, 256), -ENAMETOOLONG);
		CHECK_EQ(vhd_locator_decode(codes[i], buf, 0, out, sizeof(out), msg, 256),
			 -EINVAL);
	}
	CHECK_EQ(vhd_locator_encode(VHD_PLAT_MACX, "./p.vhd", buf, sizeof(buf), &len, msg, 256), 0);
	CHECK(len == 14 && memcmp(buf, "file://./p.vhd", 14) == 0);
	CHECK_EQ(vhd_locator_encode(VHD_PLAT_W2RU, "./p", buf, sizeof(buf), &len, msg, 256), 0);
	CHECK(len == 6 && buf[0] == '.' && buf[1] == 0 && buf[2] == '/');	/* little-endian */
	/* Windows writers: backslashes, trailing NULs counted in the length. */
	{
		static const uint8_t win[] = { '.', 0, '\\', 0, 'p', 0, 0, 0 };
		static const char mac[] = "file:///a/b.vhd\0\0";

		CHECK_EQ(vhd_locator_decode(VHD_PLAT_W2RU, win, sizeof(win), out, 256, msg, 256), 0);
		CHECK(strcmp(out, "./p") == 0);
		CHECK_EQ(vhd_locator_decode(VHD_PLAT_MACX, (const uint8_t *)mac, sizeof(mac),
					    out, 256, msg, 256), 0);
		CHECK(strcmp(out, "/a/b.vhd") == 0);
	}
	/* Hostile data. */
	CHECK_EQ(vhd_locator_decode(VHD_PLAT_MACX, (const uint8_t *)"http://x", 8, out, 256,
				    msg, 256), -EINVAL);
	CHECK(strstr(msg, "file://"));
	CHECK_EQ(vhd_locator_decode(VHD_PLAT_MACX, (const uint8_t *)"file://a\0b", 10, out, 256,
				    msg, 256), -EILSEQ);
	CHECK_EQ(vhd_locator_decode(VHD_PLAT_MACX, (const uint8_t *)"file://\xc0\x80", 9, out,
				    256, msg, 256), -EILSEQ);
	CHECK_EQ(vhd_locator_decode(VHD_PLAT_MACX, (const uint8_t *)"file:///abcdef", 14, out,
				    7, msg, 256), -ENAMETOOLONG);
	CHECK_EQ(vhd_locator_decode(VHD_PLAT_W2KU, (const uint8_t *)"a\0b", 3, out, 256, msg,
				    256), -EILSEQ);
	CHECK_EQ(vhd_locator_decode(0x57693272 /* Wi2r */, buf, 4, out, 256, msg, 256), -ENOTSUP);
	CHECK(strstr(msg, "Wi2r"));
	CHECK_EQ(vhd_locator_encode(0x01020304, "x", buf, 256, &len, msg, 256), -ENOTSUP);
	CHECK(strstr(msg, "????"));
	CHECK_EQ(vhd_locator_encode(VHD_PLAT_W2KU, "\xff", buf, 256, &len, msg, 256), -EILSEQ);
}

int main(void)
{
	test_utf8_to_utf16();
	test_utf16_to_utf8();
	test_parent_name();
	test_locators();
	return test_done("test-vhd-text");
}
