/* Text in VHD metadata: the parent's name (UTF-16BE) and the parent
 * locators (UTF-16LE paths for Windows, a UTF-8 file:// URL for MacX).
 * The converters are strict because the bytes come from the image: a
 * malformed sequence is an error, never replaced or skipped, and every
 * write is bounded by the caller's capacity. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "drivers/vhd-format.h"
#include "drivers/vhd-int.h"

static const char macx_prefix[] = "file://";

/* Decodes one UTF-8 sequence at s; returns its length, or 0 if malformed. */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t n;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0) {
		n = 2, c &= 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3, c &= 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4, c &= 0x07, min = 0x10000;
	} else {
		return 0;
	}
	/* A NUL ends the string: the loop stops at it as a bad continuation. */
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

static void put_unit(uint8_t *p, uint16_t u, bool be)
{
	p[be ? 0 : 1] = u >> 8;
	p[be ? 1 : 0] = u & 0xff;
}

static uint16_t get_unit(const uint8_t *p, bool be)
{
	return be ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

int vhd_utf8_to_utf16(const char *in, uint8_t *out, size_t outcap, bool big_endian,
		      size_t *outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0;

	while (*s) {
		uint32_t cp;
		size_t n = utf8_decode(s, &cp);

		if (!n)
			return -EILSEQ;
		s += n;
		if (cp >= 0x10000) {
			if (outcap - o < 4)
				return -ENAMETOOLONG;
			cp -= 0x10000;
			put_unit(out + o, (uint16_t)(0xd800 | cp >> 10), big_endian);
			put_unit(out + o + 2, (uint16_t)(0xdc00 | (cp & 0x3ff)), big_endian);
			o += 4;
		} else {
			if (outcap - o < 2)
				return -ENAMETOOLONG;
			put_unit(out + o, (uint16_t)cp, big_endian);
			o += 2;
		}
	}
	*outlen = o;
	return 0;
}

int vhd_utf16_to_utf8(const uint8_t *in, size_t inlen, bool big_endian, char *out,
		      size_t outcap)
{
	size_t o = 0;

	if (outcap == 0)
		return -ENAMETOOLONG;
	if (inlen % 2)
		return -EILSEQ;
	for (size_t i = 0; i < inlen; i += 2) {
		uint32_t cp = get_unit(in + i, big_endian);
		size_t n;

		if (cp == 0)
			break;
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return -EILSEQ;
		if (cp >= 0xd800 && cp <= 0xdbff) {
			uint32_t lo;

			if (inlen - i < 4)
				return -EILSEQ;
			lo = get_unit(in + i + 2, big_endian);
			if (lo < 0xdc00 || lo > 0xdfff)
				return -EILSEQ;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			i += 2;
		}
		n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
		if (outcap - o <= n)	/* keep room for the NUL */
			return -ENAMETOOLONG;
		if (n == 1) {
			out[o++] = (char)cp;
			continue;
		}
		out[o++] = (char)((n == 2 ? 0xc0 : n == 3 ? 0xe0 : 0xf0) | cp >> (6 * (n - 1)));
		for (size_t k = n - 1; k > 0; k--)
			out[o++] = (char)(0x80 | ((cp >> (6 * (k - 1))) & 0x3f));
	}
	out[o] = 0;
	return 0;
}

int vhd_header_set_parent_name(struct vhd_header *h, const char *utf8)
{
	uint8_t buf[VHD_PARENT_NAME_SIZE];
	size_t len;
	int err = vhd_utf8_to_utf16(utf8, buf, sizeof(buf), true, &len);

	if (err)
		return err;
	memset(h->parent_name, 0, sizeof(h->parent_name));
	memcpy(h->parent_name, buf, len);
	return 0;
}

int vhd_header_parent_name(const struct vhd_header *h, char *out, size_t outcap)
{
	return vhd_utf16_to_utf8(h->parent_name, sizeof(h->parent_name), true, out, outcap);
}

static const char *code_name(uint32_t code, char buf[5])
{
	for (int i = 0; i < 4; i++) {
		unsigned char c = (code >> (24 - 8 * i)) & 0xff;

		buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[4] = 0;
	return buf;
}

int vhd_locator_encode(uint32_t code, const char *path, uint8_t *out, size_t outcap,
		       size_t *outlen, char *msg, size_t msglen)
{
	size_t plen = strlen(path), pre = sizeof(macx_prefix) - 1;
	char name[5];
	int err;

	switch (code) {
	case VHD_PLAT_W2RU:
	case VHD_PLAT_W2KU:
		err = vhd_utf8_to_utf16(path, out, outcap, false, outlen);
		if (err)
			return vd_errmsg(msg, msglen, err, "parent path %s for the %s locator",
				       err == -EILSEQ ? "is not valid UTF-8" : "is too long",
				       code_name(code, name));
		return 0;
	case VHD_PLAT_MACX:
		if (outcap < pre || plen > outcap - pre)
			return vd_errmsg(msg, msglen, -ENAMETOOLONG, "parent path is too long"
				       " for the MacX locator");
		memcpy(out, macx_prefix, pre);
		memcpy(out + pre, path, plen);
		*outlen = pre + plen;
		return 0;
	default:
		return vd_errmsg(msg, msglen, -ENOTSUP, "parent locator platform 0x%08" PRIx32
			       " (%s) is not supported", code, code_name(code, name));
	}
}

int vhd_locator_decode(uint32_t code, const uint8_t *data, size_t len, char *out,
		       size_t outcap, char *msg, size_t msglen)
{
	size_t pre = sizeof(macx_prefix) - 1;
	char name[5];
	int err;

	switch (code) {
	case VHD_PLAT_W2RU:
	case VHD_PLAT_W2KU:
		err = vhd_utf16_to_utf8(data, len, false, out, outcap);
		if (err)
			return vd_errmsg(msg, msglen, err, "%s parent locator %s",
				       code_name(code, name), err == -EILSEQ ?
				       "is not valid UTF-16" : "is too long");
		for (char *p = out; *p; p++)
			if (*p == '\\')
				*p = '/';
		break;
	case VHD_PLAT_MACX:
		/* Writers may count a trailing NUL in the length. */
		while (len && data[len - 1] == 0)
			len--;
		if (len < pre || memcmp(data, macx_prefix, pre))
			return vd_errmsg(msg, msglen, -EINVAL, "MacX parent locator does not"
				       " start with \"file://\"");
		if (memchr(data, 0, len))
			return vd_errmsg(msg, msglen, -EILSEQ, "MacX parent locator has a NUL"
				       " inside");
		if (len - pre >= outcap)
			return vd_errmsg(msg, msglen, -ENAMETOOLONG, "MacX parent locator is too"
				       " long");
		memcpy(out, data + pre, len - pre);
		out[len - pre] = 0;
		/* The UTF-8 must be well formed, like the UTF-16 locators. */
		for (const unsigned char *s = (const unsigned char *)out; *s;) {
			uint32_t cp;
			size_t n = utf8_decode(s, &cp);

			if (!n)
				return vd_errmsg(msg, msglen, -EILSEQ, "MacX parent locator is"
					       " not valid UTF-8");
			s += n;
		}
		break;
	default:
		return vd_errmsg(msg, msglen, -ENOTSUP, "parent locator platform 0x%08" PRIx32
			       " (%s) is not supported", code, code_name(code, name));
	}
	if (!out[0])
		return vd_errmsg(msg, msglen, -EINVAL, "%s parent locator is empty",
			       code_name(code, name));
	return 0;
}
